"""The bundled sample (deploy/sample/webhooks.jsonl): reproducible, complete, true to the provider."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from deploy.sample import generate
from schemas.normalize import NormalizationError, normalize
from schemas.topics import KIND_TOPICS


@pytest.fixture(scope="module")
def text() -> str:
    return generate.OUTPUT.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_checked_in_file_is_what_the_generator_writes(text: str) -> None:
    assert generate.render(generate.build()) == text, "run: python -m deploy.sample.generate"


def test_every_line_is_a_kind_and_a_json_object_body(lines: list[dict[str, Any]], text: str) -> None:
    assert len(text.encode()) < 1_000_000
    assert all(set(line) == {"kind", "body"} and isinstance(line["body"], dict) for line in lines)
    assert set(Counter(line["kind"] for line in lines)) == set(KIND_TOPICS)


def test_every_body_normalizes(lines: list[dict[str, Any]]) -> None:
    for number, line in enumerate(lines, 1):
        try:
            normalize(line["kind"], "sample", line["body"], datetime.now(UTC))
        except NormalizationError as exc:
            pytest.fail(f"line {number} ({line['kind']}): {exc}")


def test_delivery_quirks_are_present(lines: list[dict[str, Any]], text: str) -> None:
    assert any(count > 1 for count in Counter(text.splitlines()).values()), "no re-delivered webhook"
    calls = {line["body"]["id"] for line in lines if line["kind"] == "chamada_evento"}
    ended = {line["body"]["id"] for line in lines if line["kind"] == "chamada_fim"}
    assert len(calls) >= 35 and ended < calls, "some calls must lack their end webhook"
    dids = [line["body"] for line in lines if line["kind"] == "chamada_did_fim"]
    assert any("origem" in body for body in dids) and any("numero_origem" in body for body in dids)
    replies = [line["body"] for line in lines if line["kind"] == "resposta_sms"]
    assert any(body["data_resposta"].endswith("-02:00") for body in replies)


def test_end_of_call_billing_follows_the_evidence(lines: list[dict[str, Any]]) -> None:
    per_minute = {"movel": 0.35, "fixo": 0.12, "ramal": 0.10}
    for line in lines:
        if line["kind"] != "chamada_fim":
            continue
        for leg in (line["body"]["origem"], line["body"]["destino"]):
            talk = leg["duracao_falada_segundos"]
            assert 0 <= talk < 60
            assert leg["duracao_cobrada_segundos"] == (60 if talk else 0)
            assert leg["preco"] == (per_minute[leg["tipo"]] if talk else 0)
