"""Policies in admission: an admission holder of metering that evaluates the org's active
policies (compiled per version stamp) over the request, its attributes and the member's live
spend, and then denies, sends for approval (or uses the approval the retry carries), records
violations and raises events, in the admission's transaction. `explain` gives the same decision
without writing anything."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from tenantry.authz.principal import Principal
from tenantry.governance import approvals, classification, events, repository
from tenantry.governance.conditions import AGGREGATES, WEEKDAYS
from tenantry.governance.engine import CompiledPolicy, Decision, Subject, decide
from tenantry.governance.models import Violation, ViolationKind
from tenantry.governance.policies import OrgPolicies, org_policies_compiled
from tenantry.identity import repository as identity_repository
from tenantry.kit.ids import new_id
from tenantry.kit.money import plain
from tenantry.kit.stamps import stamped
from tenantry.metering.admission import AdmissionRequest, Holding, Reason, register_holder
from tenantry.tenancy import repository as tenancy_repository
from tenantry.tenancy.scope import TeamRef

HOLDER = "governance"
COST_METER = "llm_cost_usd"
TOKEN_METERS = ("llm_input_tokens", "llm_output_tokens")


@dataclass(frozen=True)
class Ask:
    """What is evaluated: an admission, or an explain of one."""

    principal: Principal
    team: TeamRef
    action: str
    provider: str | None
    model: str | None
    estimate: Mapping[str, Decimal]
    attributes: Mapping[str, Any]  # data_classification, region, tags, approval_id
    now: datetime

    @property
    def estimated_cost(self) -> Decimal | None:
        return self.estimate.get(COST_METER)

    def fingerprint_fields(self) -> dict[str, Any]:
        return {
            "team_id": self.team.id,
            "user_id": self.principal.user_id,
            "api_key_id": self.principal.api_key_id,
            "action": self.action,
            "provider": self.provider,
            "model": self.model,
            "estimate": {k: plain(v) for k, v in sorted(self.estimate.items())},
            "data_classification": self.attributes.get("data_classification"),
            "region": self.attributes.get("region"),
            "tags": dict(self.attributes.get("tags") or {}),
        }


@dataclass
class Evaluated:
    decision: Decision
    values: dict[str, Any]
    applicable: list[CompiledPolicy] = field(default_factory=list)


def _chain(session: Session, team: TeamRef) -> tuple[str, ...]:
    """The team and the teams above it (a team's parent bumps the stamp)."""
    return stamped(
        session,
        team.org_id,
        f"governance.chain:{team.id}",
        lambda: tuple(
            tenancy_repository.team_ancestors(session, org_id=team.org_id, team_id=team.id)
        ),
    )


def _roles(
    session: Session, principal: Principal, team: TeamRef
) -> tuple[str | None, frozenset[str]]:
    """The member's role as conditions see it (their team role, else their org role) and every
    role name exceptions may name; memberships bump the stamp, so kept per version."""

    def load() -> tuple[str | None, frozenset[str]]:
        org = tenancy_repository.org_membership(
            session, org_id=team.org_id, user_id=principal.user_id
        )
        member = tenancy_repository.team_membership(
            session, org_id=team.org_id, team_id=team.id, user_id=principal.user_id
        )
        names = frozenset(r.role.lower() for r in (org, member) if r is not None)
        role = member.role if member is not None else (org.role if org is not None else None)
        return role, names

    return stamped(session, team.org_id, f"governance.roles:{team.id}:{principal.user_id}", load)


def _values(
    session: Session, ask: Ask, role: str | None, local: datetime, needs: set[str]
) -> dict[str, Any]:
    cost = ask.estimated_cost
    tokens = sum((ask.estimate.get(m, Decimal(0)) for m in TOKEN_METERS), Decimal(0))
    values: dict[str, Any] = {
        "model": ask.model,
        "provider": ask.provider,
        "action": ask.action,
        "estimated_cost": cost,
        "estimated_tokens": tokens if any(m in ask.estimate for m in TOKEN_METERS) else None,
        "data_classification": ask.attributes.get("data_classification"),
        "region": ask.attributes.get("region"),
        "role": role,
        "api_key": ask.principal.api_key_id,
        "user": ask.principal.user_id,
        "hour_of_day": local.hour,
        "weekday": WEEKDAYS[local.weekday()],
    }
    for key, value in (ask.attributes.get("tags") or {}).items():
        values[f"tags.{key}"] = value
    org_id, now = ask.team.org_id, ask.now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # Spend so far (the rollups) plus this request's estimate: what the member would have spent
    # with it. Read only when a policy asks, all in one statement.
    user = ask.principal.user_id
    parts = {
        "daily_cost_per_user": (day, user, None),
        "monthly_team_cost": (day.replace(day=1), None, ask.team.id),
        # Rollups are hourly: the hours that overlap the last sixty minutes.
        "requests_last_hour": (
            (now - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0),
            user,
            None,
        ),
    }
    sums = repository.rollup_sums(session, org_id, {k: v for k, v in parts.items() if k in needs})
    for name, (spent, requests) in sums.items():
        values[name] = requests if name == "requests_last_hour" else spent + (cost or Decimal(0))
    return values


def evaluate(session: Session, ask: Ask) -> Evaluated:
    """The decision of the org's active policies that apply to the team (the org's, the team's
    and those of the teams above it). With no policy, nothing else is read."""
    org: OrgPolicies = org_policies_compiled(session, ask.team.org_id)
    if not org.policies:
        return Evaluated(Decision(), {})
    chain = _chain(session, ask.team)
    applicable = [p for p in org.policies if p.team_id == "" or p.team_id in chain]
    if not applicable:
        return Evaluated(Decision(), {})
    local = ask.now.astimezone(ZoneInfo(org.timezone_for(chain)))
    role, roles = _roles(session, ask.principal, ask.team)
    email = None
    if any("@" in u for p in applicable for u in p.users):
        user = identity_repository.user_by_id(session, ask.principal.user_id)
        email = user.email_normalized if user is not None else None
    subject = Subject(
        ask.principal.user_id,
        email,
        ask.principal.api_key_id,
        frozenset(roles),
        WEEKDAYS[local.weekday()],
        local.strftime("%H:%M"),
    )
    needs = set().union(*(p.fields for p in applicable)) & AGGREGATES
    values = _values(session, ask, role, local, needs)
    return Evaluated(decide(applicable, values, subject), values, applicable)


def classified(session: Session, ask: Ask) -> classification.Classified | None:
    """The request's classification level and what it refuses (422 for an unknown level)."""
    if ask.attributes.get("data_classification") is None:
        return None
    return classification.classify(
        session, org_id=ask.team.org_id, chain=_chain(session, ask.team), attributes=ask.attributes
    )


def explain(session: Session, principal: Principal, ask: Ask) -> dict[str, Any]:
    """What admission would decide for this request of the principal's own, and why; writes
    nothing. (The principal named the team: that is all it takes to ask about oneself.)"""
    level = classified(session, ask)
    done = evaluate(session, ask)
    out = {
        **done.decision.as_dict(),
        "values": {k: _shown(v) for k, v in sorted(done.values.items())},
        "policies_applicable": [p.id for p in done.applicable],
        "classification": level.as_dict() if level is not None else None,
    }
    # The stricter of the two decides: a denial over an approval over an allow.
    if level is not None and out["decision"] != "deny" and level.outcome != "allow":
        out["decision"] = level.outcome
    return out


def _shown(value: Any) -> Any:
    return plain(value) if isinstance(value, Decimal) else value


# ---- the admission holder ----


def _violation(
    session: Session, ask: Ask, policy: CompiledPolicy, kind: str, seen: dict[str, Any],
    approval_id: str | None,
) -> Violation:  # fmt: skip
    row = Violation(
        id=new_id("vio"),
        org_id=ask.team.org_id,
        at=ask.now,
        policy_id=policy.id,
        policy_version=policy.version,
        team_id=ask.team.id,
        user_id=ask.principal.user_id,
        api_key_id=ask.principal.api_key_id,
        kind=kind,
        action=ask.action[:100],
        model=ask.model,
        values=seen,
        approval_id=approval_id,
    )
    session.add(row)
    return row


def _event(kind: str, row: Violation, policy: CompiledPolicy) -> events.GovernanceEvent:
    return events.GovernanceEvent(
        id=f"{row.id}.{kind}",
        type=kind,
        org_id=row.org_id,
        team_id=row.team_id,
        occurred_at=row.at,
        data={
            "violation_id": row.id,
            "kind": row.kind,
            "policy": {"id": policy.id, "name": policy.name, "version": policy.version},
            "parameters": (policy.action("notify") or {}).get("parameters", {}),
            "user_id": row.user_id,
            "api_key_id": row.api_key_id,
            "action": row.action,
            "model": row.model,
            "values": row.values,
            "approval_id": row.approval_id,
        },
    )


def ask_of(request: AdmissionRequest) -> Ask:
    return Ask(
        request.principal,
        request.team,
        request.action,
        request.provider,
        request.model,
        request.estimate,
        request.context,
        request.now,
    )


def _access_logged(
    session: Session, ask: Ask, level: classification.Classified, reservation_id: str
) -> None:
    classification.access_logged(
        session, principal=ask.principal, org_id=ask.team.org_id, team_id=ask.team.id,
        reservation_id=reservation_id, classified=level, action=ask.action, model=ask.model,
        now=ask.now,
    )  # fmt: skip


class GovernanceHolder:
    """Policies as an admission holder: it holds nothing on counters; what it takes is the use
    of an approval, given back if the admission is refused after it."""

    name = HOLDER

    def hold(self, request: AdmissionRequest, releasing: list[dict[str, Any]]) -> Holding:
        session, ask = request.session, ask_of(request)
        level = classified(session, ask)
        done = evaluate(session, ask)
        decision = done.decision
        if level is None and not decision.matched and not decision.excepted:
            return Holding()
        section: dict[str, Any] = {**decision.as_dict(), "approval_id": None}
        if level is not None:
            section["classification"] = level.as_dict()
        refused: list[Reason] = []
        held: list[dict[str, Any]] = []
        approval_id: str | None = None
        request_fields = ask.fingerprint_fields()
        by_policy = decision.outcome == "require_approval"
        by_level = level is not None and level.approval_required
        if decision.outcome == "deny":
            names = ", ".join(repr(p.name) for p in decision.deciding)
            refused.append(
                Reason("policy_denied", f"Denied by policy {names}", {"governance": section})
            )
        if level is not None and level.denials:
            refused.extend(
                Reason(r.code, r.detail, {**r.extra, "governance": section}) for r in level.denials
            )
        if not refused and (by_policy or by_level):
            carried = ask.attributes.get("approval_id")
            if carried:
                found, why = approvals.use_approval(
                    session,
                    org_id=ask.team.org_id,
                    approval_id=str(carried),
                    request=request_fields,
                    now=ask.now,
                )
                approval_id = found.id if found is not None else None
                section["approval_id"] = approval_id
                if why is None and found is not None:
                    held.append({"holder": HOLDER, "approval_id": found.id})
                    section["approval_used"] = True
                else:
                    refused.append(
                        Reason(
                            why or "approval_not_usable",
                            "The approval this request carries cannot be used: "
                            f"{(why or '').replace('_', ' ')}",
                            {"approval_id": approval_id, "governance": section},
                        )
                    )
            else:
                row = approvals.request_approval(
                    session,
                    org_id=ask.team.org_id,
                    team_id=ask.team.id,
                    user_id=ask.principal.user_id,
                    api_key_id=ask.principal.api_key_id,
                    policies=decision.deciding if by_policy else (),
                    request=request_fields,
                    cost=ask.estimated_cost,
                    now=ask.now,
                    also_approvers=classification.approvers() if by_level else None,
                )
                approval_id = row.id
                section["approval_id"] = row.id
                names = ", ".join(repr(p.name) for p in decision.deciding) if by_policy else ""
                who = " and ".join(
                    [*([f"Policy {names}"] if by_policy else []),
                     *([f"Data classified {level.level.name!r}"] if by_level and level else [])]
                )  # fmt: skip
                refused.append(
                    Reason(
                        "approval_required",
                        f"{who} requires approval; retry with approval_id once approved",
                        {
                            "approval_id": row.id,
                            "expires_at": row.expires_at.isoformat(),
                            "governance": section,
                        },
                    )
                )
        if decision.outcome in ("deny", "require_approval") and not held:
            kind = ViolationKind.DENIED if decision.outcome == "deny" else ViolationKind.APPROVAL
            for policy in decision.deciding:
                row_v = _violation(
                    session, ask, policy, kind.value, decision.seen[policy.id], approval_id
                )
                if kind is ViolationKind.DENIED:
                    events.emit(session, _event(events.POLICY_VIOLATED, row_v, policy))
        for policy in decision.logging:
            row_v = _violation(
                session, ask, policy, ViolationKind.LOGGED.value, decision.seen[policy.id],
                approval_id,
            )  # fmt: skip
            events.emit(session, _event(events.POLICY_VIOLATED, row_v, policy))
        for policy in decision.notifying:
            row_v = Violation(
                id=new_id("vio"), org_id=ask.team.org_id, at=ask.now, policy_id=policy.id,
                policy_version=policy.version, team_id=ask.team.id,
                user_id=ask.principal.user_id, api_key_id=ask.principal.api_key_id,
                kind="notify", action=ask.action[:100], model=ask.model,
                values=decision.seen[policy.id], approval_id=approval_id,
            )  # fmt: skip
            events.emit(session, _event(events.POLICY_NOTIFY, row_v, policy))
        session.flush()
        admitted: list[Callable[[str], None]] = []
        if level is not None and level.access_logging and not refused:
            admitted.append(partial(_access_logged, session, ask, level))
        return Holding(
            refused=refused, held=held, sections={"governance": section}, admitted=admitted
        )

    def give_back(self, session: Session, org_id: str, held: list[dict[str, Any]]) -> None:
        for entry in held:
            if entry.get("holder") == HOLDER and entry.get("approval_id"):
                approvals.give_back(session, org_id=org_id, approval_id=str(entry["approval_id"]))

    def release(
        self, session: Session, org_id: str, held: list[dict[str, Any]], *, now: datetime
    ) -> None:
        """An admitted request's reservation expired unsettled: the approval stays used (the
        action was admitted once)."""


register_holder(GovernanceHolder())
