"""The request -> answer function of ingest, driven through the ASGI app with every kind of bad body.

The app's producer here records the writes it is handed (Kafka is not involved: what is checked is which
records a request produces and how it is answered; tests/integration/test_ingest.py shows the same answers
against the real broker). Every answer must be one of: 2xx with raw + normalized record, 4xx "kept" with raw
+ dead letter, 4xx before reading with no write, or 503 + Retry-After when the producer fails.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.producer import DeliveryError, Write
from ingest.app import create_app
from ingest.publish import TRUNCATED_HEADER
from ingest.settings import Settings
from schemas import topics
from schemas.codec import Codec, SingleObjectCodec
from schemas.exact_json import BigInt, canonical

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
EXAMPLES: list[tuple[str, Any]] = [
    (path.parent.name, json.loads(path.read_text(encoding="utf-8"))) for path in sorted(FIXTURES.glob("*/*.json"))
]
SECRET = "unit-secret-123"
CODEC = SingleObjectCodec()
LOOP = asyncio.new_event_loop()
KAFKA_LIMIT = 1_000_000  # librdkafka's default message.max.bytes, which the recorder enforces like Kafka


class RecordingProducer:
    """Keeps what Kafka would have acknowledged; refuses a record over `KAFKA_LIMIT` as Kafka does."""

    def __init__(self) -> None:
        self.writes: list[Write] = []
        self.down = False

    async def send_all(self, writes: Sequence[Write], timeout: float) -> None:
        if self.down:
            raise DeliveryError("broker down")
        if any(len(value) > KAFKA_LIMIT for _, _, value, _ in writes):
            raise DeliveryError("Broker: Message size too large", retriable=False, too_large=True)
        self.writes.extend(writes)

    def reachable(self, timeout: float = 1.0) -> bool:
        return not self.down

    def close(self, timeout: float = 10.0) -> int:
        return 0


def app_settings(**overrides: Any) -> Settings:
    base = Settings(host="127.0.0.1", port=0, kafka_bootstrap="unused:9092", schema_registry_url=None,
                    tenants={"acme": SECRET}, max_body_bytes=256 * 1024, max_json_depth=16, kafka_timeout_s=5,
                    retry_after_s=3, kafka_linger_ms=2, log_level="WARNING")
    return Settings(**{**base.__dict__, **overrides})


@dataclass
class Answer:
    status: int
    json: Any
    headers: httpx.Headers
    writes: list[Write]


class Client:
    def __init__(self, codec: Codec = CODEC, **overrides: Any) -> None:
        self.producer = RecordingProducer()
        self.app = create_app(app_settings(**overrides), producer=self.producer, codec=codec)

    def post(self, kind: str, body: bytes, content_type: str | None = "application/json",
             headers: dict[str, str] | None = None, secret: str = SECRET) -> Answer:
        self.producer.writes = []
        sent = {**({"content-type": content_type} if content_type else {}), **(headers or {})}

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
                return await client.post(f"/hooks/acme/{secret}/{kind}", content=body, headers=sent)

        response = LOOP.run_until_complete(go())
        payload = response.json() if response.content else None
        return Answer(response.status_code, payload, response.headers, list(self.producer.writes))

    def metric(self, kind: str, status: int) -> float:
        value = self.app.state.ingest.metrics.registry.get_sample_value(
            "callpipe_ingest_requests_total", {"kind": kind, "status": str(status)})
        return value or 0.0


def check_promise(answer: Answer, kind: str, body: bytes, defect: bool = False) -> None:
    """The answer is one the contract allows, and the writes are exactly the ones it promises. Unless a
    `defect` is injected, no body may reach the unexpected-exception path: every value is classified by a
    field rule."""
    assert answer.status < 500 or answer.status == 503, (answer.status, answer.json)
    assert defect or (answer.json or {}).get("error") != "internal_error", answer.json
    if answer.status == 503:
        assert answer.headers.get("retry-after") and answer.writes == []
        return
    if answer.status in (401, 404, 408, 413):
        assert answer.writes == [], "rejected before reading: nothing is written"
        return
    raw_topic, _, raw_value, _ = answer.writes[0]
    assert raw_topic == topics.RAW.name
    raw = CODEC.decode(topics.RAW.name, raw_value)
    assert raw["body"] == body and raw["kind"] == kind and raw["tenant"] == "acme"
    second_topic, _, second, _ = answer.writes[1]
    assert len(answer.writes) == 2
    if answer.status == 200:
        assert second_topic == topics.KIND_TOPICS[kind].name
        record = CODEC.decode(second_topic, second)
        assert record["event_id"] == answer.json["event_id"] == raw["event_id"]
    else:
        assert answer.json["kept"] is True and answer.json["detail"]
        assert second_topic == topics.DEADLETTER.name
        letter = CODEC.decode(second_topic, second)
        assert letter["body"] == body and letter["reason"] == answer.json["detail"] and letter["stage"] == "ingest"


def example(kind: str) -> dict[str, Any]:
    body = next(b for k, b in EXAMPLES if k == kind)
    assert isinstance(body, dict)
    return dict(body)


# --- the triggers of the 500s and collisions that were found, one named test each --------------------------

OUT_OF_RANGE = [
    ("year_9999_west_of_utc", "chamada_fim", "data_criacao", "9999-12-31T23:59:59-03:00", "outside the years"),
    ("year_1_east_of_utc", "chamada_fim", "data_criacao", "0001-01-01T00:00:00+03:00", "outside the years"),
    ("offset_24h", "envio_sms", "data_criacao", "2019-09-06T14:21:33+24:00", "beyond ±14:00"),
    ("offset_23_60", "envio_sms", "data_criacao", "2019-09-06T14:21:33+23:60", "60 minutes"),
    ("offset_minus_24h", "envio_sms", "data_criacao", "2019-09-06T14:21:33-24:00", "beyond ±14:00"),
    ("offset_00_99", "envio_sms", "data_criacao", "2019-09-06T14:21:33+00:99", "99 minutes"),
    ("offset_14_30", "envio_sms", "data_criacao", "2019-09-06T14:21:33+14:30", "beyond ±14:00"),
    ("id_of_5000_digits_text", "envio_sms", "id", "7" * 5000, "out of the 64-bit range"),
    ("integer_of_5000_digits_text", "tts_fim", "duracao_segundos", "7" * 5000, "out of the 64-bit range"),
    ("hms_of_5000_digits", "tts_fim", "duracao", "1" * 5000 + ":00:00", "out of the 64-bit range"),
    ("hms_beyond_long", "tts_fim", "duracao", "99999999999999999999:00:00", "out of the 64-bit range"),
    ("money_underscore", "aviso_saldo", "saldo", "1_000", "not a number"),
    ("money_arabic_indic", "aviso_saldo", "saldo", "\u0661\u0662", "not a number"),
    ("money_fullwidth", "aviso_saldo", "saldo", "\uff11\uff12", "not a number"),
]


@pytest.mark.parametrize(("case", "kind", "field", "value", "reason"), OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE])
def test_out_of_range_values_are_kept_and_answered_422_naming_the_field(
    case: str, kind: str, field: str, value: str, reason: str
) -> None:
    body = example(kind)
    body[field] = value
    if field == "duracao":
        body.pop("duracao_segundos")  # the HH:MM:SS text is parsed only when the seconds are absent
    raw = orjson.dumps(body)
    answer = Client().post(kind, raw)
    assert answer.status == 422, answer.json
    assert answer.json["detail"].startswith(f"{field}: ") and reason in answer.json["detail"]
    check_promise(answer, kind, raw)


@pytest.mark.parametrize("digits", [5000, 25])
@pytest.mark.parametrize(("kind", "field"), [("envio_sms", "id"), ("chamada_evento", "cliente_id")])
def test_integers_beyond_64_bits_as_json_numbers_are_refused_naming_the_field(digits: int, kind: str,
                                                                              field: str) -> None:
    """An id or integer field given as a JSON number of 25 or 5,000 digits: 422 naming it, and no int() on
    4,300+ digits."""
    body = canonical({**example(kind), field: BigInt("9" * digits)}).encode()
    answer = Client().post(kind, body)
    assert answer.status == 422 and answer.json["detail"].startswith(f"{field}: id out of the 64-bit range")
    check_promise(answer, kind, body)


def test_big_integers_get_distinct_event_ids_and_exact_extra_json() -> None:
    client = Client()
    first = client.post("aviso_saldo", b'{"saldo":"1.5","zz":1180591620717411303424}')
    second = client.post("aviso_saldo", b'{"saldo":"1.5","zz":1180591620717411303425}')
    assert first.status == second.status == 200
    assert first.json["event_id"] != second.json["event_id"]
    record = CODEC.decode(topics.BALANCE_ALERTS.name, second.writes[1][2])
    assert record["extra_json"] == '{"zz":1180591620717411303425}'


def test_a_big_integer_phone_number_is_kept_digit_for_digit() -> None:
    body = {**example("envio_sms"), "numero_destino": BigInt("5548988887777123456789")}
    answer = Client().post("envio_sms", canonical(body).encode())
    assert answer.status == 200
    record = CODEC.decode(topics.KIND_TOPICS["envio_sms"].name, answer.writes[1][2])
    assert record["destination_number"] == "5548988887777123456789"


@pytest.mark.parametrize("content_type", ["+json", "text/plain+json", "application/+json", "json", "text/json"])
def test_content_types_that_are_not_json_media_types_are_refused_and_kept(content_type: str) -> None:
    body = orjson.dumps(example("aviso_saldo"))
    answer = Client().post("aviso_saldo", body, content_type)
    assert answer.status == 415 and answer.json["kept"] is True
    check_promise(answer, "aviso_saldo", body)


@pytest.mark.parametrize("content_type", ["application/json", "application/JSON; charset=utf-8",
                                          "application/vnd.provider.webhook+json"])
def test_json_media_types_are_accepted(content_type: str) -> None:
    answer = Client().post("aviso_saldo", orjson.dumps(example("aviso_saldo")), content_type)
    assert answer.status == 200


class FaultyCodec(SingleObjectCodec):
    """Raises what a defect would raise, while encoding one topic's records."""

    def __init__(self, topic: str, error: Callable[[], Exception]) -> None:
        self.topic, self.error = topic, error

    def encode(self, topic: str, schema: str, record: dict[str, Any]) -> bytes:
        if topic == self.topic:
            raise self.error()
        return super().encode(topic, schema, record)


