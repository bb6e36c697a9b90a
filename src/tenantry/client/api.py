"""Every route of the Tenantry API, written once for both `Client` and `AsyncClient`.

Methods here only describe requests (see `tenantry.client._calls`). Conventions:
- `org` is an organization's id or slug; `team` is a team's id; `user` is a user's id or email.
- `list_*` return one `Page`; `iter_*` walk every page. `limit` caps a page (server max 200).
- Optional arguments left as None are not sent, so an update changes only what it names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import IO, Any, Literal, TypeVar

import httpx

from tenantry import __version__
from tenantry.client._calls import (
    API,
    Call,
    Download,
    Stream,
    download,
    endpoint,
    fields,
    iso,
    json_object,
    model,
    models,
    nothing,
    page_query,
    paged,
    segment,
    streaming,
    text,
)
from tenantry.client._streams import ServerSentEvents, each_line
from tenantry.client.access import AccessCalls
from tenantry.client.billing import BillingCalls
from tenantry.client.errors import error_from_response
from tenantry.client.metering import MeteringCalls
from tenantry.client.models import (
    ApiKey,
    ApiKeyCreated,
    AuditCheckpoint,
    AuditEvent,
    AuditPublicKey,
    AuditVerdict,
    Health,
    Invitation,
    InvitationCreated,
    Me,
    Onboarded,
    Org,
    OrgCreated,
    OrgMember,
    Page,
    Readiness,
    Session,
    Team,
    TeamMember,
    Tokens,
    User,
)
from tenantry.client.operator import OperatorCalls
from tenantry.client.throttling import ThrottlingCalls

T = TypeVar("T")
# A plan of the server's catalog (`GET /api/v1/billing/plans`); the server checks it.
PlanName = str
ExportFormat = Literal["ndjson", "json", "csv"]
InvitationStatus = Literal["pending", "accepted", "declined", "revoked", "all"]
TokensCallback = Callable[[Tokens], None]


def _audit_filters(
    actor: str | None,
    action: str | None,
    target_type: str | None,
    target_id: str | None,
    team: str | None,
    result: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, str | None]:
    return {
        "actor": actor,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "team": team,
        "result": result,
        "since": iso(since),
        "until": iso(until),
    }


class Api(AccessCalls, BillingCalls, MeteringCalls, OperatorCalls, ThrottlingCalls):
    """State and request handling shared by the sync and async clients."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        refresh_token: str | None = None,
        on_tokens: TokensCallback | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.refresh_token = refresh_token
        # Called with the new tokens after login, signup or an automatic refresh, so a caller
        # (the CLI) can persist them; a rotated refresh token is useless once replaced.
        self.on_tokens = on_tokens

    # ---- request handling shared by both transports ----

    def _request_args(self, call: Call[Any]) -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": f"tenantry-python/{__version__}"}
        if call.auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if call.idempotency_key:
            headers["Idempotency-Key"] = call.idempotency_key
        args: dict[str, Any] = {
            "method": call.method,
            "url": self.base_url + call.path,
            "params": call.params or None,
            "headers": headers,
        }
        if call.body is not None:
            args["json"] = call.body
        return args

    def _may_refresh(self, call: Call[Any], response: httpx.Response) -> bool:
        """A 401 on an authenticated call is worth one refresh when we hold a refresh token."""
        return response.status_code == 401 and call.auth and self.refresh_token is not None

    def _token_was_replaced(self, response: httpx.Response) -> bool:
        """Another thread or task refreshed while this request was in flight: retry with the
        new token rather than spend the refresh token twice (reuse would end the session)."""
        sent = response.request.headers.get("authorization", "")
        return bool(self.token) and sent != f"Bearer {self.token}"

    def _finish(self, call: Call[T], response: httpx.Response) -> T:
        if response.is_error:
            raise error_from_response(response)
        result = call.parse(response)
        if call.session == "adopt" and isinstance(result, Tokens):
            self.token, self.refresh_token = result.access_token, result.refresh_token
            if self.on_tokens is not None:
                self.on_tokens(result)
        elif call.session == "forget":
            self.token = self.refresh_token = None
        return result

    def _refresh_call(self) -> Call[Tokens]:
        return Call(
            "POST",
            f"{API}/auth/refresh",
            model(Tokens),
            body={"refresh_token": self.refresh_token},
            auth=False,
            session="adopt",
        )

    # ---- auth ----

    @endpoint
    def signup(
        self,
        email: str,
        password: str,
        *,
        username: str | None = None,
        full_name: str | None = None,
    ) -> Call[Tokens]:
        """Create an account; the client is signed in as it afterwards."""
        body = fields(email=email, password=password, username=username, full_name=full_name)
        return Call(
            "POST", f"{API}/auth/signup", model(Tokens), body=body, auth=False, session="adopt"
        )

    @endpoint
    def login(self, email: str, password: str) -> Call[Tokens]:
        """Sign in; the client uses the new access and refresh tokens afterwards."""
        body = {"email": email, "password": password}
        return Call(
            "POST", f"{API}/auth/login", model(Tokens), body=body, auth=False, session="adopt"
        )

    @endpoint
    def refresh(self) -> Call[Tokens]:
        """Trade the refresh token for new tokens (done automatically on an expired token)."""
        return self._refresh_call()

    @endpoint
    def logout(self) -> Call[None]:
        """End this session on the server and forget the tokens."""
        return Call("POST", f"{API}/auth/logout", nothing, session="forget")

    # ---- me ----

    @endpoint
    def me(self) -> Call[Me]:
        """Who the credentials belong to, with their organizations and teams."""
        return Call("GET", f"{API}/me", model(Me))

    @endpoint
    def update_me(self, *, full_name: str | None = None, username: str | None = None) -> Call[User]:
        body = fields(full_name=full_name, username=username)
        return Call("PATCH", f"{API}/me", model(User), body=body)

    @endpoint
    def change_password(self, current_password: str, new_password: str) -> Call[None]:
        """Change the password; every other session of the account is signed out."""
        body = {"current_password": current_password, "new_password": new_password}
        return Call("POST", f"{API}/me/password", nothing, body=body)

    @endpoint
    def list_sessions(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[Session]]:
        return Call(
            "GET", f"{API}/me/sessions", model(Page[Session]), params=page_query(limit, cursor)
        )

    iter_sessions = paged(list_sessions)

    @endpoint
    def revoke_session(self, session_id: str) -> Call[None]:
        return Call("DELETE", f"{API}/me/sessions/{segment(session_id)}", nothing)

    # ---- personal data ----

    @endpoint
    def export_my_data(self) -> Call[dict[str, Any]]:
        """Everything the server holds about this account, as one JSON document (with an API
        key: only what its organization holds)."""
        return Call("GET", f"{API}/users/me/export", json_object)

    @endpoint
    def export_member_data(self, org: str, user: str) -> Call[dict[str, Any]]:
        """What an organization holds about one of its members (needs audit:read)."""
        return Call("GET", f"{API}/orgs/{segment(org)}/members/{segment(user)}/export", json_object)

    @endpoint
    def erase_account(self, user_id: str, *, confirm: str) -> Call[None]:
        """Erase this account and its personal data for good; `confirm` must be its email.
        Only a signed-in user can erase itself; the client forgets its tokens afterwards."""
        return Call(
            "DELETE",
            f"{API}/users/{segment(user_id)}",
            nothing,
            body={"confirm": confirm},
            session="forget",
        )

    # ---- organizations ----

    @endpoint
    def create_org(
        self,
        name: str,
        *,
        slug: str | None = None,
        plan: PlanName | None = None,
        billing_email: str | None = None,
        settings: dict[str, Any] | None = None,
        owner_email: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[OrgCreated]:
        """Create an organization owned by the caller. With `owner_email`, that person becomes an
        owner too; if they have no account yet, `owner_invitation` carries their invitation. It
        starts on the Free plan; a paid `plan` starts a trial of it (`trial_ends_at`)."""
        body = fields(
            name=name,
            slug=slug,
            plan=plan,
            billing_email=billing_email,
            settings=settings,
            owner_email=owner_email,
        )
        return Call(
            "POST", f"{API}/orgs", model(OrgCreated), body=body, idempotency_key=idempotency_key
        )

    @endpoint
    def list_orgs(self, *, limit: int | None = None, cursor: str | None = None) -> Call[Page[Org]]:
        return Call("GET", f"{API}/orgs", model(Page[Org]), params=page_query(limit, cursor))

    iter_orgs = paged(list_orgs)

    @endpoint
    def get_org(self, org: str) -> Call[Org]:
        return Call("GET", f"{API}/orgs/{segment(org)}", model(Org))

    @endpoint
    def update_org(
        self,
        org: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        billing_email: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Call[Org]:
        """Rename, re-slug or re-configure an org. Its plan moves through billing
        (`subscribe`) or an operator (`set_tenant_plan`), never here."""
        body = fields(name=name, slug=slug, billing_email=billing_email, settings=settings)
        return Call("PATCH", f"{API}/orgs/{segment(org)}", model(Org), body=body)

    @endpoint
    def delete_org(self, org: str, *, confirm: str) -> Call[None]:
        """Delete an organization and all its data; `confirm` must be its slug."""
        return Call("DELETE", f"{API}/orgs/{segment(org)}", nothing, body={"confirm": confirm})

    @endpoint
    def transfer_ownership(self, org: str, new_owner: str) -> Call[OrgMember]:
        """Make a member (id or email) the owner; the current owner becomes an admin."""
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/transfer-ownership",
            model(OrgMember),
            body={"new_owner": new_owner},
        )

    @endpoint
    def list_org_members(
        self, org: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[OrgMember]]:
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/members",
            model(Page[OrgMember]),
            params=page_query(limit, cursor),
        )

    iter_org_members = paged(list_org_members)

    @endpoint
    def update_org_member(self, org: str, user: str, *, role: str) -> Call[OrgMember]:
        return Call(
            "PATCH",
            f"{API}/orgs/{segment(org)}/members/{segment(user)}",
            model(OrgMember),
            body={"role": role},
        )

    @endpoint
    def remove_org_member(self, org: str, user: str) -> Call[None]:
        return Call("DELETE", f"{API}/orgs/{segment(org)}/members/{segment(user)}", nothing)

    # ---- teams ----

    @endpoint
    def create_team(
        self,
        org: str,
        name: str,
        *,
        slug: str | None = None,
        description: str | None = None,
        parent_team_id: str | None = None,
        settings: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Team]:
        body = fields(
            name=name,
            slug=slug,
            description=description,
            parent_team_id=parent_team_id,
            settings=settings,
        )
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/teams",
            model(Team),
            body=body,
            idempotency_key=idempotency_key,
        )

    @endpoint
    def list_teams(
        self, org: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[Team]]:
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/teams",
            model(Page[Team]),
            params=page_query(limit, cursor),
        )

    iter_teams = paged(list_teams)

    @endpoint
    def get_team(self, team: str) -> Call[Team]:
        return Call("GET", f"{API}/teams/{segment(team)}", model(Team))

    @endpoint
    def update_team(
        self,
        team: str,
        *,
        name: str | None = None,
        slug: str | None = None,
        description: str | None = None,
        parent_team_id: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Call[Team]:
        body = fields(
            name=name,
            slug=slug,
            description=description,
            parent_team_id=parent_team_id,
            settings=settings,
        )
        return Call("PATCH", f"{API}/teams/{segment(team)}", model(Team), body=body)

    @endpoint
    def delete_team(self, team: str, *, confirm: str) -> Call[None]:
        """Delete a team; `confirm` must be its slug."""
        return Call("DELETE", f"{API}/teams/{segment(team)}", nothing, body={"confirm": confirm})

    @endpoint
    def list_team_members(
        self, team: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[TeamMember]]:
        return Call(
            "GET",
            f"{API}/teams/{segment(team)}/members",
            model(Page[TeamMember]),
            params=page_query(limit, cursor),
        )

    iter_team_members = paged(list_team_members)

    @endpoint
    def add_team_member(
        self, team: str, user: str, *, role: str, idempotency_key: str | None = None
    ) -> Call[TeamMember]:
        """Add a member of the team's organization (id or email) with a team role."""
        return Call(
            "POST",
            f"{API}/teams/{segment(team)}/members",
            model(TeamMember),
            body={"user": user, "role": role},
            idempotency_key=idempotency_key,
        )

    @endpoint
    def update_team_member(self, team: str, user: str, *, role: str) -> Call[TeamMember]:
        return Call(
            "PATCH",
            f"{API}/teams/{segment(team)}/members/{segment(user)}",
            model(TeamMember),
            body={"role": role},
        )

    @endpoint
    def remove_team_member(self, team: str, user: str) -> Call[None]:
        return Call("DELETE", f"{API}/teams/{segment(team)}/members/{segment(user)}", nothing)

    # ---- invitations ----

    @endpoint
    def create_invitation(
        self,
        org: str,
        email: str,
        *,
        role: str = "member",
        team_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[InvitationCreated]:
        """Invite someone by email to the organization, or with `team_id` to one of its teams
        (then `role` is a team role). The token and URL are shown only in this answer."""
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/invitations",
            model(InvitationCreated),
            body=fields(email=email, role=role, team_id=team_id),
            idempotency_key=idempotency_key,
        )

    @endpoint
    def list_invitations(
        self,
        org: str,
        *,
        status: InvitationStatus | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[Invitation]]:
        """Invitations of an organization; pending ones unless `status` says otherwise."""
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/invitations",
            model(Page[Invitation]),
            params=page_query(limit, cursor, status=status),
        )

    iter_invitations = paged(list_invitations)

    @endpoint
    def accept_invitation(self, token: str) -> Call[Invitation]:
        """Accept an invitation sent to the signed-in user's email."""
        return Call("POST", f"{API}/invitations/{segment(token)}/accept", model(Invitation))

    @endpoint
    def decline_invitation(self, token: str) -> Call[Invitation]:
        return Call("POST", f"{API}/invitations/{segment(token)}/decline", model(Invitation))

    @endpoint
    def revoke_invitation(self, invitation_id: str) -> Call[Invitation]:
        return Call("DELETE", f"{API}/invitations/{segment(invitation_id)}", model(Invitation))

    # ---- API keys ----

    @endpoint
    def create_api_key(
        self,
        org: str,
        *,
        name: str,
        team_id: str | None = None,
        permissions: list[str] | None = None,
        expires_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Call[ApiKeyCreated]:
        """Create an API key; its `secret` is in this answer only."""
        body = fields(
            name=name, team_id=team_id, permissions=permissions, expires_at=iso(expires_at)
        )
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/api-keys",
            model(ApiKeyCreated),
            body=body,
            idempotency_key=idempotency_key,
        )

    @endpoint
    def list_api_keys(
        self, org: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Call[Page[ApiKey]]:
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/api-keys",
            model(Page[ApiKey]),
            params=page_query(limit, cursor),
        )

    iter_api_keys = paged(list_api_keys)

    @endpoint
    def revoke_api_key(self, key_id: str) -> Call[ApiKey]:
        """Revoke an API key; it stops working on the very next request."""
        return Call("DELETE", f"{API}/api-keys/{segment(key_id)}", model(ApiKey))

    # ---- audit ----

    @endpoint
    def list_audit_events(
        self,
        org: str,
        *,
        actor: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        team: str | None = None,
        result: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[AuditEvent]]:
        """Audit events of an organization, oldest first. `action` is exact, or a prefix when it
        ends in '.' (`team.` matches every team action)."""
        params = page_query(
            limit,
            cursor,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            team=team,
            result=result,
            since=iso(since),
            until=iso(until),
        )
        return Call(
            "GET",
            f"{API}/orgs/{segment(org)}/audit-events",
            model(Page[AuditEvent]),
            params=params,
        )

    iter_audit_events = paged(list_audit_events)

    @endpoint
    def verify_audit_chain(self, org: str) -> Call[AuditVerdict]:
        """Have the server recompute the organization's chain: every hash, link and signed
        checkpoint. `ok`, or `fault` names the first bad seq and what is wrong."""
        return Call("GET", f"{API}/orgs/{segment(org)}/audit-events/verify", model(AuditVerdict))

    @endpoint
    def list_audit_checkpoints(self, org: str) -> Call[list[AuditCheckpoint]]:
        return Call("GET", f"{API}/orgs/{segment(org)}/audit-checkpoints", models(AuditCheckpoint))

    @endpoint
    def create_audit_checkpoint(
        self, org: str, *, idempotency_key: str | None = None
    ) -> Call[AuditCheckpoint]:
        """Sign the chain's head now; the checkpoint covers the event recording its creation."""
        return Call(
            "POST",
            f"{API}/orgs/{segment(org)}/audit-checkpoints",
            model(AuditCheckpoint),
            idempotency_key=idempotency_key,
        )

    @endpoint
    def audit_public_key(self) -> Call[AuditPublicKey]:
        """The server's Ed25519 key that signs checkpoints and exports (no sign-in needed)."""
        return Call("GET", f"{API}/audit/public-key", model(AuditPublicKey), auth=False)

    def _export_call(
        self, org: str, format: ExportFormat, filters: dict[str, str | None]
    ) -> Call[None]:
        params = fields(format=format, **filters)
        return Call("GET", f"{API}/orgs/{segment(org)}/audit-events/export", nothing, params=params)

    @download
    def export_audit_events(
        self,
        org: str,
        file: IO[bytes],
        *,
        format: ExportFormat = "ndjson",
        actor: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        team: str | None = None,
        result: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Download:
        """Write the organization's audit trail (or the events matching the filters) to a binary
        file as it arrives, in constant memory; returns the number of bytes written. An NDJSON
        or JSON export verifies offline: `tenantry.audit.offline.verify_file`, or
        `tenantry audit verify --file`."""
        filters = _audit_filters(actor, action, target_type, target_id, team, result, since, until)
        return Download(self._export_call(org, format, filters), file)

    @streaming
    def iter_audit_export(
        self,
        org: str,
        *,
        format: ExportFormat = "ndjson",
        actor: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        team: str | None = None,
        result: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Stream[str]:
        """The export's lines as they arrive (for NDJSON, one record each)."""
        filters = _audit_filters(actor, action, target_type, target_id, team, result, since, until)
        return Stream(self._export_call(org, format, filters), lambda: each_line)

    @streaming
    def stream_audit_events(
        self,
        org: str,
        *,
        after_seq: int | None = None,
        max_events: int | None = None,
        follow: bool | None = None,
    ) -> Stream[AuditEvent]:
        """The organization's audit events as they are written (Server-Sent Events), oldest
        first from after `after_seq`. Ends after `max_events`, or with `follow=False` once caught
        up; otherwise it waits for new events until the caller stops iterating. To resume, pass
        the last event's `seq` as `after_seq`."""
        params = fields(
            after_seq=str(after_seq) if after_seq is not None else None,
            max_events=str(max_events) if max_events is not None else None,
            follow=None if follow is None else str(follow).lower(),
        )
        call: Call[None] = Call(
            "GET", f"{API}/orgs/{segment(org)}/audit-events/stream", nothing, params=params
        )
        return Stream(call, lambda: ServerSentEvents(AuditEvent.model_validate_json, event="audit"))

    # ---- onboarding and operations ----

    @endpoint
    def onboard(
        self,
        company_name: str,
        admin_email: str,
        admin_password: str,
        *,
        admin_name: str | None = None,
        plan: PlanName | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Onboarded]:
        """Create an organization, its owner's account and a "default" team in one call. The
        answer carries the owner's tokens; this client's own credentials are left unchanged. A
        paid `plan` starts a trial of it (`trial_ends_at`); else the org is on Free."""
        body = fields(
            company_name=company_name,
            admin_email=admin_email,
            admin_password=admin_password,
            admin_name=admin_name,
            plan=plan,
        )
        return Call(
            "POST",
            f"{API}/onboard",
            model(Onboarded),
            body=body,
            auth=False,
            idempotency_key=idempotency_key,
        )

    @endpoint
    def healthz(self) -> Call[Health]:
        return Call("GET", "/healthz", model(Health), auth=False)

    @endpoint
    def readyz(self) -> Call[Readiness]:
        """Raises ServerError (503) when the server cannot reach its database."""
        return Call("GET", "/readyz", model(Readiness), auth=False)

    @endpoint
    def metrics(self) -> Call[str]:
        """The Prometheus exposition text."""
        return Call("GET", "/metrics", text, auth=False)
