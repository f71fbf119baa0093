"""The bundled sample: a deterministic, realistic day-slice of the provider's webhooks (`webhooks.jsonl`)."""
