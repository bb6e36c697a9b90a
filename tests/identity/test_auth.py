"""Sign-up, sign-in, token rotation, sessions, failed-login throttling and forged access tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import PASSWORD, assert_problem, bearer, count_rows, database_contains
from tenantry.config import Settings
from tenantry.identity.models import LoginThrottle, RefreshToken
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.kit.security import public_key_pem, signing_key


def signup(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    resp = client.post("/api/v1/auth/signup", json={"email": email, "password": password})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def refresh(client: TestClient, token: str) -> Any:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def me(client: TestClient, token: str) -> Any:
    return client.get("/api/v1/me", headers=bearer(token))


# ---- sign-up and sign-in ----


def test_signup_then_me_and_login(client: TestClient) -> None:
    body = signup(client, "ada@example.com")
    assert body["user"]["email"] == "ada@example.com"
    assert body["token_type"] == "bearer"
    assert body["refresh_token"] != body["access_token"]
    resp = me(client, body["access_token"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"]["id"] == body["user"]["id"]
    assert resp.json()["principal_type"] == "user"

    logged = login(client, "ada@example.com")
    assert logged.status_code == 200, logged.text
    assert logged.json()["session_id"] != body["session_id"]
    assert me(client, logged.json()["access_token"]).status_code == 200


def test_login_with_wrong_password_or_unknown_email_is_401(client: TestClient) -> None:
    signup(client, "bob@example.com")
    wrong = login(client, "bob@example.com", "not the password at all")
    unknown = login(client, "nobody@example.com")
    assert_problem(wrong, 401, "invalid_credentials")
    assert_problem(unknown, 401, "invalid_credentials")
    # Same answer either way: a failed login does not reveal whether the account exists.
    assert wrong.json()["detail"] == unknown.json()["detail"]


@pytest.mark.parametrize(
    "password",
    ["short pass!", "a" * 11, "aaaaaaaaaaaaaaaa", "carol@example.com"],
    ids=["11-chars", "11-same", "repetitive", "is-the-email"],
)
def test_password_policy_refuses_weak_passwords(
    client: TestClient, database: Database, password: str
) -> None:
    before = count_rows(database)
    resp = client.post(
        "/api/v1/auth/signup", json={"email": "carol@example.com", "password": password}
    )
    assert_problem(resp, 422, "weak_password")
    assert count_rows(database) == before


def test_password_of_exactly_twelve_characters_is_accepted(client: TestClient) -> None:
    signup(client, "dave@example.com", "abcdefghijkl")
    assert login(client, "dave@example.com", "abcdefghijkl").status_code == 200


def test_email_is_unique_regardless_of_case(client: TestClient, database: Database) -> None:
    first = signup(client, "Erin.Smith@Example.com")
    before = count_rows(database)
    again = client.post(
        "/api/v1/auth/signup", json={"email": "erin.smith@EXAMPLE.COM", "password": PASSWORD}
    )
    assert_problem(again, 409, "email_taken")
    assert count_rows(database) == before
    # Sign-in is case-insensitive too and finds the same account.
    logged = login(client, "ERIN.SMITH@example.com")
    assert logged.status_code == 200, logged.text
    assert logged.json()["user"]["id"] == first["user"]["id"]


# ---- refresh-token rotation ----


def test_refresh_rotates_tokens(client: TestClient, database: Database) -> None:
    body = signup(client, "frank@example.com")
    rotated = refresh(client, body["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["refresh_token"] != body["refresh_token"]
    assert new["session_id"] == body["session_id"]
    assert me(client, new["access_token"]).status_code == 200
    assert refresh(client, new["refresh_token"]).status_code == 200
    # Refresh tokens are stored only as hashes.
    with database.session(write=False) as session:
        stored = list(session.scalars(select(RefreshToken.token_hash)))
    assert hashlib.sha256(body["refresh_token"].encode()).hexdigest() in stored
    assert body["refresh_token"] not in stored


def test_tokens_are_nowhere_in_the_database_in_the_clear(
    client: TestClient, database: Database
) -> None:
    # With an Idempotency-Key the response (tokens included) is kept for replays: encrypted.
    headers = {"Idempotency-Key": "signup-1"}
    body = {"email": "fay@example.com", "password": PASSWORD}
    first = client.post("/api/v1/auth/signup", headers=headers, json=body)
    assert first.status_code == 201, first.text
    tokens = first.json()
    logged = client.post("/api/v1/auth/login", headers=headers, json=body).json()
    rotated = client.post(
        "/api/v1/auth/refresh",
        headers=headers,
        json={"refresh_token": logged["refresh_token"]},
    ).json()
    for secret in (tokens, logged, rotated):
        for name in ("refresh_token", "access_token"):
            assert database_contains(database, secret[name][4:]) == [], name
    assert database_contains(database, PASSWORD) == []
    replay = client.post("/api/v1/auth/signup", headers=headers, json=body)
    assert replay.json()["refresh_token"] == tokens["refresh_token"]


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(client: TestClient) -> None:
    body = signup(client, "grace@example.com")
    newer = refresh(client, body["refresh_token"]).json()
    other = login(client, "grace@example.com").json()  # another device, another family

    reused = refresh(client, body["refresh_token"])
    assert_problem(reused, 401, "refresh_token_reused")
    # The newer refresh token and the access tokens of that family stop working too ...
    assert_problem(refresh(client, newer["refresh_token"]), 401)
    assert_problem(me(client, newer["access_token"]), 401)
    assert_problem(me(client, body["access_token"]), 401)
    # ... while the other device's session is untouched.
    assert me(client, other["access_token"]).status_code == 200
    assert refresh(client, other["refresh_token"]).status_code == 200


def test_concurrent_refreshes_of_one_token_never_fork_the_family(
    app: FastAPI, client: TestClient
) -> None:
    body = signup(client, "gus@example.com")

    async def race() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as ac:
            return list(
                await asyncio.gather(
                    *(
                        ac.post(
                            "/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]}
                        )
                        for _ in range(10)
                    )
                )
            )

    answers = asyncio.run(race())
    assert all(a.status_code in (200, 401) for a in answers), [a.text for a in answers]
    winners = [a.json() for a in answers if a.status_code == 200]
    assert len(winners) <= 1, "one refresh token was exchanged more than once"
    # Presenting it more than once is reuse: the family is revoked, the winner's tokens too.
    if len(answers) - len(winners) > 0:
        for won in winners:
            assert_problem(refresh(client, won["refresh_token"]), 401)
            assert_problem(me(client, won["access_token"]), 401)


def test_unknown_refresh_token_is_401(client: TestClient) -> None:
    assert_problem(refresh(client, "tnr_made-up"), 401, "invalid_refresh_token")


# ---- logout and session revocation ----


def test_logout_takes_effect_on_the_next_request(client: TestClient) -> None:
    body = signup(client, "heidi@example.com")
    assert me(client, body["access_token"]).status_code == 200
    out = client.post("/api/v1/auth/logout", headers=bearer(body["access_token"]))
    assert out.status_code == 204, out.text
    assert_problem(me(client, body["access_token"]), 401, "session_ended")
    assert_problem(refresh(client, body["refresh_token"]), 401)


def test_revoking_a_session_takes_effect_on_the_next_request(client: TestClient) -> None:
    first = signup(client, "ivan@example.com")
    second = login(client, "ivan@example.com").json()
    listed = client.get("/api/v1/me/sessions", headers=bearer(first["access_token"]))
    assert listed.status_code == 200, listed.text
    by_id = {s["id"]: s for s in listed.json()["items"]}
    assert set(by_id) == {first["session_id"], second["session_id"]}
    assert by_id[first["session_id"]]["current"] is True
    assert by_id[second["session_id"]]["current"] is False

    assert me(client, second["access_token"]).status_code == 200
    gone = client.delete(
        f"/api/v1/me/sessions/{second['session_id']}", headers=bearer(first["access_token"])
    )
    assert gone.status_code == 204, gone.text
    assert_problem(me(client, second["access_token"]), 401, "session_ended")
    assert_problem(refresh(client, second["refresh_token"]), 401)
    assert me(client, first["access_token"]).status_code == 200
    listed = client.get("/api/v1/me/sessions", headers=bearer(first["access_token"]))
    assert [s["id"] for s in listed.json()["items"]] == [first["session_id"]]


def test_password_change_applies_the_policy_and_ends_other_sessions(client: TestClient) -> None:
    here = signup(client, "pam@example.com")
    there = login(client, "pam@example.com").json()
    url = "/api/v1/me/password"
    weak = client.post(
        url,
        headers=bearer(here["access_token"]),
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    assert_problem(weak, 422)
    wrong = client.post(
        url,
        headers=bearer(here["access_token"]),
        json={"current_password": "not my password", "new_password": "a new long passphrase"},
    )
    assert_problem(wrong, 401)
    assert me(client, there["access_token"]).status_code == 200
    changed = client.post(
        url,
        headers=bearer(here["access_token"]),
        json={"current_password": PASSWORD, "new_password": "a new long passphrase"},
    )
    assert changed.status_code == 204, changed.text
    assert me(client, here["access_token"]).status_code == 200
    assert_problem(me(client, there["access_token"]), 401)
    assert_problem(refresh(client, there["refresh_token"]), 401)
    assert_problem(login(client, "pam@example.com"), 401)
    assert login(client, "pam@example.com", "a new long passphrase").status_code == 200


def test_refresh_token_ends_with_its_session(client: TestClient, clock: FrozenClock) -> None:
    body = signup(client, "ray@example.com")
    clock.advance(days=29)
    kept = refresh(client, body["refresh_token"])
    assert kept.status_code == 200, kept.text
    clock.advance(days=1)
    assert_problem(refresh(client, kept.json()["refresh_token"]), 401, "session_ended")


def test_cannot_revoke_someone_elses_session(client: TestClient) -> None:
    judy = signup(client, "judy@example.com")
    mallory = signup(client, "mallory@example.com")
    resp = client.delete(
        f"/api/v1/me/sessions/{judy['session_id']}", headers=bearer(mallory["access_token"])
    )
    assert_problem(resp, 404)
    assert me(client, judy["access_token"]).status_code == 200


# ---- failed-login throttling ----


def test_failed_logins_lock_the_account_until_the_clock_moves(
    client: TestClient, clock: FrozenClock
) -> None:
    signup(client, "kim@example.com")
    signup(client, "lee@example.com")
    for _ in range(5):
        assert_problem(login(client, "kim@example.com", "wrong password here"), 401)
    locked = login(client, "kim@example.com")  # the right password, still refused
    body = assert_problem(locked, 429, "login_throttled")
    wait = int(locked.headers["Retry-After"])
    assert 0 < wait <= 3600
    assert body["retry_after"] == wait
    # Another account is unaffected.
    assert login(client, "lee@example.com").status_code == 200

    clock.advance(seconds=wait - 5)
    assert_problem(login(client, "kim@example.com"), 429, "login_throttled")
    clock.advance(seconds=5)
    unlocked = login(client, "kim@example.com")
    assert unlocked.status_code == 200, unlocked.text
    # A success clears the count: one more failure does not lock again.
    assert_problem(login(client, "kim@example.com", "wrong password here"), 401)
    assert login(client, "kim@example.com").status_code == 200


def test_concurrent_failed_logins_are_all_counted(
    app: FastAPI, client: TestClient, database: Database
) -> None:
    signup(client, "pat@example.com")

    async def guesses() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as ac:
            return list(
                await asyncio.gather(
                    *(
                        ac.post(
                            "/api/v1/auth/login",
                            json={"email": "pat@example.com", "password": f"guess number {i}"},
                        )
                        for i in range(20)
                    )
                )
            )

    answers = asyncio.run(guesses())
    assert all(a.status_code in (401, 429) for a in answers), [
        (a.status_code, a.json()["code"]) for a in answers
    ]
    with database.session(write=False) as session:
        throttle = session.get(LoginThrottle, "pat@example.com")
        assert throttle is not None
        failures = throttle.failures
    assert failures == sum(a.status_code == 401 for a in answers)
    assert failures >= 5
    assert_problem(login(client, "pat@example.com"), 429, "login_throttled")


def test_four_failures_do_not_lock(client: TestClient) -> None:
    signup(client, "mia@example.com")
    for _ in range(4):
        assert_problem(login(client, "mia@example.com", "wrong password here"), 401)
    assert login(client, "mia@example.com").status_code == 200


def test_throttle_applies_to_unknown_emails_too(client: TestClient) -> None:
    for _ in range(5):
        assert_problem(login(client, "ghost@example.com"), 401)
    assert_problem(login(client, "ghost@example.com"), 429, "login_throttled")


# ---- forged and tampered access tokens ----


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


@pytest.fixture
def server_key(app: FastAPI, settings: Settings) -> Ed25519PrivateKey:
    """The server's own signing key, so forged tokens differ from real ones in one thing only."""
    key = signing_key(settings.server_secret(), "jwt-access")
    assert public_key_pem(key.public_key()) == public_key_pem(app.state.tokens.public_key)
    return key


