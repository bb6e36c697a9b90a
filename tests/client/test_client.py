"""The Python SDK against the real app: every route, typed results, typed errors, pagination,
automatic token refresh, and the async client over the same surface."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import PASSWORD, Factory
from tenantry.client import (
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    NotFound,
    RateLimited,
    ServerError,
    TenantryError,
    Unauthenticated,
    ValidationFailed,
)
from tenantry.client.errors import error_from_response
from tenantry.client.models import Org, Tokens
from tenantry.kit.clock import FrozenClock

BASE = "http://testserver"
NEW_PASSWORD = "another horse battery staple"


def sdk(client: TestClient, token: str | None = None) -> Client:
    return Client(BASE, token, http=client)


def signed_in(client: TestClient, email: str) -> Client:
    api = sdk(client)
    api.login(email, PASSWORD)
    return api


def test_login_adopts_tokens_and_me_reports_memberships(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme AI")
    api = sdk(client)
    heard: list[Tokens] = []
    api.on_tokens = heard.append
    tokens = api.login(acme.owner_email, PASSWORD)
    assert api.token == tokens.access_token and api.refresh_token == tokens.refresh_token
    assert heard == [tokens]
    me = api.me()
    assert me.user.email == acme.owner_email
    assert me.principal_type == "user"
    assert [(m.org_slug, m.role) for m in me.organizations] == [("acme-ai", "owner")]


def test_signup_profile_password_and_sessions(client: TestClient) -> None:
    api = sdk(client)
    tokens = api.signup("grace@example.com", PASSWORD, username="grace", full_name="Grace H")
    assert tokens.user.username == "grace"
    assert api.update_me(full_name="Grace Hopper").full_name == "Grace Hopper"
    other = signed_in(client, "grace@example.com")
    sessions = list(api.iter_sessions())
    assert len(sessions) == 2
    assert [s.current for s in sessions].count(True) == 1
    api.revoke_session(next(s.id for s in sessions if not s.current))
    with pytest.raises(Unauthenticated):
        other.me()  # revoked on the very next request
    api.change_password(PASSWORD, NEW_PASSWORD)
    assert api.me().user.full_name == "Grace Hopper"  # this session survives the change
    with pytest.raises(Unauthenticated) as refused:
        sdk(client).login("grace@example.com", PASSWORD)
    assert refused.value.code == "invalid_credentials"
    api.logout()
    assert api.token is None and api.refresh_token is None
    fresh = sdk(client)
    fresh.login("grace@example.com", NEW_PASSWORD)
    assert fresh.me().user.email == "grace@example.com"


def test_organizations_members_and_ownership(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme AI")
    owner = signed_in(client, acme.owner_email)
    created = owner.create_org(
        "Labs", slug="labs", plan="professional", owner_email="nobody-yet@example.com"
    )
    assert (created.slug, created.plan) == ("labs", "professional")
    assert created.owner_invitation is not None
    assert created.owner_invitation.email == "nobody-yet@example.com"
    assert created.owner_invitation.url.endswith(created.owner_invitation.token)

    assert owner.get_org("labs").id == created.id
    updated = owner.update_org("labs", name="Labs Inc", billing_email="bills@example.com")
    assert (updated.name, updated.billing_email, updated.plan) == (
        "Labs Inc",
        "bills@example.com",
        "professional",
    )

    member_id, _ = factory.member(acme)
    members = list(owner.iter_org_members(acme.org_slug, limit=1))
    assert {m.user_id for m in members} == {acme.owner_id, member_id}
    assert owner.update_org_member(acme.org_slug, member_id, role="admin").role == "admin"
    transferred = owner.transfer_ownership(acme.org_slug, member_id)
    assert (transferred.user_id, transferred.role) == (member_id, "owner")
    roles = {m.user_id: m.role for m in owner.iter_org_members(acme.org_id)}
    assert roles == {acme.owner_id: "admin", member_id: "owner"}
    owner.remove_org_member(acme.org_slug, acme.owner_id)  # leaving is allowed
    with pytest.raises(NotFound):
        owner.get_org(acme.org_slug)

    with pytest.raises(ValidationFailed) as unconfirmed:
        owner.delete_org("labs", confirm="acme-ai")
    assert unconfirmed.value.code == "confirmation_mismatch"
    owner.delete_org("labs", confirm="labs")
    with pytest.raises(NotFound):
        owner.get_org("labs")


def test_pages_and_iteration_cover_every_item(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme AI")
    api = signed_in(client, acme.owner_email)
    for n in range(4):
        api.create_org(f"Org {n}")
    first = api.list_orgs(limit=2)
    assert len(first.items) == 2 and first.next_cursor is not None
    second = api.list_orgs(limit=2, cursor=first.next_cursor)
    assert {o.id for o in first.items}.isdisjoint(o.id for o in second.items)
    every = list(api.iter_orgs(limit=2))
    assert len(every) == 5 and all(isinstance(o, Org) for o in every)
    assert len({o.id for o in every}) == 5


def test_teams_and_team_members(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme AI")
    api = signed_in(client, acme.owner_email)
    research = api.create_team(acme.org_slug, "Research", description="Models")
    vision = api.create_team(acme.org_id, "Vision", parent_team_id=research.id)
    assert vision.parent_team_id == research.id
    assert {t.slug for t in api.iter_teams(acme.org_slug)} >= {"research", "vision"}
    assert api.get_team(research.id).description == "Models"
    assert api.update_team(research.id, description="Big models").description == "Big models"

    member_id, _ = factory.member(acme)
    member_email = next(
        m.email for m in api.iter_org_members(acme.org_id) if m.user_id == member_id
    )
    added = api.add_team_member(research.id, member_email, role="developer")
    assert (added.user_id, added.role) == (member_id, "editor")
    with pytest.raises(Conflict):
        api.add_team_member(research.id, member_id, role="viewer")
    assert api.update_team_member(research.id, member_email, role="viewer").role == "viewer"
    assert member_id in {m.user_id for m in api.iter_team_members(research.id)}
    api.remove_team_member(research.id, member_email)
    assert member_id not in {m.user_id for m in api.iter_team_members(research.id)}

    with pytest.raises(ValidationFailed) as wrong:
        api.delete_team(vision.id, confirm="research")
    assert wrong.value.code == "confirmation_mismatch"
    api.delete_team(vision.id, confirm="vision")
    with pytest.raises(NotFound):
        api.get_team(vision.id)


def test_invitations_accept_decline_revoke(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme AI")
    owner = signed_in(client, acme.owner_email)
    _, ada_email, ada_token = factory.user("ada@example.com")
    _, bob_email, bob_token = factory.user("bob@example.com")
    ada, bob = sdk(client, ada_token), sdk(client, bob_token)

    to_org = owner.create_invitation(acme.org_slug, ada_email, role="admin")
    assert to_org.token and to_org.url.endswith(to_org.token)
    to_team = owner.create_invitation(acme.org_slug, bob_email, role="viewer", team_id=acme.team_id)
    pending = {i.id for i in owner.iter_invitations(acme.org_slug)}
    assert pending == {to_org.id, to_team.id}

    with pytest.raises(TenantryError) as stranger:
        bob.accept_invitation(to_org.token)  # sent to Ada, not to Bob
    assert stranger.value.status in (403, 404)
    assert ada.accept_invitation(to_org.token).status == "accepted"
    with pytest.raises(Gone) as again:
        ada.accept_invitation(to_org.token)
    assert again.value.code == "invitation_accepted"
    assert bob.decline_invitation(to_team.token).status == "declined"

    later = owner.create_invitation(acme.org_slug, "carol@example.com", role="member")
    assert owner.revoke_invitation(later.id).status == "revoked"
    statuses = {i.id: i.status for i in owner.iter_invitations(acme.org_slug, status="all")}
    assert statuses == {
        to_org.id: "accepted",
        to_team.id: "declined",
        later.id: "revoked",
    }


def test_api_keys_work_as_tokens_until_revoked(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme AI")
    owner = signed_in(client, acme.owner_email)
    key = owner.create_api_key(
        acme.org_slug,
        name="ci",
        team_id=acme.team_id,
        permissions=["team:read"],
        expires_at=clock.now() + timedelta(days=30),
    )
    assert key.secret.startswith("tnt_") and key.permissions == ["team:read"]
    assert key.expires_at is not None
    as_key = sdk(client, key.secret)
    me = as_key.me()
    assert (me.principal_type, me.api_key_id) == ("api_key", key.id)
    listed = list(owner.iter_api_keys(acme.org_slug))
    assert [k.id for k in listed] == [key.id]
    assert not hasattr(listed[0], "secret")
    assert owner.revoke_api_key(key.id).revoked_at is not None
    with pytest.raises(Unauthenticated) as revoked:
        as_key.me()
    assert revoked.value.code == "invalid_api_key"


def test_audit_events_with_filters(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme AI")
    api = signed_in(client, acme.owner_email)
    clock.advance(hours=1)
    start = clock.now()
    team = api.create_team(acme.org_slug, "Research")
    api.create_invitation(acme.org_slug, "x@example.com", role="member")
    actions = [e.action for e in api.iter_audit_events(acme.org_slug, limit=1)]
    assert actions == ["organization.onboarded", "team.created", "invitation.created"]
    assert [e.action for e in api.iter_audit_events(acme.org_slug, action="team.")] == [
        "team.created"
    ]
    recent = api.iter_audit_events(acme.org_slug, since=start, actor=acme.owner_id)
    assert [(e.action, e.target_type) for e in recent] == [
        ("team.created", "team"),
        ("invitation.created", "invitation"),
    ]
    on_team = api.list_audit_events(acme.org_slug, target_type="team", target_id=team.id)
    assert [e.action for e in on_team.items] == ["team.created"]
    before = api.list_audit_events(acme.org_slug, until=start - timedelta(minutes=1))
    assert [e.action for e in before.items] == ["organization.onboarded"]


def test_onboard_and_operations(client: TestClient) -> None:
    api = sdk(client)
    done = api.onboard("Initech", "peter@example.com", PASSWORD, admin_name="Peter", plan="starter")
    assert (done.organization.slug, done.organization.plan, done.team.name) == (
        "initech",
        "starter",
        "default",
    )
    assert api.token is None  # onboarding does not sign this client in
    assert sdk(client, done.access_token).me().user.email == "peter@example.com"
    assert api.healthz().status == "ok"
    assert api.readyz().database == "reachable"
    assert "tenantry_http_requests_total" in api.metrics()


def test_idempotency_key_replays_the_first_answer(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme AI")
    api = signed_in(client, acme.owner_email)
    first = api.create_team(acme.org_slug, "Research", idempotency_key="team-research-1")
    again = api.create_team(acme.org_slug, "Research", idempotency_key="team-research-1")
    assert again.id == first.id
    assert len(list(api.iter_teams(acme.org_slug))) == 2  # "default" and this one


def test_errors_are_typed_from_problem_json(client: TestClient, factory: Factory) -> None:
    acme = factory.tenant("Acme AI")
    owner = signed_in(client, acme.owner_email)
    _, member_token = factory.member(acme)

    with pytest.raises(Unauthenticated) as anonymous:
        sdk(client).me()
    assert anonymous.value.status == 401

    with pytest.raises(BadRequest) as bad_cursor:
        owner.list_orgs(cursor="__4")  # base64 of bytes that are not UTF-8
    assert bad_cursor.value.code == "invalid_cursor"

    with pytest.raises(NotFound) as missing:
        owner.get_org("no-such-org")
    err = missing.value
    assert (err.status, err.code, err.title, err.detail) == (
        404,
        "not_found",
        "Not found",
        "Organization not found",
    )
    assert err.body["instance"] == "/api/v1/orgs/no-such-org"
    assert err.request_id is not None and err.request_id.startswith("req_")
    assert str(err) == "404 not_found: Organization not found"

    with pytest.raises(Forbidden) as weak:
        sdk(client, member_token).update_org(acme.org_slug, name="Mine now")
    assert "org:update" in weak.value.detail

    with pytest.raises(Conflict) as taken:
        owner.create_org("Other", slug=acme.org_slug)
    assert taken.value.code == "slug_taken"

    with pytest.raises(ValidationFailed) as invalid:
        owner.create_invitation(acme.org_slug, "not-an-email", role="member")
    assert invalid.value.code == "validation_error"
    assert invalid.value.errors and invalid.value.errors[0]["loc"][-1] == "email"


def test_error_classes_for_other_answers() -> None:
    request = httpx.Request("GET", f"{BASE}/x")
    limited = error_from_response(
        httpx.Response(
            429,
            request=request,
            json={"code": "rate_limited", "title": "Too many requests", "detail": "Slow down"},
            headers={"Retry-After": "7"},
        )
    )
    assert isinstance(limited, RateLimited) and limited.retry_after == 7.0
    proxy = error_from_response(httpx.Response(502, request=request, text="<p>Bad gateway</p>"))
    assert isinstance(proxy, ServerError)
    assert (proxy.code, proxy.title, proxy.detail) == (
        "http_error",
        "Bad Gateway",
        "<p>Bad gateway</p>",
    )
    teapot = error_from_response(
        httpx.Response(418, request=request, json={"detail": "short and stout"})
    )
    assert type(teapot) is TenantryError and teapot.detail == "short and stout"


def test_unreachable_server_is_a_typed_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api = Client(BASE, http=httpx.Client(transport=httpx.MockTransport(refuse)))
    with pytest.raises(ConnectionFailed) as failed:
        api.healthz()
    assert failed.value.status == 0
    assert failed.value.detail == f"cannot reach {BASE}: connection refused"


def test_expired_access_token_is_refreshed_once_and_reported(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme AI")
    api = signed_in(client, acme.owner_email)
    heard: list[Tokens] = []
    api.on_tokens = heard.append
    first_access, first_refresh = api.token, api.refresh_token

    clock.advance(seconds=901)  # past the 900 s access-token lifetime
    assert api.get_org(acme.org_slug).id == acme.org_id
    assert len(heard) == 1
    assert api.token == heard[0].access_token != first_access
    assert api.refresh_token == heard[0].refresh_token != first_refresh

    clock.advance(seconds=901)  # the rotated refresh token was kept: it works again
    assert api.me().user.id == acme.owner_id
    assert len(heard) == 2


def test_refresh_that_fails_surfaces_the_original_401(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme AI")
    api = signed_in(client, acme.owner_email)
    stale = Client(BASE, api.token, refresh_token=api.refresh_token, http=client)
    api.logout()  # ends the session both clients share
    clock.advance(seconds=901)
    with pytest.raises(Unauthenticated) as ended:
        stale.me()
    assert ended.value.code in ("invalid_token", "session_ended")


def test_async_client_has_the_same_surface(
    app: FastAPI, client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme AI")

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport) as http,
            AsyncClient(BASE, http=http) as api,
        ):
            await api.login(acme.owner_email, PASSWORD)
            team = await api.create_team(acme.org_slug, "Async")
            assert (await api.get_team(team.id)).slug == "async"
            slugs = [t.slug async for t in api.iter_teams(acme.org_slug, limit=1)]
            assert slugs == ["default", "async"]
            clock.advance(seconds=901)
            me = await api.me()  # refreshed on the way
            assert me.user.email == acme.owner_email

            # Concurrent calls all meet the expired token; one refresh serves them all (a
            # second refresh would reuse a rotated token and end the session).
            clock.advance(seconds=901)
            heard: list[Tokens] = []
            api.on_tokens = heard.append
            answers = await asyncio.gather(
                api.me(), api.get_org(acme.org_slug), api.get_team(team.id), api.me()
            )
            assert answers[1].id == acme.org_id and answers[2].id == team.id
            assert len(heard) == 1
            with pytest.raises(NotFound):
                await api.get_team("team_missing")

    asyncio.run(scenario())
