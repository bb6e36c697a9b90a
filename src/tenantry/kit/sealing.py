"""Secrets kept at rest (an SSO client secret, a TOTP seed): sealed with AES-256-GCM under a key
derived from the server secret for one purpose, and bound to the row that holds them (a sealed
value copied onto another row does not open)."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenantry.kit.security import derive_key

_VERSION = "v1"


class SealedBox:
    def __init__(self, server_secret: str, *, purpose: str) -> None:
        self._aead = AESGCM(derive_key(server_secret, purpose))

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