@pytest.mark.parametrize("error", [lambda: OverflowError("date value out of range"),
                                   lambda: ValueError("Exceeds the limit (4300 digits)"),
                                   lambda: KeyError("surprise")])
def test_an_unexpected_exception_is_kept_with_its_traceback_answered_422_and_counted(
    error: Callable[[], Exception]
) -> None:
    client = Client(codec=FaultyCodec(topics.KIND_TOPICS["aviso_saldo"].name, error))
    body = orjson.dumps(example("aviso_saldo"))
    answer = client.post("aviso_saldo", body)
    assert answer.status == 422 and answer.json["error"] == "internal_error"
    assert "(at " in answer.json["detail"] and type(error()).__name__ in answer.json["detail"]
    check_promise(answer, "aviso_saldo", body, defect=True)
    letter = CODEC.decode(topics.DEADLETTER.name, answer.writes[1][2])
    assert letter["error_type"] == type(error()).__name__
    assert client.app.state.ingest.metrics.registry.get_sample_value(
        "callpipe_ingest_unexpected_errors_total", {"kind": "aviso_saldo"}) == 1


def test_a_defect_outside_the_plan_is_a_counted_500() -> None:
    """The last resort (nothing could be stored): still an answer, and counted with status 500."""
    client = Client(codec=FaultyCodec(topics.RAW.name, lambda: RuntimeError("archive encoder broken")))
    answer = client.post("aviso_saldo", orjson.dumps(example("aviso_saldo")))
    assert answer.status == 500 and answer.writes == []
    assert client.metric("aviso_saldo", 500) == 1


