"""Approval requests: made by admission when a policy requires approval, decided by one of the
approvers the policy names (users by id or email, roles, or the rung of an approval hierarchy the
estimated cost reaches), expired after the policy's `timeout_hours`, and used once by the
retried admission that carries the same request fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize, is_in_org
from tenantry.governance import events, repository
from tenantry.governance.engine import CompiledPolicy
from tenantry.governance.models import ApprovalRequest, ApprovalStatus
from tenantry.identity import repository as identity_repository
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Forbidden, NotFound, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.money import plain
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy import scope as tenancy

# Pending requests looked through for the ones a person may decide (each needs their roles).
MAX_AWAITING = 500


def fingerprint(request: Mapping[str, Any]) -> str:
    """What a retried admission must repeat to use an approval: the same team, principal,
    action, model, estimate and attributes."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def approvers_of(policies: Sequence[CompiledPolicy], cost: Decimal | None) -> dict[str, Any]:
    """Everyone who may decide: the union over the policies that required approval. On a
    hierarchy, the lowest rung whose amount covers the cost decides, and every rung above."""
    users: set[str] = set()
    roles: set[str] = set()
    rungs: list[str] = []
    for policy in policies:
        action = policy.action("require_approval")
        if action is None:
            continue
        parameters = action["parameters"]
        users.update(u.lower() if "@" in u else u for u in parameters.get("approvers", []))
        roles.update(r.lower() for r in parameters.get("roles", []))
        ladder = sorted(
            (Decimal(str(amount)), name.lower())
            for name, amount in parameters.get("approval_hierarchy", {}).items()
        )
        if ladder:
            amount = cost or Decimal(0)
            reached = [name for limit, name in ladder if limit >= amount] or [ladder[-1][1]]
            rungs.append(reached[0])
            roles.update(reached)
    return {"users": sorted(users), "roles": sorted(roles), "level": rungs[0] if rungs else None}


def timeout_of(policies: Sequence[CompiledPolicy]) -> timedelta:
    hours = [
        Decimal(str(a["parameters"].get("timeout_hours", 24)))
        for p in policies
        if (a := p.action("require_approval")) is not None
    ]
    return timedelta(hours=float(min(hours or [Decimal(24)])))


def request_approval(
    session: Session,
    *,
    org_id: str,
    team_id: str,
    user_id: str | None,
    api_key_id: str | None,
    policies: Sequence[CompiledPolicy],
    request: Mapping[str, Any],
    cost: Decimal | None,
    now: datetime,
    also_approvers: Mapping[str, Any] | None = None,
) -> ApprovalRequest:
    """A pending approval request for an admission (written in admission's transaction).
    `also_approvers` (users, roles) may decide too: those of a classification level that asks
    for approval, which no policy names."""
    approvers = approvers_of(policies, cost)
    if also_approvers:
        for key in ("users", "roles"):
            approvers[key] = sorted({*approvers[key], *also_approvers.get(key, [])})
    timeout = timeout_of(policies)  # 24 hours when no policy sets one
    row = ApprovalRequest(
        id=new_id("apr"),
        org_id=org_id,
        team_id=team_id,
        user_id=user_id,
        api_key_id=api_key_id,
        policy_ids=sorted(p.id for p in policies),
        fingerprint=fingerprint(request),
        request=dict(request),
        estimated_cost=cost,
        approvers=approvers,
        status=ApprovalStatus.PENDING.value,
        created_at=now,
        expires_at=now + timeout,
        reason="",
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        now=now,
        org_id=org_id,
        team_id=team_id,
        actor_type="api_key" if api_key_id else "user",
        actor_id=api_key_id or user_id,
        action="approval.requested",
        target_type="approval",
        target_id=row.id,
        result="success",
        request_id=None,
        summary={"policies": row.policy_ids, "estimated_cost": plain(cost) if cost else None},
        subject_id=user_id,
        personal=audit.Personal(None, None, {}),
    )
    events.emit(session, _event(row, events.APPROVAL_REQUESTED, now))
    return row


