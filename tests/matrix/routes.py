"""The route table the generated suites walk: test_isolation, test_role_matrix, test_audit_coverage.

For every route of the app, keyed by (method, path template): how to make a valid request (path
parameters and a JSON body, built from a seeded `World`), who may make it (`rule`: a permission of
the catalog, or PUBLIC / SELF / INVITEE / OPERATOR) and where that permission is checked
(`scope`: the org or the team). The suites parametrize over the app's own route table, so a
route added to the app without an entry here fails every suite, naming the route: add its entry.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from conftest import PASSWORD, Factory, Tenant, bearer, count_rows
from support.stripe_fake import WEBHOOK_SECRET
from tenantry.app import create_app
from tenantry.audit.models import AuditEvent
from tenantry.authz.catalog import (
    ORG_MEMBER_PERMISSIONS,
    ORG_ROLE_AS_TEAM_ROLE,
    TEAM_ROLE_PERMISSIONS,
    TEAM_ROLE_RANK,
    OrgRole,
    Permission,
    TeamRole,
    org_role_permissions,
)
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.context import MUTATING_METHODS
from tenantry.kit.db import Database
from tenantry.web.pages import PageRoute

P = Permission
RouteKey = tuple[str, str]

# Who may call a route that no permission of the catalog governs.
PUBLIC = "public"  # no credentials needed (sign-up, sign-in, onboarding, health)
SELF = "self"  # any signed-in user, acting on their own account, sessions or new orgs
INVITEE = "invitee"  # only the user an invitation was sent to
OPERATOR = "operator"  # only the deployment's operators (members of no org by being one)
Rule = Permission | Literal["public", "self", "invitee", "operator"]


# ---- a seeded organization ----


@dataclass(frozen=True)
class WorldExtra:
    """What a later domain's routes need from a World (see tests/matrix/routes_<domain>.py): `seed`
    makes its things (through `World.once`), `ids` names every id of them a response could
    reveal. Both run in `World.seed_all` and `World.ids`."""

    seed: Callable[[World], None]
    ids: Callable[[World], set[str]]


WORLD_EXTRAS: list[WorldExtra] = []


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@dataclass(frozen=True)
class Issued:
    """Something with an id and a secret shown once: an API key, an invitation, a login."""

    id: str
    secret: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.secret)


class World:
    """An onboarded org (owner, default team) and, made on first use, the things routes point at:
    a member (team editor), a spare org member with no team, an invitee with a pending org
    invitation, an org API key and a second login session of the owner."""

    def __init__(self, client: TestClient, factory: Factory, name: str) -> None:
        self.client = client
        self.factory = factory
        self.label = name.split()[0].lower()
        # Starter: room for the members a world signs up (Free allows five); quotas have tests
        # of their own.
        self.tenant: Tenant = factory.tenant(name, plan="starter")
        self._made: dict[str, Any] = {}

    def once(self, name: str, make: Callable[[World], Any]) -> Any:
        """Something a domain's routes point at, made on first use and kept for this world."""
        if name not in self._made:
            self._made[name] = make(self)
        return self._made[name]

    @property
    def org_id(self) -> str:
        return self.tenant.org_id

    @property
    def org_slug(self) -> str:
        return self.tenant.org_slug

    @property
    def team_id(self) -> str:
        return self.tenant.team_id

    @cached_property
    def team_slug(self) -> str:
        resp = self.client.get(f"/api/v1/teams/{self.team_id}", headers=self.owner.headers)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["slug"])

    @cached_property
    def owner(self) -> Account:
        return Account(self.tenant.owner_id, self.tenant.owner_email, self.tenant.token)

    def fresh_email(self) -> str:
        return f"{self.label}-{secrets.token_hex(5)}@example.com"

    def signup(self) -> Account:
        email = self.fresh_email()
        user_id, _, token = self.factory.user(email)
        return Account(user_id, email, token)

    def invite(self, email: str, role: str = "member", team_id: str | None = None) -> Issued:
        body: dict[str, Any] = {"email": email, "role": role}
        if team_id is not None:
            body["team_id"] = team_id
        resp = self.client.post(
            f"/api/v1/orgs/{self.org_id}/invitations", headers=self.owner.headers, json=body
        )
        assert resp.status_code == 201, resp.text
        return Issued(resp.json()["id"], resp.json()["token"])

    def join(self, *, org_role: str = "member", team_role: str | None = None) -> Account:
        """A new user who accepted an invitation (and was added to the default team)."""
        account = self.signup()
        invitation = self.invite(account.email, org_role)
        resp = self.client.post(
            f"/api/v1/invitations/{invitation.secret}/accept", headers=account.headers
        )
        assert resp.status_code == 200, resp.text
        if team_role is not None:
            resp = self.client.post(
                f"/api/v1/teams/{self.team_id}/members",
                headers=self.owner.headers,
                json={"user": account.id, "role": team_role},
            )
            assert resp.status_code == 201, resp.text
        return account

    @cached_property
    def member(self) -> Account:
        return self.join(team_role="editor")

    @cached_property
    def spare(self) -> Account:
        return self.join()

    @cached_property
    def invitee(self) -> Account:
        return self.signup()

    @cached_property
    def co_owner(self) -> Account:
        """A second owner, so that the first may erase their account (the last owner may not)."""
        return self.join(org_role="owner")

    def erasure(self, account: Account) -> dict[str, Any]:
        """The body that erases `account`; the org gets a second owner first if it needs one."""
        if account.id == self.owner.id:
            self.co_owner  # noqa: B018 - made on first use
        return {"confirm": account.email}

    @cached_property
    def invitation(self) -> Issued:
        return self.invite(self.invitee.email)

    @cached_property
    def api_key(self) -> Issued:
        key = self.factory.api_key(self.tenant)
        return Issued(key["id"], key["secret"])

    @cached_property
    def login(self) -> Issued:
        """A second session of the owner: (session id, refresh token)."""
        resp = self.client.post(
            "/api/v1/auth/login", json={"email": self.owner.email, "password": PASSWORD}
        )
        assert resp.status_code == 200, resp.text
        return Issued(resp.json()["session_id"], resp.json()["refresh_token"])

    @cached_property
    def checkpoint(self) -> str:
        resp = self.client.post(
            f"/api/v1/orgs/{self.org_id}/audit-checkpoints", headers=self.owner.headers
        )
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def seed_all(self) -> None:
        for name in ("team_slug", "member", "spare", "invitation", "api_key", "login"):
            getattr(self, name)
        for extra in WORLD_EXTRAS:
            extra.seed(self)
        self.checkpoint  # noqa: B018 - signs the head over everything seeded above

    def ids(self) -> set[str]:
        """Every identifier of this world a response could reveal (after `seed_all`)."""
        found = {self.org_id, self.org_slug, self.team_id}
        for account in (self.owner, self.member, self.spare, self.invitee):
            found |= {account.id, account.email}
        found |= {self.invitation.id, self.api_key.id, self.login.id, self.checkpoint}
        for extra in WORLD_EXTRAS:
            found |= extra.ids(self)
        return found

    def headers_for(self, case: RouteCase) -> dict[str, str]:
        """The credential of whoever may legitimately make the request of `case`."""
        if case.rule == PUBLIC:
            return {}
        if case.rule == INVITEE:
            return self.invitee.headers
        if case.rule == OPERATOR:
            return self.factory.operator().headers
        return self.owner.headers

    def suspended(self) -> str:
        """This world's org, suspended by an operator (for the route that resumes it)."""
        resp = self.client.post(
            f"/api/v1/operator/tenants/{self.org_id}/suspend",
            headers=self.factory.operator().headers,
            json={},
        )
        assert resp.status_code == 200, resp.text
        return self.org_id


