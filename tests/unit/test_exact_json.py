"""schemas.exact_json: big integers kept digit for digit; every other body parsed exactly as orjson parses it."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.exact_json import BigInt, canonical, exact, loads
from schemas.normalize import event_id

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_exact_parser_reads_every_ordinary_body_as_orjson_does(value: Any) -> None:
    data = orjson.dumps(value)
    assert exact(data) == orjson.loads(data) == loads(data)
    assert event_id("acme", "aviso_saldo", exact(data)) == event_id("acme", "aviso_saldo", orjson.loads(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40) | json_values.map(orjson.dumps).flatmap(
    lambda data: st.integers(0, len(data)).map(lambda cut: data[:cut] + b"\x00\xff\"{"[: cut % 4])))
def test_the_exact_parser_refuses_what_orjson_refuses(data: bytes) -> None:
    try:
        orjson.loads(data)
        refused_by_orjson = False
    except orjson.JSONDecodeError:
        refused_by_orjson = True
    try:
        exact(data)
        refused = False
    except json.JSONDecodeError:
        refused = True
    assert refused == refused_by_orjson


@pytest.mark.parametrize("data", [b'\xef\xbb\xbf{"a":1}', b'{"a":NaN}', b"[Infinity]", b"[1e400]", b'["\\ud800"]',
                                  '{"a":1}'.encode("utf-16"), b'{"a":"\xed\xa0\x80"}'])
def test_the_exact_parser_refuses_what_the_standard_one_would_let_through(data: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        exact(data)
    with pytest.raises(json.JSONDecodeError):
        loads(data)


@pytest.mark.parametrize("digits", ["18446744073709551616", "-9223372036854775809", "1" * 5000])
def test_integers_beyond_64_bits_are_kept_as_sent(digits: str) -> None:
    parsed = loads(f'{{"n":{digits},"m":[{digits}]}}'.encode())
    assert parsed == {"n": BigInt(digits), "m": [BigInt(digits)]}
    assert canonical(parsed) == f'{{"m":[{digits}],"n":{digits}}}'


def test_the_64_bit_edges_stay_ints_like_orjson_reads_them() -> None:
    edges = [-(2**63), 2**63 - 1, 2**64 - 1, 10**18, -(10**18)]
    data = orjson.dumps(edges)
    assert loads(data) == edges == orjson.loads(data)
