"""Model access: seed 003's `ai_configuration` of an org, its teams and its API keys — which
models and providers may be used, and `requests_per_minute`, `tokens_per_day` and
`concurrent_requests` — enforced in metering's admission.

Resolution. What applies to a request is a stack of layers: the org's, each team's from the root
down to the request's team, then the API key's. Every layer must let the request through, so a
team or a key can only narrow what is above it:
- in a layer, a model matching a `false` pattern is denied (deny beats allow); where a layer has
  any `true` pattern, a model matching none of them is not allowed. Providers the same way.
  Patterns take `*` and `?` and are matched against the model and `provider/model`, ignoring
  case; `fine_tuned_models` stands for `ft:*` and `custom_models` for `custom/*`.
- every limit set on a layer holds on a counter of its own: the org's counts all the org's
  requests, a team's those of the team and the teams under it, a key's those of the key. All
  hold, so the narrowest limit decides.
Only admissions that name a model or a provider (requests to an AI model) are concerned.

Limits hold like metering's hard quotas, on metering's usage counters and with its conditional
UPDATE (`used + reserved + q <= limit`), in the admission's transaction, counters in key order
after metering's own, so parallel admissions on any number of processes never pass one. A
request counts in its minute once admitted; its estimated tokens are held until the settle puts
what was used in their place (every recorded LLM token of the scope counts); and it is open,
holding one concurrent request, until it is settled or its reservation expires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.governance import repository
from tenantry.governance.models import ModelAccess, ModelAccessScope
from tenantry.kit.context import Ctx
from tenantry.kit.money import plain
from tenantry.kit.stamps import stamped
from tenantry.metering import repository as metering_repository
from tenantry.metering.admission import (
    ADMISSION_CHECKS,
    AdmissionRequest,
    Holding,
    Reason,
    register_holder,
)
from tenantry.metering.recording import UsageEvent, on_usage_recorded
from tenantry.metering.repository import CounterKey, CounterState
from tenantry.tenancy import repository as tenancy_repository

HOLDER = "model_access"
TOKEN_METERS = ("llm_input_tokens", "llm_output_tokens")
LIMITS = ("requests_per_minute", "tokens_per_day", "concurrent_requests")
# Each limit's counter: its meter name (before the scope's id) and period in metering's counters.
_COUNTERS = {
    "requests_per_minute": ("model_access.requests:", "minute"),
    "tokens_per_day": ("model_access.tokens:", "day"),
    "concurrent_requests": ("model_access.open:", "none"),
}
# Open requests are a level that never resets: one counter, at a fixed start.
_LEVEL_START = datetime(1970, 1, 1, tzinfo=UTC)
# Held until released by the settle or the expiry; a request, once admitted, stays counted.
_RELEASED = frozenset({"tokens_per_day", "concurrent_requests"})
ALIASES = {"fine_tuned_models": "ft:*", "custom_models": "custom/*"}
_NOUNS = {
    "requests_per_minute": "requests per minute",
    "tokens_per_day": "tokens per day",
    "concurrent_requests": "concurrent requests",
}


# ---- the layers ----


@dataclass(frozen=True)
class Layer:
    """One scope's configuration, as resolution reads it."""

    org_id: str
    scope: str
    subject_id: str  # "" for the org
    models: tuple[tuple[str, bool], ...]
    providers: tuple[tuple[str, bool], ...]
    limits: tuple[tuple[str, int], ...]  # (limit name, value), only those set

    @property
    def where(self) -> str:
        if self.scope == ModelAccessScope.ORG:
            return "the organization"
        if self.scope == ModelAccessScope.TEAM:
            return f"team {self.subject_id}"
        return f"API key {self.subject_id}"

    def rule(self) -> dict[str, Any]:
        return {"scope": self.scope, "subject_id": self.subject_id or self.org_id}

    def limit(self, name: str) -> int | None:
        return dict(self.limits).get(name)

    def counter(self, name: str, at: datetime) -> CounterKey:
        prefix, period = _COUNTERS[name]
        at = at.astimezone(UTC)
        if period == "minute":
            start = at.replace(second=0, microsecond=0)
        elif period == "day":
            start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        else:
            start = _LEVEL_START
        return (prefix + (self.subject_id or self.org_id), period, start)