def use_approval(
    session: Session, *, org_id: str, approval_id: str, request: Mapping[str, Any], now: datetime
) -> tuple[ApprovalRequest | None, str | None]:
    """Use an approved request for this admission, once: (the approval, None) when used; else
    (what was found, why it cannot be used)."""
    found = repository.approval(session, approval_id)
    if found is None or found.org_id != org_id:
        return None, "approval_not_found"
    if found.fingerprint != fingerprint(request):
        return found, "approval_for_another_request"
    if found.status == ApprovalStatus.APPROVED and found.expires_at <= now:
        return found, "approval_expired"
    if found.status != ApprovalStatus.APPROVED:
        return found, {
            ApprovalStatus.PENDING: "approval_pending",
            ApprovalStatus.DENIED: "approval_denied",
            ApprovalStatus.EXPIRED: "approval_expired",
            ApprovalStatus.USED: "approval_used",
        }[ApprovalStatus(found.status)]
    # Concurrent retries race on one conditional UPDATE: exactly one uses it.
    used = repository.move_approval(
        session,
        org_id=org_id,
        approval_id=approval_id,
        from_status=ApprovalStatus.APPROVED,
        to_status=ApprovalStatus.USED,
        values={"used_at": now},
        before=now,
    )
    if not used:
        return found, "approval_used"
    events.emit(session, _event(found, events.APPROVAL_USED, now))
    return found, None


def give_back(session: Session, *, org_id: str, approval_id: str) -> None:
    """Undo `use_approval` (the admission was refused by something after it)."""
    repository.move_approval(
        session,
        org_id=org_id,
        approval_id=approval_id,
        from_status=ApprovalStatus.USED,
        to_status=ApprovalStatus.APPROVED,
        values={"used_at": None},
    )


def _event(row: ApprovalRequest, kind: str, now: datetime) -> events.GovernanceEvent:
    return events.GovernanceEvent(
        id=f"{row.id}.{kind.split('.')[1]}",
        type=kind,
        org_id=row.org_id,
        team_id=row.team_id,
        occurred_at=now,
        data=approval_out(row),
    )


def status_at(row: ApprovalRequest, now: datetime) -> str:
    """The status as of `now`: an undecided or unused approval past its time is expired, even
    before a write records it."""
    if row.status in (ApprovalStatus.PENDING, ApprovalStatus.APPROVED) and row.expires_at <= now:
        return ApprovalStatus.EXPIRED.value
    return row.status


def approval_out(row: ApprovalRequest, now: datetime | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "org_id": row.org_id,
        "team_id": row.team_id,
        "user_id": row.user_id,
        "api_key_id": row.api_key_id,
        "policy_ids": row.policy_ids,
        "request": row.request,
        "estimated_cost": plain(row.estimated_cost) if row.estimated_cost is not None else None,
        "approvers": row.approvers,
        "status": status_at(row, now) if now is not None else row.status,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at,
        "reason": row.reason or None,
        "used_at": row.used_at,
    }


# ---- reading and deciding ----


def _expire_if_due(session: Session, row: ApprovalRequest, now: datetime) -> None:
    if row.status in (ApprovalStatus.PENDING, ApprovalStatus.APPROVED) and row.expires_at <= now:
        moved = repository.move_approval(
            session,
            org_id=row.org_id,
            approval_id=row.id,
            from_status=row.status,
            to_status=ApprovalStatus.EXPIRED,
            values={},
        )
        if moved:
            events.emit(session, _event(row, events.APPROVAL_EXPIRED, now))


def find_approval(
    ctx: Ctx, principal: Principal, approval_id: str, *, expire: bool = False
) -> ApprovalRequest:
    """An approval request of the principal's org and a team it sees (404 otherwise); with
    `expire`, one past its time is recorded as expired."""
    session = ctx.session
    found = repository.approval(session, approval_id)
    if found is None or not is_in_org(session, principal, found.org_id):
        raise NotFound("Approval request not found")
    try:
        tenancy.resolve_team_ref(session, principal, found.team_id)
    except NotFound:
        raise NotFound("Approval request not found") from None
    if expire:
        _expire_if_due(session, found, ctx.clock.now())
    return found


def is_approver(session: Session, principal: Principal, row: ApprovalRequest) -> bool:
    if principal.kind != "user":
        return False  # a person decides, never a key
    approvers = row.approvers
    if principal.user_id in approvers.get("users", []):
        return True
    user = identity_repository.user_by_id(session, principal.user_id)
    if user is not None and user.email_normalized in approvers.get("users", []):
        return True
    roles: set[str] = set()
    org = tenancy_repository.org_membership(session, org_id=row.org_id, user_id=principal.user_id)
    if org is not None:
        roles.add(org.role.lower())
    team = tenancy_repository.team_membership(
        session, org_id=row.org_id, team_id=row.team_id, user_id=principal.user_id
    )
    if team is not None:
        roles.add(team.role.lower())
    return bool(roles & set(approvers.get("roles", [])))


def read_approval(ctx: Ctx, principal: Principal, approval_id: str) -> ApprovalRequest:
    """The requester, an approver, or whoever reads the team's governance may see it."""
    found = find_approval(ctx, principal, approval_id)
    if principal.user_id != found.user_id and not is_approver(ctx.session, principal, found):
        authorize(
            ctx.session, principal, Permission.GOVERNANCE_READ,
            org_id=found.org_id, team_id=found.team_id,
        )  # fmt: skip
    return found


