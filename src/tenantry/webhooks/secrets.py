"""Endpoint secrets: made in the Standard Webhooks form (`whsec_` and base64 of 32 random bytes),
shown once, and sealed at rest (`kit.sealing`) under a key of their own purpose, bound to the
endpoint's id (a sealed value copied onto another endpoint does not open)."""

from __future__ import annotations

import base64
import os

from tenantry.kit.sealing import SealedBox

PREFIX = "whsec_"
_PURPOSE = "webhook-endpoint-secret"


def new_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(32)).decode()


class SecretBox(SealedBox):
    def __init__(self, server_secret: str) -> None:
        super().__init__(server_secret, purpose=_PURPOSE)