def layer_of(row: ModelAccess) -> Layer:
    limits = tuple((name, value) for name in LIMITS if (value := getattr(row, name)) is not None)
    return Layer(
        row.org_id,
        row.scope,
        row.subject_id,
        tuple(sorted(row.models.items())),
        tuple(sorted(row.providers.items())),
        limits,
    )


def org_layers(session: Session, org_id: str) -> Mapping[tuple[str, str], Layer]:
    """The org's configurations by (scope, subject), kept per process under its version stamp
    (a change anywhere bumps it)."""
    return stamped(
        session,
        org_id,
        "governance.model_access",
        lambda: {
            (row.scope, row.subject_id): layer_of(row)
            for row in repository.model_access_of_org(session, org_id)
        },
    )


def _root_first(session: Session, org_id: str, team_id: str) -> tuple[str, ...]:
    """The team's chain from the root down (a team's parent bumps the stamp)."""
    return stamped(
        session,
        org_id,
        f"governance.model_access.chain:{team_id}",
        lambda: tuple(
            reversed(tenancy_repository.team_ancestors(session, org_id=org_id, team_id=team_id))
        ),
    )


def layers_for(
    session: Session, org_id: str, *, team_id: str | None, api_key_id: str | None
) -> list[Layer]:
    """What applies to a request of this team and key, broadest first."""
    known = org_layers(session, org_id)
    if not known:
        return []
    wanted = [(ModelAccessScope.ORG.value, "")]
    if team_id:
        wanted += [(ModelAccessScope.TEAM.value, t) for t in _root_first(session, org_id, team_id)]
    if api_key_id:
        wanted.append((ModelAccessScope.API_KEY.value, api_key_id))
    return [known[w] for w in wanted if w in known]


# ---- allow and deny ----


@dataclass(frozen=True)
class Refusal:
    code: str
    detail: str
    rule: dict[str, Any]

    def reason(self) -> Reason:
        return Reason(self.code, self.detail, {"model_access": self.rule})


def _matches(pattern: str, names: Sequence[str]) -> bool:
    wanted = ALIASES.get(pattern, pattern).lower()
    return any(fnmatchcase(name, wanted) for name in names)


def refusal(layers: Sequence[Layer], *, provider: str | None, model: str | None) -> Refusal | None:
    """The first layer, broadest first, that does not let this model and provider through."""
    model_names = [] if model is None else [model.lower()]
    if model is not None and provider:
        model_names.append(f"{provider}/{model}".lower())
    for layer in layers:
        for kind, named, names, patterns in (
            ("model", model, model_names, layer.models),
            ("provider", provider, [provider.lower()] if provider else [], layer.providers),
        ):
            if named is None or not patterns:
                continue
            denied = next((p for p, ok in patterns if not ok and _matches(p, names)), None)
            if denied is not None:
                return Refusal(
                    f"{kind}_denied",
                    f"The {kind} {named!r} is denied by {denied!r} in the model access of "
                    f"{layer.where}",
                    {**layer.rule(), "kind": kind, "pattern": denied, "effect": "deny"},
                )
            allowed = [p for p, ok in patterns if ok]
            if allowed and not any(_matches(p, names) for p in allowed):
                return Refusal(
                    f"{kind}_not_allowed",
                    f"The {kind} {named!r} is not among those the model access of "
                    f"{layer.where} allows ({', '.join(allowed)})",
                    {**layer.rule(), "kind": kind, "allowed": allowed, "effect": "not_allowed"},
                )
    return None


def _concerned(request_model: str | None, request_provider: str | None) -> bool:
    return request_model is not None or request_provider is not None


def access_check(request: AdmissionRequest) -> list[Reason]:
    """An admission check of metering: the models and providers the layers allow."""
    if not _concerned(request.model, request.provider):
        return []
    layers = layers_for(
        request.session,
        request.team.org_id,
        team_id=request.team.id,
        api_key_id=request.principal.api_key_id,
    )
    found = refusal(layers, provider=request.provider, model=request.model)
    return [] if found is None else [found.reason()]


if access_check not in ADMISSION_CHECKS:
    ADMISSION_CHECKS.append(access_check)


# ---- limits ----


@dataclass(frozen=True)
class _Limit:
    key: CounterKey
    name: str
    layer: Layer
    value: int
    quantity: Decimal


