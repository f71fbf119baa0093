"""Tenant authentication. The provider can only be given a URL, so the secret travels in the path
(`/hooks/{tenant}/{secret}/{kind}`) or, for callers that can set headers, in `X-Callpipe-Secret`."""

from __future__ import annotations

import hmac

SECRET_HEADER = "x-callpipe-secret"


class Authenticator:
    def __init__(self, tenants: dict[str, str]) -> None:
        self._secrets = {tenant: secret.encode() for tenant, secret in tenants.items()}
        # Unknown tenants are compared against this too, so timing does not reveal which tenants exist.
        self._decoy = b"\0" * 32

    def check(self, tenant: str, secret: str | None) -> bool:
        expected = self._secrets.get(tenant, self._decoy)
        given = (secret or "").encode()
        return hmac.compare_digest(expected, given) and tenant in self._secrets
