"""The browser's session cookie and the CSRF tokens of the dashboard's forms.

The cookie names an identity login session (the same `LoginSession` an access token names) and
its person, signed with a key derived from the server secret. It holds no other state: every
request checks the login session in the database (`identity.service.authenticate_session`), so
a revoked session, a password change or a suspended account ends the browser's session on its
next request, as it does for the API's tokens.

A signed-in form's CSRF token is a MAC of the login session's id under a key of its own: it
needs no storage, and dies with the session. Forms shown before signing in (sign in, sign up,
the forgotten password) use a random token kept in a cookie of its own (double submit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from tenantry.kit.security import derive_key

SESSION_COOKIE = "tenantry_session"
ANONYMOUS_CSRF_COOKIE = "tenantry_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class CookieSession:
    """What a valid session cookie names (still to be checked against the database)."""

    user_id: str
    session_id: str


class WebKeys:
    """Keys derived from the server secret, one per purpose."""

    def __init__(self, secret: str) -> None:
        self._cookie = derive_key(secret, "web-session-cookie")
        self._csrf = derive_key(secret, "web-csrf")

    def session_cookie(self, *, user_id: str, session_id: str) -> str:
        payload = f"{session_id}.{user_id}"
        return f"{payload}.{_mac(self._cookie, payload)}"

    def read_session_cookie(self, value: str | None) -> CookieSession | None:
        if not value or value.count(".") != 2:
            return None
        session_id, user_id, mac = value.split(".")
        if not hmac.compare_digest(mac, _mac(self._cookie, f"{session_id}.{user_id}")):
            return None
        return CookieSession(user_id=user_id, session_id=session_id)

    def csrf_token(self, session_id: str) -> str:
        return _mac(self._csrf, session_id)

    def csrf_matches(self, session_id: str, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(str(sent), self.csrf_token(session_id))


def new_anonymous_csrf() -> str:
    return secrets.token_urlsafe(32)


def anonymous_csrf_matches(cookie: str | None, sent: str | None) -> bool:
    return bool(cookie) and bool(sent) and hmac.compare_digest(str(cookie), str(sent))
