"""Two-factor helpers for tests: real TOTP codes at the time of the clock the tests move."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp


def code_at(secret: str, moment: datetime) -> str:
    return pyotp.TOTP(secret).at(moment)


def secret_of(uri: str) -> str:
    return parse_qs(urlsplit(uri).query)["secret"][0]


def enrol(client: Any, headers: dict[str, str], now: datetime) -> tuple[str, list[str]]:
    """Turns two-factor sign-in on for the caller: (the TOTP seed, the backup codes)."""
    started = client.post("/api/v1/me/mfa", headers=headers)
    assert started.status_code == 200, started.text
    secret = secret_of(started.json()["provisioning_uri"])
    confirmed = client.post(
        "/api/v1/me/mfa/confirm", headers=headers, json={"code": code_at(secret, now)}
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, list(confirmed.json()["backup_codes"])
