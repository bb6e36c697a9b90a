"""A real OpenID provider for the tests: an HTTP server on a loopback port, in a thread of the
test process, speaking OpenID Connect Discovery, the authorization code flow with PKCE (S256),
the token endpoint (client_secret_basic or client_secret_post, single-use codes), userinfo and
a JWKS. ID tokens are signed by joserfc with an RSA key whose public half it publishes.

It signs in whoever `next_person` says (no login page: the test is the person), on the clock
it is given (the app's movable clock, so "expired" means expired for the app). `misbehave`
makes its next ID token wrong in one way: signed by a key it does not publish, for another
audience, already expired, with another nonce, from another issuer.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tenantry.kit.clock import Clock


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str | None
    person: dict[str, Any]
    used: bool = False


@dataclass
class Misbehaviour:
    wrong_key: bool = False
    audience: str | None = None
    expired: bool = False
    nonce: str | None = None
    issuer: str | None = None
    # Leave the email out of the ID token: the app must ask userinfo for it.
    email_only_in_userinfo: bool = False


@dataclass
class OidcProvider:
    clock: Clock
    client_id: str = "tenantry-test-client"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    next_person: dict[str, Any] = field(default_factory=dict)
    misbehave: Misbehaviour = field(default_factory=Misbehaviour)
    # Requests seen, for assertions about what the app sent.
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "signing-1", "alg": "RS256"})
        self.unpublished_key = RSAKey.generate_key(
            2048, parameters={"kid": "signing-1", "alg": "RS256"}
        )
        self._grants: dict[str, Grant] = {}
        self._access: dict[str, dict[str, Any]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def issuer(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OidcProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def person(self, subject: str, email: str, **claims: Any) -> None:
        self.next_person = {"sub": subject, "email": email, "email_verified": True, **claims}

    # ---- the protocol ----

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        self.authorize_requests.append(query)
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return 400, {}, b"unknown client or response type"
        redirect = query["redirect_uri"]
        code = secrets.token_urlsafe(24)
        self._grants[code] = Grant(
            client_id=query["client_id"],
            redirect_uri=redirect,
            nonce=query.get("nonce"),
            challenge=query.get("code_challenge")
            if query.get("code_challenge_method") == "S256"
            else None,
            person=dict(self.next_person),
        )
        location = redirect + "?" + urlencode({"code": code, "state": query.get("state", "")})
        return 302, {"Location": location}, b""

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        if client_id != self.client_id or secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        grant = self._grants.get(form.get("code", ""))
        if grant is None or grant.used:
            return 400, {"error": "invalid_grant", "error_description": "code unknown or used"}
        grant.used = True
        if grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        verifier = form.get("code_verifier") or ""
        if grant.challenge is None or create_s256_code_challenge(verifier) != grant.challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE check failed"}
        access = secrets.token_urlsafe(24)
        self._access[access] = grant.person
        return 200, {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(grant, access),
        }

    def id_token(self, grant: Grant, access_token: str) -> str:
        wrong = self.misbehave
        now = int(self.clock.now().timestamp())
        claims = dict(grant.person)
        if wrong.email_only_in_userinfo:
            claims.pop("email", None)
        claims.update(
            iss=wrong.issuer or self.issuer,
            aud=wrong.audience or grant.client_id,
            iat=now - 3600 if wrong.expired else now,
            exp=now - 1800 if wrong.expired else now + 300,
            nonce=wrong.nonce or grant.nonce,
            at_hash=_at_hash(access_token),
        )
        key = self.unpublished_key if wrong.wrong_key else self.key
        return jwt.encode({"alg": "RS256", "kid": "signing-1"}, claims, key)

    def userinfo(self, authorization: str | None) -> tuple[int, dict[str, Any]]:
        token = (authorization or "").removeprefix("Bearer ").strip()
        person = self._access.get(token)
        if person is None:
            return 401, {"error": "invalid_token"}
        return 200, person

    def jwks(self) -> dict[str, Any]:
        return KeySet([self.key]).as_dict(private=False)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if not isinstance(body, bytes):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/.well-known/openid-configuration":
                    self._send(200, provider.metadata())
                elif parts.path == "/jwks":
                    self._send(200, provider.jwks())
                elif parts.path == "/authorize":
                    status, headers, body = provider.authorize(query)
                    self._send(status, body, headers)
                elif parts.path == "/userinfo":
                    self._send(*provider.userinfo(self.headers.get("Authorization")))
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if urlsplit(self.path).path == "/token":
                    self._send(*provider.token(form, self.headers.get("Authorization")))
                else:
                    self._send(404, {"error": "not_found"})

        return Handler


def _at_hash(access_token: str) -> str:
    import hashlib

    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()
