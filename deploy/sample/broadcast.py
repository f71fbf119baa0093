"""One-way messages: TTS / áudio / composto calls (one end webhook each, millisecond timestamps) and SMS
(a status webhook per change, string ids, float price) with the recipients' replies."""

from __future__ import annotations

from typing import Any

from deploy.sample.timeline import CLIENTS, Sample, billing, hms, with_millis, with_offset, with_old_dst

MESSAGES = (
    "Olá! Sua consulta está confirmada para 23/11 às 14h. Responda SIM para confirmar ou NAO para remarcar.",
    "Seu pedido saiu para entrega e chega hoje até as 18h.",
    "Código de verificação: 481 205. Não compartilhe com ninguém.",
    "Lembrete: a fatura de novembro vence amanhã. Pague pelo app e evite juros.",
)
AUDIOS = (
    "https://cdn.evoline.com.br/audios/aviso-vencimento.mp3",
    "https://cdn.evoline.com.br/audios/pesquisa-nps.mp3",
)
REASONS = {"atendida": "16. normal", "ocupado": "17. ocupado", "sem resposta": "18. sem resposta"}


def single_leg_call(
    sample: Sample, call_id: int, t0: int, *, kind: str, outcome: str, quirk: str | None = None
) -> None:
    """`outcome`: atendida | silent (answered, nobody listened: 0 s talk, 0 billed) | ocupado | sem resposta.
    `quirk`: "hms60" writes the billed minute as "00:00:60", "null_reason" sends no disconnect reason."""
    rng = sample.rng
    tipo = rng.choice(("movel", "movel", "fixo"))
    started = t0 + rng.randint(0, 2)
    ring = (
        rng.randint(2, 8)
        if outcome == "ocupado"
        else rng.randint(25, 35)
        if outcome == "sem resposta"
        else rng.randint(4, 15)
    )
    talk = rng.randint(5, 50) if outcome == "atendida" else 0
    total = ring + talk
    billed, price = billing(tipo, talk)
    expects_reply = kind != "tts_fim" and rng.random() < 0.5
    reply = rng.choice(("1", "2", "8")) if expects_reply and talk else rng.choice(("", None))
    status = "atendida" if outcome == "silent" else outcome
    body: dict[str, Any] = {
        "id": call_id,
        "numero_destino": sample.phone(tipo),
        "data_criacao": with_millis(t0),
        "data_inicio": with_millis(started),
        "tipo": tipo,
        "status": status,
        "duracao_segundos": total,
        "duracao": hms(total),
        "duracao_cobrada_segundos": billed,
        "duracao_cobrada": "00:00:60" if quirk == "hms60" else hms(billed),
        "duracao_falada_segundos": talk,
        "duracao_falada": hms(talk),
        "preco": price,
        "resposta_usuario": expects_reply,
        "resposta": reply,
        "motivo_desconexao": None if quirk == "null_reason" else REASONS[status],
    }
    # Field presence differs per kind (notes §5): only TTS has the text, only áudio the audio URL,
    # only composto tags.
    if kind == "tts_fim":
        body["mensagem"] = rng.choice(MESSAGES)
    elif kind == "audio_fim":
        body |= {"url_gravacao": None, "url_audio": rng.choice(AUDIOS)}
    else:
        body |= {
            "url_gravacao": sample.recording(call_id, rng.choice(CLIENTS)[0]) if talk else None,
            "tags": rng.choice(("clienteX", "cobranca-nov", "")),
        }
    sample.send(started + total + rng.randint(1, 3), kind, body)


def sms(
    sample: Sample,
    sms_id: int,
    t0: int,
    *,
    delivered: bool,
    replies: tuple[str, ...] = (),
    old_dst_reply: bool = False,
) -> None:
    """`enviada`, then `entregue` or `erro` (refunded: price 0); replies come as `resposta_sms`."""
    rng = sample.rng
    body: dict[str, Any] = {
        "id": str(sms_id),
        "numero_destino": sample.phone("movel"),
        "data_criacao": with_offset(t0),
        "mensagem": MESSAGES[0] if replies else rng.choice(MESSAGES[1:]),
        "preco": 0.09,
        "status_envio": "enviada",
        "data_status": with_offset(t0 + 1),
        "resposta_usuario": bool(replies),
        "respostas": [],
    }
    sample.send(t0 + 1, "envio_sms", body)
    changed = t0 + (rng.randint(3, 25) if delivered else rng.randint(2, 6))
    final = {**body, "status_envio": "entregue" if delivered else "erro", "data_status": with_offset(changed)}
    if not delivered:
        final["preco"] = 0
    sample.send(changed, "envio_sms", final)
    replied = changed
    for i, text in enumerate(replies):
        replied += rng.randint(20, 300)
        stamp = with_old_dst(replied) if old_dst_reply and i == 0 else with_offset(replied)
        sample.send(
            replied,
            "resposta_sms",
            {"id": sample.next("sms_reply"), "sms_id": sms_id, "resposta": text, "data_resposta": stamp},
        )