@pytest.fixture
def victim(client: TestClient) -> dict[str, Any]:
    body = signup(client, "victim@example.com")
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    return {"claims": claims, **body}


def _sign(key: Ed25519PrivateKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key, algorithm="EdDSA")


def test_a_token_signed_with_the_server_key_is_accepted(
    client: TestClient, server_key: Ed25519PrivateKey, victim: dict[str, Any]
) -> None:
    # The control for the attacks below: the forging helper itself makes valid tokens.
    assert me(client, _sign(server_key, dict(victim["claims"]))).status_code == 200


def _forgeries(
    app: FastAPI, key: Ed25519PrivateKey, claims: dict[str, Any], now: int
) -> dict[str, str]:
    public_pem = public_key_pem(app.state.tokens.public_key).encode()
    hs_input = _unsigned({"alg": "HS256", "typ": "JWT"}, claims)
    hs_signature = hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest()
    real = _sign(key, claims)
    header, payload, signature = real.split(".")
    tampered = {**claims, "sub": "usr_someone_else"}

    def without(name: str) -> dict[str, Any]:
        return {k: v for k, v in claims.items() if k != name}

    return {
        "alg-none": _unsigned({"alg": "none", "typ": "JWT"}, claims) + ".",
        "alg-none-with-signature": _unsigned({"alg": "none"}, claims) + "." + signature,
        "hs256-with-public-key": f"{hs_input}.{_b64(hs_signature)}",
        "wrong-key": _sign(Ed25519PrivateKey.generate(), claims),
        "tampered-payload": f"{header}.{_b64(json.dumps(tampered).encode())}.{signature}",
        "truncated-signature": f"{header}.{payload}.{signature[:-6]}",
        "wrong-audience": _sign(key, {**claims, "aud": "someone-else"}),
        "wrong-issuer": _sign(key, {**claims, "iss": "https://evil.example"}),
        "future-nbf": _sign(key, {**claims, "nbf": now + 3600}),
        "already-expired": _sign(key, {**claims, "exp": now - 1}),
        "missing-sub": _sign(key, without("sub")),
        "missing-sid": _sign(key, without("sid")),
        "missing-exp": _sign(key, without("exp")),
        "not-an-access-token": _sign(key, {**claims, "typ": "refresh"}),
        "numeric-sid": _sign(key, {**claims, "sid": 12345}),
        "numeric-sub": _sign(key, {**claims, "sub": 12345}),
        "text-exp": _sign(key, {**claims, "exp": "tomorrow"}),
        "text-nbf": _sign(key, {**claims, "nbf": "yesterday"}),
        "audience-list": _sign(key, {**claims, "aud": ["someone-else"]}),
        "unknown-session": _sign(key, {**claims, "sid": "ses_doesnotexist"}),
        "garbage": "this-is-not-a-token",
        "three-garbage-parts": "a.b.c",
        "empty-parts": "..",
    }