# ---- the built-in roles, and what the catalog gives them ----


@dataclass(frozen=True)
class Role:
    org_role: OrgRole
    team_role: TeamRole | None = None  # on the org's default team

    def granted(self, scope: str | None) -> frozenset[Permission]:
        """What the catalog gives this role in the org, or on the default team."""
        if scope == "org":
            return org_role_permissions(self.org_role)
        found = set(ORG_MEMBER_PERMISSIONS)
        as_team = ORG_ROLE_AS_TEAM_ROLE[self.org_role]
        for team_role in (as_team, self.team_role):
            if team_role is not None:
                found |= TEAM_ROLE_PERMISSIONS[team_role]
        return frozenset(found)

    def team_rank(self) -> int:
        """The rank of the highest team role held on the default team, directly or via the org."""
        held = [r for r in (ORG_ROLE_AS_TEAM_ROLE[self.org_role], self.team_role) if r]
        return max((TEAM_ROLE_RANK[r] for r in held), default=0)


# Weakest first.
ROLES: dict[str, Role] = {
    "org member": Role(OrgRole.MEMBER),
    "team viewer": Role(OrgRole.MEMBER, TeamRole.VIEWER),
    "team editor": Role(OrgRole.MEMBER, TeamRole.EDITOR),
    "team admin": Role(OrgRole.MEMBER, TeamRole.ADMIN),
    "team owner": Role(OrgRole.MEMBER, TeamRole.OWNER),
    "org admin": Role(OrgRole.ADMIN),
    "org owner": Role(OrgRole.OWNER),
}