def estimated_tokens(estimate: Mapping[str, Decimal]) -> Decimal:
    """The tokens an admission holds: its estimate, at least one, so a day spent to the last
    token refuses a request that estimates none."""
    return max(sum((estimate.get(m, Decimal(0)) for m in TOKEN_METERS), Decimal(0)), Decimal(1))


def _limits(layers: Sequence[Layer], tokens: Decimal, now: datetime) -> list[_Limit]:
    out = [
        _Limit(
            layer.counter(name, now),
            name,
            layer,
            value,
            tokens if name == "tokens_per_day" else Decimal(1),
        )
        for layer in layers
        for name, value in layer.limits
    ]
    return sorted(out, key=lambda limit: limit.key)


def _hold(session: Session, org_id: str, limit: _Limit) -> tuple[bool, CounterState | None]:
    """metering's conditional hold; a counter not made yet for this period is made first."""
    for attempt in range(2):
        held, state = metering_repository.hold_within(
            session,
            org_id=org_id,
            key=limit.key,
            quantity=limit.quantity,
            limit=Decimal(limit.value),
        )
        if held or state is not None or attempt:
            return held, state
        metering_repository.ensure_counters(session, org_id=org_id, keys=[limit.key])
    raise AssertionError("unreachable")


def _status(limit: _Limit, state: CounterState | None) -> dict[str, Any]:
    taken = (state.used + state.reserved) if state else Decimal(0)
    return {
        **limit.layer.rule(),
        "limit": limit.name,
        "value": limit.value,
        "period_start": None if limit.key[1] == "none" else limit.key[2].isoformat(),
        "counted": plain(taken),
        "remaining": plain(max(Decimal(0), limit.value - taken)),
    }


def _limit_reason(limit: _Limit, state: CounterState | None, now: datetime) -> Reason:
    status = _status(limit, state)
    extra: dict[str, Any] = {"model_access": {**status, "requested": plain(limit.quantity)}}
    if limit.name == "requests_per_minute":
        extra["retry_after"] = 60 - now.astimezone(UTC).second
    return Reason(
        f"{limit.name}_exceeded",
        f"{plain(limit.quantity)} more would pass the limit of {limit.value} "
        f"{_NOUNS[limit.name]} of {limit.layer.where}: {status['counted']} counted",
        extra,
    )


def _stored(limit: _Limit) -> dict[str, Any]:
    meter, period, start = limit.key
    return {
        "holder": HOLDER,
        "limit": limit.name,
        "meter": meter,
        "period": period,
        "period_start": start.isoformat(),
        "quantity": plain(limit.quantity),
    }


def _releases(
    entries: Iterable[Mapping[str, Any]], *, names: frozenset[str] = _RELEASED
) -> dict[CounterKey, Decimal]:
    out: dict[CounterKey, Decimal] = {}
    for entry in entries:
        if entry.get("holder") != HOLDER or entry.get("limit") not in names:
            continue
        key = (
            str(entry["meter"]),
            str(entry["period"]),
            datetime.fromisoformat(str(entry["period_start"])),
        )
        out[key] = out.get(key, Decimal(0)) + Decimal(str(entry["quantity"]))
    return out