FORGERY_NAMES = [
    "alg-none",
    "alg-none-with-signature",
    "hs256-with-public-key",
    "wrong-key",
    "tampered-payload",
    "truncated-signature",
    "wrong-audience",
    "wrong-issuer",
    "future-nbf",
    "already-expired",
    "missing-sub",
    "missing-sid",
    "missing-exp",
    "not-an-access-token",
    "numeric-sid",
    "numeric-sub",
    "text-exp",
    "text-nbf",
    "audience-list",
    "unknown-session",
    "garbage",
    "three-garbage-parts",
    "empty-parts",
]


@pytest.mark.parametrize("attack", FORGERY_NAMES)
def test_forged_access_tokens_are_refused(
    client: TestClient,
    app: FastAPI,
    clock: FrozenClock,
    server_key: Ed25519PrivateKey,
    victim: dict[str, Any],
    attack: str,
    database: Database,
) -> None:
    now = int(clock.now().timestamp())
    token = _forgeries(app, server_key, dict(victim["claims"]), now)[attack]
    before = count_rows(database)
    assert_problem(me(client, token), 401)
    # A write is refused the same way, and nothing is written.
    resp = client.post("/api/v1/orgs", headers=bearer(token), json={"name": "Forged"})
    assert_problem(resp, 401)
    assert count_rows(database) == before
    assert me(client, victim["access_token"]).status_code == 200