def actor(world: World, role: Role) -> Account:
    if role.org_role is OrgRole.OWNER:
        return world.owner
    return world.join(
        org_role=role.org_role.value, team_role=role.team_role.value if role.team_role else None
    )


# ---- the table ----

# Where a path parameter's value comes from, by the parameter's name.
PARAMS: dict[str, Callable[[World], str]] = {
    "org": lambda w: w.org_id,
    "team": lambda w: w.team_id,
    "user": lambda w: w.member.id,
    "key_id": lambda w: w.api_key.id,
    "invitation_id": lambda w: w.invitation.id,
    "token": lambda w: w.invitation.secret,
    "session_id": lambda w: w.login.id,
}

Body = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str
    rule: Rule
    scope: Literal["org", "team"] | None = None
    body: Body | None = None
    # Query strings a read is also tried with (list filters), besides none.
    queries: tuple[str, ...] = ()
    # A query string sent with every request of the route, before any of `queries`: what a
    # streamed read needs to end (an event stream otherwise waits for new events for ever).
    always: str = ""
    params: dict[str, Callable[[World], str]] = field(default_factory=dict)
    # For a SELF route whose path names the caller's own account: the path parameters and body
    # with which `account` makes the request about itself.
    own: Callable[[World, Account], tuple[dict[str, str], dict[str, Any] | None]] | None = None
    # The audit events a valid request writes, all with the route's action: a number (a bulk
    # change writes one per change it makes), or, for a high-volume data path whose rows are
    # themselves the record (usage events, admission), the reason it writes none.
    audit: int | str = 1
    # For a route whose body is signed bytes rather than JSON (a provider's webhook): the exact
    # content and the headers that sign it.
    raw: Callable[[], tuple[bytes, dict[str, str]]] | None = None
    # False for a GET that is not a read: where an identity provider sends a browser back with
    # its answer, refused without one (the read suites leave it out).
    read: bool = True
    # Path parameters that name a thing within the one before them rather than an id of their
    # own (a model's version number, a metric's name, an alias): every tenant has the same
    # ones, so the isolation suite does not try another tenant's value of them alone.
    positions: tuple[str, ...] = ()
    # For a read that is itself recorded (a model version's views and downloads, with who and
    # when): the table of that record, the one thing such a read may add to.
    read_log: str | None = None
    # For a read whose answer holds none of the tenant's ids even over seeded data (a file's
    # bytes, a metric's points, the shared price list, a policy with no domain verified): why.
    # The isolation suite then checks only that it shows none of another tenant's.
    idless: str = ""

    @property
    def key(self) -> RouteKey:
        return (self.method, self.path)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING_METHODS

    @property
    def permission(self) -> Permission | None:
        return self.rule if isinstance(self.rule, Permission) else None

    def param_names(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]

    def path_params(self, world: World) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in self.param_names():
            source = self.params.get(name) or PARAMS.get(name)
            if source is None:
                pytest.fail(f"{self.id}: no value for path parameter {{{name}}}; add it to PARAMS")
            out[name] = source(world)
        return out

    def json(self, world: World) -> dict[str, Any] | None:
        return self.body(world) if self.body is not None else None


def _case(method: str, path: str, rule: Rule, **kw: Any) -> RouteCase:
    """A route of the REST API (under /api/v1)."""
    return RouteCase(method, "/api/v1" + path, rule, **kw)


NEW_PASSWORD = "a different long passphrase 7"

