"""Policies compiled for evaluation, and the decision: pure (no database), so admission, explain
and the dry run decide alike.

Every applicable policy is evaluated, in no particular order, and the outcome depends only on the
set that matched: `deny` beats `require_approval` beats `allow`; `log` and `notify` always run.
A policy whose exceptions cover the subject is skipped before its conditions are read, and the
exception that applied is named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tenantry.governance.conditions import Test, Window, compile_conditions, fields_of
from tenantry.kit.money import plain

PRECEDENCE = ("deny", "require_approval", "allow")


@dataclass(frozen=True)
class CompiledPolicy:
    id: str
    name: str
    version: int
    team_id: str  # "" for the org's
    conditions: tuple[Any, ...]
    actions: tuple[dict[str, Any], ...]
    fields: frozenset[str]
    roles: frozenset[str]
    users: frozenset[str]  # ids and lower-cased emails
    api_keys: frozenset[str]
    windows: tuple[Window, ...]
    kinds: frozenset[str]  # the actions' types
    # The conditions as one function, built at compile: a request evaluates it, not the tree.
    test: Test = field(compare=False, repr=False)

    def action(self, kind: str) -> dict[str, Any] | None:
        return next((a for a in self.actions if a["type"] == kind), None)


def compile_policy(
    *,
    id: str,
    name: str,
    version: int,
    team_id: str,
    rules: Mapping[str, Any],
    exceptions: Mapping[str, Any],
) -> CompiledPolicy:
    conditions = tuple(rules.get("conditions") or ())
    return CompiledPolicy(
        id=id,
        name=name,
        version=version,
        team_id=team_id,
        conditions=conditions,
        actions=tuple(rules.get("actions") or ()),
        fields=frozenset(fields_of(list(conditions))),
        roles=frozenset(r.lower() for r in exceptions.get("roles") or ()),
        users=frozenset(u.lower() if "@" in u else u for u in exceptions.get("users") or ()),
        api_keys=frozenset(exceptions.get("api_keys") or ()),
        windows=tuple(
            Window(tuple(w.get("days") or ()), w["start"], w["end"])
            for w in exceptions.get("time_windows") or ()
        ),
        kinds=frozenset(a["type"] for a in rules.get("actions") or ()),
        test=compile_conditions(list(conditions)),
    )


@dataclass(frozen=True)
class Subject:
    """Who asks, and when (in the org's time zone)."""

    user_id: str | None
    email: str | None
    api_key_id: str | None
    roles: frozenset[str]
    weekday: str
    hhmm: str


def exception_for(policy: CompiledPolicy, subject: Subject) -> dict[str, str] | None:
    """The exception of the policy that covers the subject, if one does."""
    for role in sorted(policy.roles & subject.roles):
        return {"kind": "role", "value": role}
    if subject.user_id and subject.user_id in policy.users:
        return {"kind": "user", "value": subject.user_id}
    if subject.email and subject.email.lower() in policy.users:
        return {"kind": "user", "value": subject.email.lower()}
    if subject.api_key_id and subject.api_key_id in policy.api_keys:
        return {"kind": "api_key", "value": subject.api_key_id}
    for window in policy.windows:
        if window.covers(subject.weekday, subject.hhmm):
            days = ",".join(window.days) or "every day"
            return {"kind": "time_window", "value": f"{days} {window.start}-{window.end}"}
    return None


def shown(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    return value


@dataclass
class Decision:
    outcome: str = "allow"  # allow | deny | require_approval
    matched: list[dict[str, Any]] = field(default_factory=list)
    excepted: list[dict[str, Any]] = field(default_factory=list)
    evaluated: int = 0
    deciding: list[CompiledPolicy] = field(default_factory=list)  # those giving the outcome
    logging: list[CompiledPolicy] = field(default_factory=list)
    notifying: list[CompiledPolicy] = field(default_factory=list)
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)  # policy id -> values

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.outcome,
            "evaluated": self.evaluated,
            "matched": self.matched,
            "excepted": self.excepted,
        }


def decide(policies: list[CompiledPolicy], values: Mapping[str, Any], subject: Subject) -> Decision:
    decision = Decision(evaluated=len(policies))
    outcome_policies: dict[str, list[CompiledPolicy]] = {k: [] for k in PRECEDENCE}
    for policy in sorted(policies, key=lambda p: p.id):
        exception = exception_for(policy, subject)
        if exception is not None:
            decision.excepted.append(
                {"policy_id": policy.id, "name": policy.name, "exception": exception}
            )
            continue
        if not policy.test(values):
            continue
        seen = {name: shown(values.get(name)) for name in sorted(policy.fields)}
        decision.seen[policy.id] = seen
        decision.matched.append(
            {
                "policy_id": policy.id,
                "name": policy.name,
                "version": policy.version,
                "team_id": policy.team_id or None,
                "actions": sorted(policy.kinds),
                "values": seen,
            }
        )
        for kind in PRECEDENCE:
            if kind in policy.kinds:
                outcome_policies[kind].append(policy)
        if "log" in policy.kinds:
            decision.logging.append(policy)
        if "notify" in policy.kinds:
            decision.notifying.append(policy)
    for kind in PRECEDENCE:
        if outcome_policies[kind]:
            decision.outcome = kind
            decision.deciding = outcome_policies[kind]
            break
    return decision