def test_every_answer_is_counted_with_kind_and_status() -> None:
    client = Client()
    client.post("aviso_saldo", orjson.dumps(example("aviso_saldo")))
    client.post("aviso_saldo", b"{", "application/json")
    client.post("aviso_saldo", b"{}", secret="wrong-secret-1")
    client.post("no_such_kind", b"{}")
    client.producer.down = True
    down = client.post("aviso_saldo", orjson.dumps(example("aviso_saldo")))
    assert down.status == 503 and down.headers["retry-after"] == "3"
    for kind, status in (("aviso_saldo", 200), ("aviso_saldo", 400), ("aviso_saldo", 401), ("unknown", 404),
                         ("aviso_saldo", 503)):
        assert client.metric(kind, status) == 1, (kind, status)


def test_a_record_too_large_for_kafka_is_stored_with_trimmed_headers_never_a_cut_body() -> None:
    client = Client(max_body_bytes=2_000_000)
    body = orjson.dumps({**example("aviso_saldo"), "pad": "p" * (KAFKA_LIMIT - 20_000)})
    answer = client.post("aviso_saldo", body, headers={f"x-h{i}": "v" * 900 for i in range(30)})
    assert answer.status == 200, answer.json
    raw = CODEC.decode(topics.RAW.name, answer.writes[0][2])
    assert raw["body"] == body and TRUNCATED_HEADER in raw["headers"]
    assert sum(len(k) + len(v) for k, v in raw["headers"].items()) < 5000


