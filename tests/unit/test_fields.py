"""Field rules of schemas.fields: ids, timestamps, money, durations, disconnect reasons, scalars."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.fields import (
    NormalizationError,
    parse_hms,
    split_disconnect,
    to_bool,
    to_id,
    to_int,
    to_money,
    to_text,
    to_timestamp,
)


@pytest.mark.parametrize(("value", "expected"), [(37794869, 37794869), ("37806158", 37806158), ("0", 0)])
def test_to_id_accepts_int_and_digit_string(value: Any, expected: int) -> None:
    assert to_id(value, "id") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "id: missing required id"),
        ("abc", "id: id string is not an integer: 'abc'"),
        ("12a", "id: id string is not an integer: '12a'"),
        ("", "id: id string is not an integer: ''"),
        ("-5", "id: id string is not an integer: '-5'"),
        (37794869.0, "id: id must be an integer or a digit string, got float"),
        (True, "id: id must be an integer or a digit string, got bool"),
        ([1], "id: id must be an integer or a digit string, got list"),
        (2**63, "id: id out of the 64-bit range: 9223372036854775808"),
    ],
)
def test_to_id_rejects_non_integers(value: Any, message: str) -> None:
    with pytest.raises(NormalizationError) as info:
        to_id(value, "id")
    assert str(info.value) == message
    assert info.value.path == "id"


def test_to_int_is_optional() -> None:
    assert to_int(None, "x") is None
    assert to_int("17", "x") == 17
    with pytest.raises(NormalizationError, match="duracao_segundos"):
        to_int(1.5, "duracao_segundos")


@pytest.mark.parametrize(
    ("value", "naive_tz", "expected"),
    [
        # naive UTC (top-level data_criacao of chamada_evento / conferencia_evento)
        ("2019-09-06T17:21:33", "utc", datetime(2019, 9, 6, 17, 21, 33, tzinfo=UTC)),
        # naive São Paulo local time (BRT, -03:00)
        ("2019-09-06T14:21:33", "local", datetime(2019, 9, 6, 17, 21, 33, tzinfo=UTC)),
        # naive local during the 2016 Brazilian daylight saving time (-02:00): zoneinfo knows the history
        ("2016-10-17T18:02:20", "local", datetime(2016, 10, 17, 20, 2, 20, tzinfo=UTC)),
        # explicit offsets; naive_tz does not matter then
        ("2019-09-06T13:48:19-03:00", "utc", datetime(2019, 9, 6, 16, 48, 19, tzinfo=UTC)),
        ("2016-10-17T18:02:20-02:00", "local", datetime(2016, 10, 17, 20, 2, 20, tzinfo=UTC)),
        ("2019-09-06T18:50:05+03:00", "local", datetime(2019, 9, 6, 15, 50, 5, tzinfo=UTC)),
        # milliseconds
        ("2019-09-06T16:38:50.000-03:00", "local", datetime(2019, 9, 6, 19, 38, 50, tzinfo=UTC)),
        ("2019-09-06T16:38:50.5-03:00", "local", datetime(2019, 9, 6, 19, 38, 50, 500000, tzinfo=UTC)),
        # Z
        ("2018-03-18T00:51:22.000Z", "local", datetime(2018, 3, 18, 0, 51, 22, tzinfo=UTC)),
        ("2018-03-18T00:51:22Z", "local", datetime(2018, 3, 18, 0, 51, 22, tzinfo=UTC)),
        # sub-millisecond digits are truncated to what timestamp-millis keeps
        ("2019-09-06T16:38:50.123987-03:00", "local", datetime(2019, 9, 6, 19, 38, 50, 123000, tzinfo=UTC)),
    ],
)
def test_to_timestamp_shapes(value: str, naive_tz: Any, expected: datetime) -> None:
    at, raw = to_timestamp(value, "data_criacao", naive_tz)
    assert at == expected
    assert at is not None and at.utcoffset() == timedelta(0)
    assert raw == value


def test_to_timestamp_null_and_empty() -> None:
    assert to_timestamp(None, "x", "local") == (None, None)
    assert to_timestamp("", "x", "local") == (None, "")


@pytest.mark.parametrize(
    "value",
    [
        "06/09/2019 14:21",
        "2019-09-06",
        "2019-09-06 14:21:33",
        "2019-13-01T00:00:00",
        "2019-09-06T25:00:00",
        1567790493,
    ],
)
def test_to_timestamp_rejects_other_shapes(value: Any) -> None:
    with pytest.raises(NormalizationError, match=r"^data_inicio: "):
        to_timestamp(value, "data_inicio", "local")


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_to_timestamp_reads_iso_text_of_any_instant(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    offset = moment.astimezone(timezone(timedelta(hours=-3)))
    for text in (
        offset.isoformat(timespec="milliseconds"),
        moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    ):
        assert to_timestamp(text, "x", "local")[0] == moment


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.35, Decimal("0.35")),
        (0.1, Decimal("0.1")),
        (0, Decimal("0")),
        (950.64, Decimal("950.64")),
        ("56.8616", Decimal("56.8616")),
        ("0.00", Decimal("0")),
        (" 1.5 ", Decimal("1.5")),
        ("-3.25", Decimal("-3.25")),
        # a float artefact of the provider's serializer, rounded at the contract's scale
        (0.30000000000000004, Decimal("0.3")),
        (Decimal("999999999999.999999"), Decimal("999999999999.999999")),
    ],
)
def test_to_money(value: Any, expected: Decimal) -> None:
    amount = to_money(value, "preco")
    assert amount == expected
    assert amount is not None and amount.as_tuple().exponent == -6


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), "NaN", "Infinity", "-inf", True, "abc", "", "1,5", [0.35], 1e13, "1e12"],
)
def test_to_money_rejects(value: Any) -> None:
    with pytest.raises(NormalizationError, match=r"^preco: "):
        to_money(value, "preco")


def test_to_money_null() -> None:
    assert to_money(None, "preco") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("00:00:60", 60),
        ("00:01:00", 60),
        ("00:00:00", 0),
        ("01:02:03", 3723),
        ("1:2:3", 3723),
        ("100:00:00", 360000),
    ],
)
def test_parse_hms(value: str, expected: int) -> None:
    assert parse_hms(value, "duracao") == expected


@pytest.mark.parametrize("value", ["01:00", "abc", "-00:00:01", "00:00:1.5", 60, ""])
def test_parse_hms_rejects(value: Any) -> None:
    with pytest.raises(NormalizationError, match=r"^duracao: "):
        parse_hms(value, "duracao")


@given(st.integers(min_value=0, max_value=10**7))
def test_parse_hms_of_formatted_seconds(seconds: int) -> None:
    text = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    assert parse_hms(text, "duracao") == seconds


@given(st.integers(0, 999), st.integers(0, 99), st.integers(0, 99))
def test_parse_hms_is_lenient_about_ranges(hours: int, minutes: int, seconds: int) -> None:
    assert parse_hms(f"{hours:02d}:{minutes:02d}:{seconds:02d}", "d") == hours * 3600 + minutes * 60 + seconds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("16. normal", (16, "normal", "16. normal")),
        ("17. ocupado", (17, "ocupado", "17. ocupado")),
        ("19. sem resposta - mas chamou", (19, "sem resposta - mas chamou", "19. sem resposta - mas chamou")),
        ("31. normal, não especificado", (31, "normal, não especificado", "31. normal, não especificado")),
        ("127.erro de conectividade", (127, "erro de conectividade", "127.erro de conectividade")),
        ("16.", (16, None, "16.")),
        ("indefinido", (None, "indefinido", "indefinido")),
        ("", (None, None, "")),
        (None, (None, None, None)),
    ],
)
def test_split_disconnect(value: Any, expected: tuple[Any, ...]) -> None:
    assert split_disconnect(value, "motivo_desconexao") == expected


def test_split_disconnect_rejects_non_text() -> None:
    with pytest.raises(
        NormalizationError, match="motivo_desconexao: expected a disconnect reason text, got int"
    ):
        split_disconnect(16, "motivo_desconexao")


def test_to_text() -> None:
    assert to_text("9561", "ramal") == "9561"
    assert to_text(9000, "ramal") == "9000"
    assert to_text("", "tags") == ""
    assert to_text(None, "tags") is None
    for bad in (True, 1.5, {"id": 1}, ["a"]):
        with pytest.raises(NormalizationError, match=r"^tags: expected text"):
            to_text(bad, "tags")


def test_to_bool() -> None:
    assert to_bool(True, "ativa") is True
    assert to_bool(False, "ativa") is False
    assert to_bool(0, "ativa") is False
    assert to_bool(1, "ativa") is True
    assert to_bool(None, "ativa") is None
    for bad in (2, "true", 1.0, "1"):
        with pytest.raises(NormalizationError, match=r"^ativa: expected a boolean"):
            to_bool(bad, "ativa")


def test_normalization_error_is_a_value_error_with_path_and_reason() -> None:
    error = NormalizationError("origem.preco", "money amount is not a number: 'x'")
    assert isinstance(error, ValueError)
    assert (error.path, error.reason) == ("origem.preco", "money amount is not a number: 'x'")
    assert str(error) == "origem.preco: money amount is not a number: 'x'"
