"""Secrets at rest: an OIDC client secret is sealed (`kit.sealing`) under a key of its own
purpose, bound to its connection's id."""

from __future__ import annotations

from tenantry.kit.sealing import SealedBox

_PURPOSE = "sso-client-secret"


class SecretBox(SealedBox):
    def __init__(self, server_secret: str) -> None:
        super().__init__(server_secret, purpose=_PURPOSE)