def test_a_body_too_large_for_kafka_is_a_permanent_4xx_not_a_503() -> None:
    client = Client(max_body_bytes=2_000_000)
    body = orjson.dumps({**example("aviso_saldo"), "pad": "p" * (KAFKA_LIMIT + 1000)})
    answer = client.post("aviso_saldo", body)
    assert answer.status == 413 and answer.json["error"] == "too_large_for_kafka"


def test_a_client_trusted_by_no_proxy_setting_is_archived_under_its_own_address() -> None:
    answer = Client().post("aviso_saldo", orjson.dumps(example("aviso_saldo")),
                           headers={"x-forwarded-for": "203.0.113.9"})
    raw = CODEC.decode(topics.RAW.name, answer.writes[0][2])
    assert raw["remote_addr"] == "127.0.0.1"  # httpx's ASGI transport client address


# --- the property: any mutation of any example gets an answer the contract allows -------------------------

NASTY_TEXT = [
    "9999-12-31T23:59:59-03:00", "0001-01-01T00:00:00+03:00", "2019-09-06T14:21:33+24:00",
    "2019-09-06T14:21:33+23:60", "2019-09-06T14:21:33-24:00", "2019-09-06T14:21:33+00:99", "2299-12-31T23:59:59Z",
    "1900-01-01T00:00:00Z", "99999999999999999999:00:00", "00:00:60", "1_000", "\u0661\u0662", "\uff11\uff12",
    "", " ", "NaN", "Infinity", "1e999", "-1e-999", "0x10", "16. normal", ". ", "9" * 30, "1" * 5000,
]
nasty = st.sampled_from(NASTY_TEXT)
timestamps = st.from_regex(r"\d{1,5}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?", fullmatch=True)
durations = st.from_regex(r"\d{1,22}:\d{1,22}:\d{1,22}", fullmatch=True)
# Repeated strategies weigh the draw towards the values that found defects: most fields are timestamps,
# ids, durations and money, so the nasty texts and numbers must come often enough to land on one.
scalars = st.one_of(
    nasty, nasty, nasty, timestamps, timestamps, durations,
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.builds(BigInt, st.sampled_from(["9" * 20, "-" + "9" * 20, "1" * 4400, "18446744073709551616"])),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.booleans(),
    st.none(),
)
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=12)
values = st.one_of(scalars, scalars, scalars, nested)
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "application/x+json", "text/plain",
                 "+json", None]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into nested objects (the body itself not included: non-object bodies are tested apart)."""
    found = []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += [(*prefix, key), *paths(inner, (*prefix, key))]
    return found


def set_at(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    return {**body, path[0]: set_at(body[path[0]], path[1:], value)}


def encodings(data: bytes) -> st.SearchStrategy[bytes]:
    text = data.decode()
    return st.sampled_from([
        data, data, data, data,
        b"\xef\xbb\xbf" + data,  # UTF-8 byte order mark
        text.encode("utf-16"),
        data + b" trailing",
        data[: len(data) // 2],
        data.replace(b'"', b"'", 1),
        b"[" * 30 + b"]" * 30,
        b"   ",
    ])


CLIENT = Client()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_mutated_body_gets_an_answer_the_contract_allows(data: st.DataObject) -> None:
    kind, body = data.draw(st.sampled_from(EXAMPLES), label="example")
    for _ in range(data.draw(st.integers(0, 4), label="mutations")):
        path = data.draw(st.sampled_from(paths(body)), label="path")
        body = set_at(body, path, data.draw(values, label="value"))
    if isinstance(body, dict) and data.draw(st.booleans(), label="drop a key") and body:
        body = {k: v for k, v in body.items() if k != data.draw(st.sampled_from(sorted(body)))}
    raw = data.draw(encodings(canonical(body).encode()), label="bytes")
    content_type = data.draw(st.sampled_from(CONTENT_TYPES), label="content type")
    answer = CLIENT.post(kind, raw, content_type)
    check_promise(answer, kind, raw)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(EXAMPLES), values)
def test_with_kafka_down_every_authenticated_request_is_503_with_retry_after(example_: Any, value: Any) -> None:
    kind, body = example_
    client = CLIENT
    client.producer.down = True
    try:
        raw = canonical({**body, "zz": value}).encode()
        answer = client.post(kind, raw)
        assert answer.status == 503 and answer.headers["retry-after"] == "3" and answer.writes == []
    finally:
        client.producer.down = False
