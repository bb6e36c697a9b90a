"""Endpoint secrets: made in the Standard Webhooks form (`whsec_` and base64 of 32 random bytes),
shown once, and sealed at rest with AES-256-GCM under a key derived from the server secret,
bound to the endpoint's id (a sealed value copied onto another endpoint does not open)."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenantry.kit.security import derive_key

PREFIX = "whsec_"
_PURPOSE = "webhook-endpoint-secret"
_VERSION = "v1"


def new_secret() -> str:
    return PREFIX + base64.b64encode(os.urandom(32)).decode()


class SecretBox:
    def __init__(self, server_secret: str) -> None:
        self._aead = AESGCM(derive_key(server_secret, _PURPOSE))

    def seal(self, plaintext: str, *, bound_to: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), bound_to.encode())
        return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, *, bound_to: str) -> str:
        version, _, payload = sealed.partition(".")
        if version != _VERSION:
            raise ValueError("unknown sealed-secret version")
        raw = base64.urlsafe_b64decode(payload)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], bound_to.encode()).decode()
        except InvalidTag:
            raise ValueError("the sealed secret does not open with this server secret") from None