CASES = [
    # identity
    _case(
        "POST",
        "/auth/signup",
        PUBLIC,
        body=lambda w: {"email": w.fresh_email(), "password": PASSWORD},
    ),
    _case(
        "POST",
        "/auth/login",
        PUBLIC,
        body=lambda w: {"email": w.owner.email, "password": PASSWORD},
    ),
    _case("POST", "/auth/refresh", PUBLIC, body=lambda w: {"refresh_token": w.login.secret}),
    _case("POST", "/auth/logout", SELF),
    _case("GET", "/me", SELF),
    _case("PATCH", "/me", SELF, body=lambda w: {"full_name": "Renamed Person"}),
    _case(
        "POST",
        "/me/password",
        SELF,
        body=lambda w: {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    ),
    _case("GET", "/me/sessions", SELF),
    _case("DELETE", "/me/sessions/{session_id}", SELF),
    # personal data
    _case("GET", "/users/me/export", SELF),
    _case(
        "DELETE",
        "/users/{user_id}",
        SELF,
        params={"user_id": lambda w: w.owner.id},
        body=lambda w: w.erasure(w.owner),
        own=lambda w, account: ({"user_id": account.id}, w.erasure(account)),
    ),
    # API keys
    _case(
        "POST", "/orgs/{org}/api-keys", P.APIKEY_CREATE, scope="org", body=lambda w: {"name": "ci"}
    ),
    _case("GET", "/orgs/{org}/api-keys", P.APIKEY_READ, scope="org"),
    _case("DELETE", "/api-keys/{key_id}", P.APIKEY_REVOKE, scope="org"),
    # organizations
    _case("POST", "/orgs", SELF, body=lambda w: {"name": "Side Project"}),
    _case("GET", "/orgs", SELF),
    _case("GET", "/orgs/{org}", P.ORG_READ, scope="org"),
    _case("PATCH", "/orgs/{org}", P.ORG_UPDATE, scope="org", body=lambda w: {"name": "Renamed"}),
    _case(
        "DELETE", "/orgs/{org}", P.ORG_DELETE, scope="org", body=lambda w: {"confirm": w.org_slug}
    ),
    _case(
        "POST",
        "/orgs/{org}/transfer-ownership",
        P.ORG_TRANSFER,
        scope="org",
        body=lambda w: {"new_owner": w.member.id},
    ),
    _case("GET", "/orgs/{org}/members", P.MEMBER_READ, scope="org"),
    _case(
        "PATCH",
        "/orgs/{org}/members/{user}",
        P.MEMBER_UPDATE,
        scope="org",
        body=lambda w: {"role": "admin"},
    ),
    _case("DELETE", "/orgs/{org}/members/{user}", P.MEMBER_REMOVE, scope="org"),
    _case(
        "GET",
        "/orgs/{org}/members/{user}/export",
        P.AUDIT_READ,
        scope="org",
        read_log="privacy_requests",  # the org's register of data-subject requests
    ),
    # teams
    _case("POST", "/orgs/{org}/teams", P.TEAM_CREATE, scope="org", body=lambda w: {"name": "Lab"}),
    _case("GET", "/orgs/{org}/teams", P.TEAM_READ, scope="org"),
    _case("GET", "/teams/{team}", P.TEAM_READ, scope="team"),
    _case(
        "PATCH", "/teams/{team}", P.TEAM_UPDATE, scope="team", body=lambda w: {"description": "x"}
    ),
    _case(
        "DELETE",
        "/teams/{team}",
        P.TEAM_DELETE,
        scope="team",
        body=lambda w: {"confirm": w.team_slug},
    ),
    _case("GET", "/teams/{team}/members", P.MEMBER_READ, scope="team"),
    _case(
        "POST",
        "/teams/{team}/members",
        P.MEMBER_INVITE,
        scope="team",
        body=lambda w: {"user": w.spare.id, "role": "viewer"},
    ),
    _case(
        "PATCH",
        "/teams/{team}/members/{user}",
        P.MEMBER_UPDATE,
        scope="team",
        body=lambda w: {"role": "viewer"},
    ),
    _case("DELETE", "/teams/{team}/members/{user}", P.MEMBER_REMOVE, scope="team"),
    # invitations
    _case(
        "POST",
        "/orgs/{org}/invitations",
        P.MEMBER_INVITE,
        scope="org",
        body=lambda w: {"email": w.fresh_email(), "role": "member"},
    ),
    _case(
        "GET",
        "/orgs/{org}/invitations",
        P.MEMBER_INVITE,
        scope="org",
        queries=("status=all",),
    ),
    _case("POST", "/invitations/{token}/accept", INVITEE),
    _case("POST", "/invitations/{token}/decline", INVITEE),
    _case("DELETE", "/invitations/{invitation_id}", P.MEMBER_INVITE, scope="org"),
    # onboarding
    _case(
        "POST",
        "/onboard",
        PUBLIC,
        body=lambda w: {
            "company_name": "Fresh Start",
            "admin_email": w.fresh_email(),
            "admin_password": PASSWORD,
        },
    ),
    # audit
    _case("GET", "/orgs/{org}/audit-events", P.AUDIT_READ, scope="org", queries=("limit=200",)),
    _case("GET", "/orgs/{org}/audit-events/verify", P.AUDIT_READ, scope="org"),
    _case(
        "GET",
        "/orgs/{org}/audit-events/export",
        P.AUDIT_READ,
        scope="org",
        queries=("format=json", "format=csv", "action=organization."),
    ),
    _case(
        "GET",
        "/orgs/{org}/audit-events/stream",
        P.AUDIT_READ,
        scope="org",
        always="follow=false",
        queries=("max_events=2", "after_seq=1"),
    ),
    _case("GET", "/orgs/{org}/audit-checkpoints", P.AUDIT_READ, scope="org"),
    _case("POST", "/orgs/{org}/audit-checkpoints", P.AUDIT_READ, scope="org"),
    _case("GET", "/teams/{team}/audit-events", P.AUDIT_READ, scope="team", queries=("limit=200",)),
    _case(
        "GET",
        "/teams/{team}/audit-events/export",
        P.AUDIT_READ,
        scope="team",
        queries=("format=json", "format=csv", "action=team."),
    ),
    _case(
        "GET",
        "/teams/{team}/audit-events/stream",
        P.AUDIT_READ,
        scope="team",
        always="follow=false",
        queries=("max_events=2", "after_seq=1"),
    ),
    RouteCase("GET", "/api/v1/audit/public-key", PUBLIC),
    # operations
    RouteCase("GET", "/healthz", PUBLIC),
    RouteCase("GET", "/readyz", PUBLIC),
    RouteCase("GET", "/metrics", PUBLIC),
]

# Later domains list their routes in modules of their own; each may add to PARAMS and
# WORLD_EXTRAS. Imported here, after everything they use from this module is defined.
from matrix.routes_access import CASES as ACCESS_CASES  # noqa: E402
from matrix.routes_billing import CASES as BILLING_CASES  # noqa: E402
from matrix.routes_compliance import CASES as COMPLIANCE_CASES  # noqa: E402
from matrix.routes_governance import CASES as GOVERNANCE_CASES  # noqa: E402
from matrix.routes_metering import CASES as METERING_CASES  # noqa: E402
from matrix.routes_ml import CASES as ML_CASES  # noqa: E402
from matrix.routes_operator import CASES as OPERATOR_CASES  # noqa: E402
from matrix.routes_scim import CASES as SCIM_CASES  # noqa: E402
from matrix.routes_security import CASES as SECURITY_CASES  # noqa: E402
from matrix.routes_spend import CASES as SPEND_CASES  # noqa: E402
from matrix.routes_sso import CASES as SSO_CASES  # noqa: E402
from matrix.routes_throttling import CASES as THROTTLING_CASES  # noqa: E402
from matrix.routes_webhooks import CASES as WEBHOOK_CASES  # noqa: E402

CASES += ACCESS_CASES + METERING_CASES + THROTTLING_CASES + BILLING_CASES + OPERATOR_CASES
CASES += SPEND_CASES
CASES += SSO_CASES
CASES += SCIM_CASES
CASES += SECURITY_CASES
CASES += ML_CASES
CASES += WEBHOOK_CASES
CASES += GOVERNANCE_CASES
CASES += COMPLIANCE_CASES
ROUTES: dict[RouteKey, RouteCase] = {case.key: case for case in CASES}
assert len(ROUTES) == len(CASES), "a route is listed twice in CASES"


# ---- the app's own route table ----


def shared_app(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, database: Database
) -> FastAPI:
    """One app per test module (data stays fresh per test: the tables are emptied after each).
    A new app builds its route handlers on its first request, about 0.15 s; these suites make a
    few hundred tests, so they share it. Use as `app = pytest.fixture(scope="module",
    name="app")(shared_app)`."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=database_url,
        secret_key="test-secret-" + "x" * 40,
        password_time_cost=1,
        password_memory_cost_kib=1024,
        stripe_webhook_secret=WEBHOOK_SECRET,
    )
    return create_app(settings, clock=FrozenClock(), database=database)


def api_routes(app: FastAPI) -> dict[RouteKey, Any]:
    """Every APIRoute of `app` by (method, full path). Newer FastAPI keeps an included router as
    one wrapper route; `iter_route_contexts` walks into those and gives each route's full path,
    name, status code and body field."""
    found: dict[RouteKey, Any] = {}
    for context in iter_route_contexts(app.routes):
        # The dashboard's pages answer HTML to people; tests/web/ covers them.
        route = context.original_route
        if isinstance(route, APIRoute) and not isinstance(route, PageRoute):
            for method in context.methods or ():
                found[(method, str(context.path))] = context
    return found


def _route_table_only_app() -> FastAPI:
    # Only the route table is read: the database is never connected to.
    folder = Path(tempfile.gettempdir()) / "tenantry-route-table"
    app = create_app(
        Settings(
            data_dir=folder,
            database_url=f"sqlite:///{folder / 'unused.db'}",
            secret_key="route-table-only-" + "x" * 32,
        )
    )
    app.state.db.dispose()
    return app


APP_ROUTES: dict[RouteKey, Any] = api_routes(_route_table_only_app())
ALL_KEYS: list[RouteKey] = sorted(set(APP_ROUTES) | set(ROUTES), key=lambda k: (k[1], k[0]))


def route_id(key: RouteKey) -> str:
    return f"{key[0]} {key[1]}"


def keys_where(
    predicate: Callable[[RouteCase], bool],
    *,
    unknown: Callable[[RouteKey], bool] = lambda key: False,
) -> list[RouteKey]:
    """Route keys for a parametrization: those whose case matches `predicate`, plus the routes of
    the app that have no entry in CASES yet and match `unknown` (their test fails, saying what to
    add)."""
    return [k for k in ALL_KEYS if (predicate(ROUTES[k]) if k in ROUTES else unknown(k))]


def is_mutating(key: RouteKey) -> bool:
    return key[0] in MUTATING_METHODS


def case_for(key: RouteKey) -> RouteCase:
    if key not in ROUTES:
        pytest.fail(
            f"{route_id(key)} has no entry in tests/matrix/routes.py CASES: say how to make a "
            "valid request to it (rule, scope, path parameters, body) so the generated suites "
            "cover it"
        )
    if key not in APP_ROUTES:
        pytest.fail(
            f"{route_id(key)} is in tests/matrix/routes.py CASES but not in the app; remove it"
        )
    return ROUTES[key]


def route_of(app: FastAPI, case: RouteCase) -> Any:
    return api_routes(app)[case.key]


def success_status(app: FastAPI, case: RouteCase) -> int:
    return int(route_of(app, case).status_code or 200)


def action_of(app: FastAPI, case: RouteCase) -> str:
    return str(route_of(app, case).name)


# ---- requests and the database ----


def call(
    client: TestClient,
    case: RouteCase,
    *,
    params: dict[str, str],
    headers: dict[str, str],
    body: dict[str, Any] | None = None,
    query: str = "",
) -> Response:
    query = "&".join(part for part in (case.always, query) if part)
    url = case.path.format(**params) + (f"?{query}" if query else "")
    # The route's own answer is judged: a redirect (where SSO sends a browser on) is not followed.
    if case.raw is not None:
        content, signed = case.raw()
        return client.request(
            case.method, url, headers=headers | signed, content=content, follow_redirects=False
        )
    if body is None:
        return client.request(case.method, url, headers=headers, follow_redirects=False)
    return client.request(case.method, url, headers=headers, json=body, follow_redirects=False)


def row_counts(database: Database) -> dict[str, int]:
    return count_rows(database)


def audit_events(database: Database) -> list[AuditEvent]:
    with database.session(write=False) as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def new_events(database: Database, before: list[AuditEvent]) -> list[AuditEvent]:
    seen = {e.id for e in before}
    return [e for e in audit_events(database) if e.id not in seen]


def assert_problem(resp: Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body = dict(resp.json())
    assert body["status"] == status, body
    return body
