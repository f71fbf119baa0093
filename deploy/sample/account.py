"""Account-level webhooks: low-balance alerts (the balance as a 4-decimal string) and number validations (one
webhook while processing, one when finished)."""

from __future__ import annotations

from deploy.sample.timeline import Sample, with_offset


def balance_alert(sample: Sample, t: int, balance: str) -> None:
    sample.send(t, "aviso_saldo", {"saldo": balance})


def number_validation(sample: Sample, t0: int, *, valid: bool) -> None:
    rng = sample.rng
    body = {
        "id": sample.next("validation"),
        "numero_destino": f"55{sample.phone(rng.choice(('movel', 'fixo')))}",
        "data_criacao": with_offset(t0),
        "preco": 0.1,
        "valido": False,
        "finalizado": False,
    }
    sample.send(t0 + 1, "valida_numero", body)
    sample.send(t0 + rng.randint(8, 40), "valida_numero", {**body, "valido": valid, "finalizado": True})
