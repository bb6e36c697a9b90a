"""Route-table entries of two-factor sign-in and the org security policy (see
tests/matrix/routes.py for what an entry says).

A person's second factor is made through the API itself, with real TOTP codes at the time of
the shared app's clock; a route that needs a code of an enrolled person is sent one of their
backup codes (each good once), so no route waits for the next TOTP step.
"""

from __future__ import annotations

from typing import Any

from conftest import PASSWORD, bearer
from matrix.routes import PUBLIC, SELF, Account, RouteCase, World, _case
from support.mfa import code_at, secret_of
from tenantry.authz.catalog import Permission as P


def _now(world: World) -> Any:
    app: Any = world.client.app
    return app.state.clock.now()


def _codes(world: World) -> dict[str, list[str]]:
    """Unused backup codes by person, for the routes that need a proof."""
    found: dict[str, list[str]] = world.once("mfa_codes", lambda w: {})
    return found


def _status(world: World, account: Account) -> dict[str, Any]:
    resp = world.client.get("/api/v1/me/mfa", headers=account.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def pending_code(world: World, account: Account) -> dict[str, Any]:
    """The body that confirms a new enrolment of `account` (turned off first if it is on)."""
    if _status(world, account)["enabled"]:
        off = world.client.post(
            "/api/v1/me/mfa/disable",
            headers=account.headers,
            json={"code": _codes(world)[account.id].pop()},
        )
        assert off.status_code == 204, off.text
    started = world.client.post("/api/v1/me/mfa", headers=account.headers)
    assert started.status_code == 200, started.text
    return {"code": code_at(secret_of(started.json()["provisioning_uri"]), _now(world))}


def backup_code(world: World, account: Account) -> dict[str, Any]:
    """A body proving `account`'s second factor (enrolled first if need be)."""
    if not _status(world, account)["enabled"]:
        confirmed = world.client.post(
            "/api/v1/me/mfa/confirm", headers=account.headers, json=pending_code(world, account)
        )
        assert confirmed.status_code == 200, confirmed.text
        _codes(world)[account.id] = list(confirmed.json()["backup_codes"])
    return {"code": _codes(world)[account.id].pop()}


def _owner_first(body: Any) -> Any:
    # The owner's second session is made while a password alone still signs them in.
    def make(world: World) -> dict[str, Any]:
        world.login  # noqa: B018 - made on first use
        return dict(body(world, world.owner))

    return make


def mfa_step(world: World) -> dict[str, Any]:
    """A person with a second factor who gave the right password: the body of the MFA step."""
    account = world.signup()
    code = backup_code(world, account)
    resp = world.client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert resp.status_code == 200 and resp.json()["mfa_required"], resp.text
    return {"mfa_token": resp.json()["mfa_token"], "code": code["code"]}


def enrolment_token(world: World) -> dict[str, Any]:
    """The owner of an org of its own that requires MFA at once, having given the right
    password: their sign-in waits for an enrolment."""
    tenant = world.factory.tenant()
    resp = world.client.put(
        f"/api/v1/orgs/{tenant.org_id}/security-policy",
        headers=bearer(tenant.token),
        json={"mfa": {"required": True, "grace_days": 0}},
    )
    assert resp.status_code == 200, resp.text
    resp = world.client.post(
        "/api/v1/auth/login", json={"email": tenant.owner_email, "password": PASSWORD}
    )
    assert resp.status_code == 200 and resp.json()["enrolment_required"], resp.text
    return {"mfa_token": resp.json()["mfa_token"]}


POLICY = {
    "password": {
        "min_length": 14,
        "require_digit": True,
        "min_complexity": 60,
        "history": 5,
        "max_age_days": 365,
        "lockout_attempts": 5,
        "lockout_minutes": 15,
    },
    "mfa": {"required": True, "grace_days": 7},
    "sessions": {"idle_timeout_minutes": 60, "absolute_timeout_minutes": 720},
    "ip_allowlist": [],
}

CASES: list[RouteCase] = [
    _case("POST", "/auth/mfa", PUBLIC, body=mfa_step),
    _case("POST", "/auth/mfa/enrolment", PUBLIC, body=enrolment_token),
    _case("GET", "/me/mfa", SELF),
    _case("POST", "/me/mfa", SELF),
    _case(
        "POST",
        "/me/mfa/confirm",
        SELF,
        body=_owner_first(pending_code),
        own=lambda w, account: ({}, pending_code(w, account)),
    ),
    _case(
        "POST",
        "/me/mfa/disable",
        SELF,
        body=_owner_first(backup_code),
        own=lambda w, account: ({}, backup_code(w, account)),
    ),
    _case(
        "POST",
        "/me/mfa/backup-codes",
        SELF,
        body=_owner_first(backup_code),
        own=lambda w, account: ({}, backup_code(w, account)),
    ),
    _case("DELETE", "/orgs/{org}/members/{user}/mfa", P.MEMBER_MFA_RESET, scope="org"),
    _case("GET", "/orgs/{org}/security-policy", P.ORG_READ, scope="org"),
    _case(
        "PUT", "/orgs/{org}/security-policy", P.SECURITY_MANAGE, scope="org", body=lambda w: POLICY
    ),
]