def decide(
    ctx: Ctx, principal: Principal, approval_id: str, *, approve: bool, reason: str | None
) -> ApprovalRequest:
    """Approve or deny a pending request: only an approver (403), once (409)."""
    session, now = ctx.session, ctx.clock.now()
    found = find_approval(ctx, principal, approval_id, expire=True)
    where = {"org_id": found.org_id, "team_id": found.team_id}
    if not is_approver(session, principal, found):
        # Someone who cannot even read the team's governance is told which permission they
        # lack; anyone else, that they are not among the approvers.
        authorize(session, principal, Permission.GOVERNANCE_READ, **where)
        raise Forbidden(
            "Only an approver the policy names may decide this request",
            code="not_an_approver",
            **where,
        )
    if principal.user_id == found.user_id:
        raise Forbidden(
            "A request is decided by someone other than who made it",
            code="own_request",
            **where,
        )
    if reason is not None and len(reason) > 2000:
        raise Unprocessable("A reason is at most 2,000 characters", code="invalid_reason")
    if found.status != ApprovalStatus.PENDING:
        code = "approval_expired" if found.status == ApprovalStatus.EXPIRED else "approval_decided"
        if found.status == ApprovalStatus.EXPIRED:
            ctx.keep()  # the expiry found here stands
        raise Conflict(f"This approval request is {found.status}", code=code)
    to = ApprovalStatus.APPROVED if approve else ApprovalStatus.DENIED
    moved = repository.move_approval(
        session,
        org_id=found.org_id,
        approval_id=found.id,
        from_status=ApprovalStatus.PENDING,
        to_status=to,
        values={"decided_by": principal.user_id, "decided_at": now, "reason": reason or ""},
        before=now,
    )
    if not moved:
        raise Conflict("This approval request was decided already", code="approval_decided")
    audit.record(
        ctx,
        principal,
        org_id=found.org_id,
        team_id=found.team_id,
        target_type="approval",
        target_id=found.id,
        summary={"status": to.value, "policies": found.policy_ids},
        action="approval.approved" if approve else "approval.denied",
    )
    kind = events.APPROVAL_APPROVED if approve else events.APPROVAL_DENIED
    events.emit(session, _event(found, kind, now))
    return found


def pending_of_team(session: Session, *, org_id: str, team_id: str, now: datetime) -> int:
    return repository.count_pending(session, org_id=org_id, team_id=team_id, now=now)


def list_approvals(
    ctx: Ctx, principal: Principal, *, org_id: str, status: str | None, limit: int
) -> list[ApprovalRequest]:
    session = ctx.session
    authorize(session, principal, Permission.GOVERNANCE_READ, org_id=org_id)
    if status is not None and status not in ApprovalStatus.__members__.values():
        raise Unprocessable("Unknown approval status", code="invalid_status")
    return repository.approvals_of(
        session, org_id=org_id, status=status, now=ctx.clock.now(), limit=limit
    )


def requests_of(
    ctx: Ctx, principal: Principal, *, org_id: str, limit: int
) -> list[ApprovalRequest]:
    """The requests the person made in the org, newest first: their own, so no permission
    beyond being in the org (as reading one of them needs none)."""
    if principal.kind != "user" or not is_in_org(ctx.session, principal, org_id):
        raise NotFound("Organization not found")
    return repository.approvals_of(
        ctx.session,
        org_id=org_id,
        status=None,
        now=ctx.clock.now(),
        limit=limit,
        user_id=principal.user_id,
    )


def awaiting_decision(
    ctx: Ctx, principal: Principal, *, org_id: str, limit: int
) -> list[ApprovalRequest]:
    """Pending requests of the org this person may decide: they are among the approvers, did
    not make it, and see its team (as `decide` requires)."""
    session = ctx.session
    if principal.kind != "user" or not is_in_org(session, principal, org_id):
        raise NotFound("Organization not found")
    pending = repository.approvals_of(
        session, org_id=org_id, status=ApprovalStatus.PENDING, now=ctx.clock.now(),
        limit=MAX_AWAITING,
    )  # fmt: skip
    found: list[ApprovalRequest] = []
    for row in pending:
        if row.user_id == principal.user_id or not is_approver(session, principal, row):
            continue
        try:
            tenancy.resolve_team_ref(session, principal, row.team_id)
        except NotFound:
            continue
        found.append(row)
        if len(found) >= limit:
            break
    return found