def test_access_token_expires_when_the_clock_passes_its_lifetime(
    client: TestClient, clock: FrozenClock
) -> None:
    body = signup(client, "nina@example.com")
    clock.advance(seconds=body_lifetime(body) - 1)
    assert me(client, body["access_token"]).status_code == 200
    clock.advance(seconds=1)
    assert_problem(me(client, body["access_token"]), 401, "invalid_token")
    # The refresh token still gets a fresh access token.
    fresh = refresh(client, body["refresh_token"])
    assert fresh.status_code == 200, fresh.text
    assert me(client, fresh.json()["access_token"]).status_code == 200


def body_lifetime(body: dict[str, Any]) -> int:
    lifetime = int(body["expires_in"])
    assert 0 < lifetime <= int(timedelta(hours=1).total_seconds())
    return lifetime


def test_tokens_work_when_the_server_clock_is_far_from_the_wall_clock(
    client: TestClient, clock: FrozenClock
) -> None:
    # Validity is judged by the server's Clock alone (tests, and servers whose clock the wall
    # clock's is not), so a token issued "in the future" by wall time is still good.
    clock.advance(days=3650)
    body = signup(client, "olga@example.com")
    assert me(client, body["access_token"]).status_code == 200
    assert refresh(client, body["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer tnt_not-a-key"],
)
def test_missing_or_malformed_authorization_is_401(client: TestClient, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    resp = client.get("/api/v1/me", headers=headers)
    assert_problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