class ModelAccessHolder:
    """The limits as an admission holder of metering."""

    name = HOLDER

    def hold(self, request: AdmissionRequest, releasing: list[dict[str, Any]]) -> Holding:
        session, org_id = request.session, request.team.org_id
        releases = _releases(releasing)
        limits: list[_Limit] = []
        if _concerned(request.model, request.provider):
            layers = layers_for(
                session, org_id, team_id=request.team.id, api_key_id=request.principal.api_key_id
            )
            limits = _limits(layers, estimated_tokens(request.estimate), request.now)
        if not limits and not releases:
            return Holding()
        by_key = {limit.key: limit for limit in limits}
        taken: list[tuple[_Limit, CounterState | None]] = []
        refused: Reason | None = None
        for key in sorted(set(by_key) | set(releases)):
            if key in releases:
                metering_repository.add_reserved(
                    session, org_id=org_id, key=key, delta=-releases[key]
                )
            limit = by_key.get(key)
            if limit is None or refused is not None:
                continue
            held, state = _hold(session, org_id, limit)
            if held:
                taken.append((limit, state))
            else:
                refused = _limit_reason(limit, state, request.now)
        if refused is not None:
            self.give_back(session, org_id, [_stored(limit) for limit, _ in taken])
            return Holding(refused=[refused], sections={"model_access": {"decided": refused.extra}})
        section = {"limits": [_status(limit, state) for limit, state in taken]}
        return Holding(
            held=[_stored(limit) for limit, _ in taken], sections={"model_access": section}
        )

    def give_back(self, session: Session, org_id: str, held: list[dict[str, Any]]) -> None:
        every = frozenset(LIMITS)
        for key, quantity in sorted(_releases(held, names=every).items()):
            metering_repository.add_reserved(session, org_id=org_id, key=key, delta=-quantity)

    def release(
        self, session: Session, org_id: str, held: list[dict[str, Any]], *, now: datetime
    ) -> None:
        """An admitted request's reservation expired: it is no longer open and its tokens are
        no longer expected; it stays counted in its minute."""
        for key, quantity in sorted(_releases(held).items()):
            metering_repository.add_reserved(session, org_id=org_id, key=key, delta=-quantity)


register_holder(ModelAccessHolder())


def count_tokens(
    session: Session,
    org_id: str,
    events: Sequence[UsageEvent],
    held: Sequence[Mapping[str, Any]],
    now: datetime,
) -> None:
    """A usage listener of metering: the LLM tokens recorded count toward every `tokens_per_day`
    of their scope, and a settle's holds (its tokens, its open request) are released, in one
    upsert in key order."""
    releases = _releases(held)
    used: dict[CounterKey, Decimal] = {}
    tokens = [e for e in events if e.meter in TOKEN_METERS and e.quantity]
    layers_of_org = org_layers(session, org_id).values() if tokens else ()
    if any(layer.limit("tokens_per_day") is not None for layer in layers_of_org):
        for event in tokens:
            layers = layers_for(session, org_id, team_id=event.team_id, api_key_id=event.api_key_id)
            for layer in layers:
                if layer.limit("tokens_per_day") is not None:
                    key = layer.counter("tokens_per_day", event.timestamp)
                    used[key] = used.get(key, Decimal(0)) + event.quantity
    if used or releases:
        metering_repository.change_counters(
            session, org_id=org_id, used=used, reserved_release=releases
        )


on_usage_recorded(count_tokens)


# ---- explain and the effective view ----


def explain(
    session: Session,
    *,
    org_id: str,
    team_id: str | None,
    api_key_id: str | None,
    provider: str | None,
    model: str | None,
    estimate: Mapping[str, Decimal],
    now: datetime,
) -> dict[str, Any]:
    """What model access would decide for this request now, and the rule deciding; reads the
    counters, writes nothing."""
    layers = layers_for(session, org_id, team_id=team_id, api_key_id=api_key_id)
    concerned = _concerned(model, provider)
    found = refusal(layers, provider=provider, model=model) if concerned else None
    limits = _limits(layers, estimated_tokens(estimate), now) if concerned else []
    states = metering_repository.counters(session, org_id=org_id, keys=[x.key for x in limits])
    statuses = []
    over: Reason | None = None
    for limit in limits:
        state = states.get(limit.key)
        taken = (state.used + state.reserved) if state else Decimal(0)
        fits = taken + limit.quantity <= limit.value
        statuses.append({**_status(limit, state), "fits": fits})
        if not fits and over is None:
            over = _limit_reason(limit, state, now)
    deciding = found.reason() if found is not None else over
    return {
        "decision": "deny" if deciding is not None else "allow",
        "reason": None if deciding is None else deciding.as_dict(),
        "layers": [layer.rule() for layer in layers],
        "limits": statuses,
    }


def effective(
    session: Session,
    *,
    org_id: str,
    team_id: str | None,
    api_key_id: str | None,
) -> dict[str, Any]:
    """Every pattern and the narrowest of each limit that apply to a request of this team and
    key, each with the scope that set it."""
    layers = layers_for(session, org_id, team_id=team_id, api_key_id=api_key_id)
    models: dict[str, list[dict[str, Any]]] = {"allow": [], "deny": []}
    providers: dict[str, list[dict[str, Any]]] = {"allow": [], "deny": []}
    narrowest: dict[str, dict[str, Any] | None] = dict.fromkeys(LIMITS)
    for layer in layers:
        for into, patterns in ((models, layer.models), (providers, layer.providers)):
            for pattern, ok in patterns:
                into["allow" if ok else "deny"].append({"pattern": pattern, **layer.rule()})
        for name, value in layer.limits:
            now = narrowest[name]
            if now is None or value < int(now["value"]):
                narrowest[name] = {"value": value, **layer.rule()}
    return {"layers": layers, "models": models, "providers": providers, "rate_limits": narrowest}


