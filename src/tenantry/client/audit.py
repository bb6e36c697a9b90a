"""SDK calls of the audit trail (mixed into `tenantry.client.api.Api`): events, verification,
checkpoints, export and the live stream."""

from __future__ import annotations

from datetime import datetime
from typing import IO, Literal

from tenantry.client._calls import (
    API,
    Call,
    Download,
    Stream,
    download,
    endpoint,
    fields,
    iso,
    model,
    models,
    nothing,
    page_query,
    paged,
    segment,
    streaming,
)
from tenantry.client._streams import ServerSentEvents, each_line
from tenantry.client.models import (
    AuditCheckpoint,
    AuditEvent,
    AuditPublicKey,
    AuditVerdict,
    Page,
)

ExportFormat = Literal["ndjson", "json", "csv"]


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


class AuditCalls:
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

    # ---- a team's own events (readable with audit:read on the team: its admins and owners) ----

    @endpoint
    def list_team_audit_events(
        self,
        team: str,
        *,
        actor: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        result: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Call[Page[AuditEvent]]:
        """The events recorded in one team, with the filters of `list_audit_events`. A team's
        admins read these without any right on the organization's whole trail."""
        params = page_query(
            limit,
            cursor,
            **_audit_filters(actor, action, target_type, target_id, None, result, since, until),
        )
        return Call(
            "GET",
            f"{API}/teams/{segment(team)}/audit-events",
            model(Page[AuditEvent]),
            params=params,
        )

    iter_team_audit_events = paged(list_team_audit_events)

    def _team_export_call(
        self, team: str, format: ExportFormat, filters: dict[str, str | None]
    ) -> Call[None]:
        params = fields(format=format, **filters)
        path = f"{API}/teams/{segment(team)}/audit-events/export"
        return Call("GET", path, nothing, params=params)

    @download
    def export_team_audit_events(
        self,
        team: str,
        file: IO[bytes],
        *,
        format: ExportFormat = "ndjson",
        actor: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        result: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Download:
        """Write the team's events to a binary file: an export of the organization's chain
        filtered to the team, each event verifiable offline; returns the bytes written."""
        filters = _audit_filters(actor, action, target_type, target_id, None, result, since, until)
        return Download(self._team_export_call(team, format, filters), file)

    @streaming
    def stream_team_audit_events(
        self,
        team: str,
        *,
        after_seq: int | None = None,
        max_events: int | None = None,
        follow: bool | None = None,
    ) -> Stream[AuditEvent]:
        """The team's events as they are written (Server-Sent Events), as `stream_audit_events`
        does for the organization; `seq` is the event's place in the organization's chain."""
        params = fields(
            after_seq=str(after_seq) if after_seq is not None else None,
            max_events=str(max_events) if max_events is not None else None,
            follow=None if follow is None else str(follow).lower(),
        )
        call: Call[None] = Call(
            "GET", f"{API}/teams/{segment(team)}/audit-events/stream", nothing, params=params
        )
        return Stream(call, lambda: ServerSentEvents(AuditEvent.model_validate_json, event="audit"))
