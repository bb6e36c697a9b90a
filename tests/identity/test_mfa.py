"""Two-factor sign-in (TOTP): enrolment confirmed by a first real code, the MFA step of the API's
sign-in with its short-lived token, single-use codes (TOTP steps and backup codes), the
throttle of wrong codes, and the seed sealed at rest. Codes come from the clock the tests move."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from conftest import PASSWORD, Factory, assert_problem, bearer, count_rows, database_contains
from support.mfa import code_at, enrol, secret_of
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database


def login(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_enrolment_is_confirmed_by_a_first_real_code(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    user_id, email, token = factory.user()
    started = client.post("/api/v1/me/mfa", headers=bearer(token))
    assert started.status_code == 200, started.text
    body = started.json()
    secret = secret_of(body["provisioning_uri"])
    assert body["secret"] == secret
    assert body["provisioning_uri"].startswith("otpauth://totp/Tenantry:")
    assert body["qr_svg"].startswith("<svg") and "<script" not in body["qr_svg"]
    assert started.headers["cache-control"] == "no-store"
    status = client.get("/api/v1/me/mfa", headers=bearer(token)).json()
    assert status == {
        "user_id": user_id,
        "enabled": False,
        "pending": True,
        "confirmed_at": None,
        "backup_codes_remaining": 0,
    }
    # Not yet on: the password alone still signs in.
    assert "access_token" in login(client, email).json()

    before = count_rows(database)
    wrong = client.post("/api/v1/me/mfa/confirm", headers=bearer(token), json={"code": "000000"})
    assert_problem(wrong, 422, "invalid_mfa_code")
    assert count_rows(database) == before

    code = code_at(secret, clock.now())
    confirmed = client.post("/api/v1/me/mfa/confirm", headers=bearer(token), json={"code": code})
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["backup_codes"]
    assert len(codes) == 10 == len(set(codes))
    status = client.get("/api/v1/me/mfa", headers=bearer(token)).json()
    assert status["enabled"] is True and status["backup_codes_remaining"] == 10
    # Sealed at rest: neither the seed nor a backup code is stored as such.
    assert database_contains(database, secret) == []
    assert database_contains(database, codes[0]) == []
    again = client.post("/api/v1/me/mfa", headers=bearer(token))
    assert_problem(again, 409, "mfa_already_enabled")


def test_sign_in_is_a_second_step_with_its_own_token(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    _, email, token = factory.user()
    secret, _ = enrol(client, bearer(token), clock.now())
    clock.advance(seconds=30)  # the enrolment's code is used; the next step's is fresh

    first = login(client, email)
    assert first.status_code == 200, first.text
    step = first.json()
    assert step["mfa_required"] is True and "access_token" not in step
    assert step["enrolment_required"] is False
    code = code_at(secret, clock.now())
    done = client.post("/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": code})
    assert done.status_code == 200, done.text
    assert client.get("/api/v1/me", headers=bearer(done.json()["access_token"])).status_code == 200
    assert done.json()["backup_codes"] == []

    # The MFA token is good once; the same code is good once.
    reused = client.post("/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": code})
    assert_problem(reused, 401, "invalid_mfa_token")
    second = login(client, email).json()
    replay = client.post("/api/v1/auth/mfa", json={"mfa_token": second["mfa_token"], "code": code})
    assert_problem(replay, 401, "invalid_mfa_code")
    clock.advance(seconds=30)
    fresh = code_at(secret, clock.now())
    ok = client.post("/api/v1/auth/mfa", json={"mfa_token": second["mfa_token"], "code": fresh})
    assert ok.status_code == 200, ok.text

    # The token lasts five minutes.
    third = login(client, email).json()
    clock.advance(minutes=5, seconds=1)
    late = client.post(
        "/api/v1/auth/mfa",
        json={"mfa_token": third["mfa_token"], "code": code_at(secret, clock.now())},
    )
    assert_problem(late, 401, "invalid_mfa_token")


def test_a_code_from_one_step_either_side_is_accepted(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    _, email, token = factory.user()
    secret, _ = enrol(client, bearer(token), clock.now())
    clock.advance(minutes=2)
    step = login(client, email).json()
    behind = code_at(secret, clock.now() - timedelta(seconds=30))
    done = client.post("/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": behind})
    assert done.status_code == 200, done.text
    step = login(client, email).json()
    stale = code_at(secret, clock.now() - timedelta(seconds=90))
    refused = client.post("/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": stale})
    assert_problem(refused, 401, "invalid_mfa_code")


def test_backup_codes_are_single_use_and_regenerable(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    _, email, token = factory.user()
    secret, codes = enrol(client, bearer(token), clock.now())
    step = login(client, email).json()
    used = client.post(
        "/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": codes[0].upper()}
    )
    assert used.status_code == 200, used.text
    assert client.get("/api/v1/me/mfa", headers=bearer(token)).json()["backup_codes_remaining"] == 9
    step = login(client, email).json()
    again = client.post("/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": codes[0]})
    assert_problem(again, 401, "invalid_mfa_code")

    clock.advance(seconds=30)
    regenerated = client.post(
        "/api/v1/me/mfa/backup-codes",
        headers=bearer(token),
        json={"code": code_at(secret, clock.now())},
    )
    assert regenerated.status_code == 200, regenerated.text
    new_codes = regenerated.json()["backup_codes"]
    assert len(new_codes) == 10 and not set(new_codes) & set(codes)
    step = login(client, email).json()
    old = client.post("/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": codes[1]})
    assert_problem(old, 401, "invalid_mfa_code")
    new = client.post(
        "/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": new_codes[1]}
    )
    assert new.status_code == 200, new.text


def test_wrong_codes_are_throttled_like_passwords(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    _, email, token = factory.user()
    secret, _ = enrol(client, bearer(token), clock.now())
    clock.advance(seconds=30)
    for _ in range(5):  # the deployment's login_max_failures
        step = login(client, email).json()
        wrong = client.post(
            "/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": "123456"}
        )
        assert_problem(wrong, 401, "invalid_mfa_code")
    # Locked: even the right code waits, and a new challenge gives no fresh attempts.
    step = login(client, email).json()
    right = code_at(secret, clock.now())
    locked = client.post("/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": right})
    body = assert_problem(locked, 429, "mfa_throttled")
    assert int(locked.headers["retry-after"]) == body["retry_after"] > 0
    clock.advance(seconds=301)
    step = login(client, email).json()
    later = code_at(secret, clock.now())
    ok = client.post("/api/v1/auth/mfa", json={"mfa_token": step["mfa_token"], "code": later})
    assert ok.status_code == 200, ok.text


def test_disabling_needs_a_code_and_restores_password_sign_in(
    client: TestClient, factory: Factory, clock: FrozenClock, database: Database
) -> None:
    _, email, token = factory.user()
    secret, _ = enrol(client, bearer(token), clock.now())
    clock.advance(seconds=30)
    wrong = client.post("/api/v1/me/mfa/disable", headers=bearer(token), json={"code": "999999"})
    assert_problem(wrong, 422, "invalid_mfa_code")
    assert client.get("/api/v1/me/mfa", headers=bearer(token)).json()["enabled"] is True
    off = client.post(
        "/api/v1/me/mfa/disable", headers=bearer(token), json={"code": code_at(secret, clock.now())}
    )
    assert off.status_code == 204, off.text
    assert "access_token" in login(client, email).json()
    assert count_rows(database)["mfa_backup_codes"] == 0


def test_people_without_mfa_sign_in_as_before(client: TestClient, factory: Factory) -> None:
    _, email, _ = factory.user()
    resp = login(client, email)
    assert resp.status_code == 200
    assert set(resp.json()) >= {"access_token", "refresh_token", "session_id", "user"}
    assert "mfa_required" not in resp.json()


def test_an_api_key_cannot_manage_a_second_factor(client: TestClient, factory: Factory) -> None:
    tenant = factory.tenant()
    key = factory.api_key(tenant)
    resp = client.post("/api/v1/me/mfa", headers=bearer(key["secret"]))
    assert_problem(resp, 403, "api_key_cannot_manage_mfa")