# ---- reading and setting a scope's configuration ----


@dataclass(frozen=True)
class AccessSpec:
    """A configuration as set: seed 003's `model_access`, `rate_limits` and `safety_settings`,
    and `providers`."""

    models: Mapping[str, bool]
    providers: Mapping[str, bool]
    limits: Mapping[str, int | None]
    safety_settings: Mapping[str, Any] | None


def access_out(
    row: ModelAccess | None, *, org_id: str, scope: str, subject_id: str
) -> dict[str, Any]:
    limits = {name: (getattr(row, name) if row else None) for name in LIMITS}
    return {
        "org_id": org_id,
        "scope": scope,
        "subject_id": subject_id or org_id,
        "configured": row is not None,
        "model_access": dict(row.models) if row else {},
        "providers": dict(row.providers) if row else {},
        "rate_limits": limits,
        "safety_settings": row.safety_settings if row else None,
        "updated_at": row.updated_at if row else None,
    }


def layer_out(layer: Layer, session: Session) -> dict[str, Any]:
    row = repository.model_access(
        session, org_id=layer.org_id, scope=layer.scope, subject_id=layer.subject_id
    )
    return access_out(row, org_id=layer.org_id, scope=layer.scope, subject_id=layer.subject_id)


def _authorize(
    session: Session,
    principal: Principal,
    permission: Permission,
    *,
    org_id: str,
    scope: str,
    subject_id: str,
) -> None:
    team_id = subject_id if scope == ModelAccessScope.TEAM else None
    authorize(session, principal, permission, org_id=org_id, team_id=team_id)


def access_of(
    session: Session, principal: Principal, *, org_id: str, scope: str, subject_id: str
) -> dict[str, Any]:
    _authorize(
        session, principal, Permission.GOVERNANCE_READ,
        org_id=org_id, scope=scope, subject_id=subject_id,
    )  # fmt: skip
    row = repository.model_access(session, org_id=org_id, scope=scope, subject_id=subject_id)
    return access_out(row, org_id=org_id, scope=scope, subject_id=subject_id)


def set_access(
    ctx: Ctx,
    principal: Principal,
    *,
    org_id: str,
    scope: str,
    subject_id: str,
    spec: AccessSpec,
) -> dict[str, Any]:
    """Replace the scope's configuration with `spec` (a PUT: what is left out is unset)."""
    session = ctx.session
    _authorize(
        session, principal, Permission.GOVERNANCE_MANAGE,
        org_id=org_id, scope=scope, subject_id=subject_id,
    )  # fmt: skip
    row = repository.model_access(session, org_id=org_id, scope=scope, subject_id=subject_id)
    before = access_out(row, org_id=org_id, scope=scope, subject_id=subject_id)
    if row is None:
        row = ModelAccess(org_id=org_id, scope=scope, subject_id=subject_id)
        session.add(row)
    row.models = dict(spec.models)
    row.providers = dict(spec.providers)
    for name in LIMITS:
        setattr(row, name, spec.limits.get(name))
    row.safety_settings = None if spec.safety_settings is None else dict(spec.safety_settings)
    row.updated_by = principal.user_id
    row.updated_at = ctx.clock.now()
    session.flush()
    after = access_out(row, org_id=org_id, scope=scope, subject_id=subject_id)
    fields = ("model_access", "providers", "rate_limits", "safety_settings")
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        team_id=subject_id if scope == ModelAccessScope.TEAM else None,
        target_type="model_access",
        target_id=subject_id or org_id,
        summary={
            "scope": scope,
            "changed": [f for f in fields if before[f] != after[f]],
            "model_access": after["model_access"],
            "providers": after["providers"],
            "rate_limits": after["rate_limits"],
        },
        action=f"model_access.{scope}_updated",
    )
    return after
