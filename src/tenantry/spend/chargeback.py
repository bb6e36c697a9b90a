"""Cost centres and chargeback: an org's cost centres, the teams assigned to each, the report of
what each is charged for a period, and the period's spend in the FinOps FOCUS columns.

A team's spend is charged to its own cost centre, or else to the nearest team above it that has
one; spend of teams with none is `unallocated`. Two methods (docs/spend.md, "Chargeback"):

- `usage_based`: each cost centre pays what its teams spent;
- `even_split`: the org's whole spend is shared evenly by the cost centres, to the millionth of
  a dollar, the millionths left over going one each to the first centres by code, so the shares
  add up to the total exactly.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, NotFound
from tenantry.kit.ids import new_id
from tenantry.kit.money import plain
from tenantry.spend import repository
from tenantry.spend.models import CostCentre
from tenantry.spend.views import Period
from tenantry.tenancy import repository as tenancy_repository

METHODS = ("usage_based", "even_split")
MICRO = Decimal("0.000001")
DAY = timedelta(days=1)


def _team_ids(session: Session, org_id: str, refs: Sequence[str]) -> list[str]:
    found = []
    for ref in refs:
        team = tenancy_repository.team_in_org(session, org_id=org_id, team_id=ref)
        if team is None:
            raise NotFound("Team not found")
        found.append(team.id)
    return sorted(set(found))


def centre_out(row: CostCentre, teams: Sequence[str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "org_id": row.org_id,
        "name": row.name,
        "code": row.code,
        "teams": sorted(teams),
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def teams_of(session: Session, org_id: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for team_id, centre in repository.assignments_of(session, org_id).items():
        out.setdefault(centre, []).append(team_id)
    return out


def create(
    ctx: Ctx, principal: Principal, *, org_id: str, name: str, code: str, teams: Sequence[str]
) -> CostCentre:
    session, now = ctx.session, ctx.clock.now()
    team_ids = _team_ids(session, org_id, teams)
    if repository.cost_centre_by_code(session, org_id=org_id, code=code) is not None:
        raise Conflict("The org has a cost centre with this code", code="cost_centre_exists")
    row = CostCentre(
        id=new_id("cc"), org_id=org_id, name=name, code=code, created_at=now, updated_at=now
    )
    session.add(row)
    session.flush()
    repository.assign_teams(
        session, org_id=org_id, cost_centre_id=row.id, team_ids=team_ids, at=now
    )
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        target_type="cost_centre",
        target_id=row.id,
        summary={"name": name, "code": code, "teams": team_ids},
    )
    return row


def find(session: Session, *, org_id: str, cost_centre_id: str) -> CostCentre:
    found = repository.cost_centre(session, org_id=org_id, cost_centre_id=cost_centre_id)
    if found is None:
        raise NotFound("Cost centre not found")
    return found


def set_teams(ctx: Ctx, principal: Principal, row: CostCentre, teams: Sequence[str]) -> None:
    """Make `teams` exactly the cost centre's (a team named moves here from any other)."""
    session, now = ctx.session, ctx.clock.now()
    team_ids = _team_ids(session, row.org_id, teams)
    repository.assign_teams(
        session, org_id=row.org_id, cost_centre_id=row.id, team_ids=team_ids, at=now
    )
    row.updated_at = now
    audit.record(
        ctx,
        principal,
        org_id=row.org_id,
        target_type="cost_centre",
        target_id=row.id,
        summary={"code": row.code, "teams": team_ids},
    )


def delete(ctx: Ctx, principal: Principal, row: CostCentre) -> None:
    ctx.session.delete(row)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=row.org_id,
        target_type="cost_centre",
        target_id=row.id,
        summary={"code": row.code, "name": row.name},
    )


def charged_to(parents: dict[str, str | None], assigned: dict[str, str]) -> dict[str, str | None]:
    """Each team's cost centre: its own, or the nearest team's above it (None: unallocated)."""
    out: dict[str, str | None] = {}
    for team in parents:
        current: str | None = team
        hops = 0
        while current and current not in assigned and hops < 64:
            current, hops = parents.get(current), hops + 1
        out[team] = assigned.get(current) if current else None
    return out


def even_shares(total: Decimal, count: int) -> list[Decimal]:
    """`total` in `count` shares of whole millionths that add up to it exactly."""
    micros = int(total / MICRO)
    base, left = divmod(micros, count)
    return [Decimal(base + (1 if k < left else 0)) * MICRO for k in range(count)]


def report(session: Session, *, org_id: str, chosen: Period, method: str) -> dict[str, Any]:
    """What each cost centre is charged for the period."""
    centres = repository.cost_centres_of(session, org_id)
    members = teams_of(session, org_id)
    parents = repository.team_parents(session, org_id)
    owner = charged_to(parents, repository.assignments_of(session, org_id))
    rows = repository.rollup_totals(
        session, org_id=org_id, team_ids=None, since=chosen.since, until=chosen.until,
        group="team_id",
    )  # fmt: skip
    by_centre: dict[str | None, list[Any]] = {}
    total, requests = Decimal(0), 0
    for row in rows:
        team_id, count, cost = str(row[0]), int(row[1] or 0), Decimal(row[6] or 0)
        entry = by_centre.setdefault(owner.get(team_id), [Decimal(0), 0, set()])
        entry[0] += cost
        entry[1] += count
        entry[2].add(team_id)
        total += cost
        requests += count
    shares = even_shares(total, len(centres)) if method == "even_split" and centres else None
    out = []
    for k, centre in enumerate(centres):
        cost, count, seen = by_centre.get(centre.id, [Decimal(0), 0, set()])
        charged = shares[k] if shares is not None else cost
        out.append(
            {
                "id": centre.id,
                "code": centre.code,
                "name": centre.name,
                "teams": sorted(members.get(centre.id, [])),
                "teams_with_spend": sorted(seen),
                "usage_cost": plain(cost),
                "requests": count,
                "charged": plain(charged),
                "share": plain((charged / total * 100).quantize(Decimal("0.01"))) if total else "0",
            }
        )
    loose_cost, loose_count, loose_teams = by_centre.get(None, [Decimal(0), 0, set()])
    return {
        "org_id": org_id,
        "period": {"label": chosen.label, "start": chosen.since, "end": chosen.until},
        "method": method,
        "currency": "usd",
        "total_cost": plain(total),
        "total_requests": requests,
        "cost_centres": out,
        "unallocated": {
            "usage_cost": plain(loose_cost),
            "requests": loose_count,
            "teams": sorted(loose_teams),
            "charged": "0" if shares is not None else plain(loose_cost),
        },
    }


FOCUS_COLUMNS = (
    "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodStart",
    "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "BilledCost", "EffectiveCost", "ListCost", "ContractedCost",
    "ConsumedQuantity", "ConsumedUnit", "PricingQuantity", "PricingUnit", "ProviderName",
    "PublisherName", "InvoiceIssuerName", "ServiceCategory", "ServiceName", "SkuId",
    "SubAccountId", "SubAccountName", "Tags", "x_CostCentre", "x_Requests", "x_InputTokens",
    "x_OutputTokens", "x_CachedInputTokens",
)  # fmt: skip


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def focus_csv(session: Session, *, org_id: str, org_name: str, chosen: Period) -> str:
    """The period's spend per day, team, provider and model in the FOCUS columns (1.x names;
    custom columns prefixed `x_`), one charge row each."""
    names = repository.team_names(session, org_id)
    centres = {c.id: c.code for c in repository.cost_centres_of(session, org_id)}
    owner = charged_to(
        repository.team_parents(session, org_id), repository.assignments_of(session, org_id)
    )
    rows = repository.rollup_series(
        session, org_id=org_id, team_ids=None, since=chosen.since, until=chosen.until,
        group=("team_id", "provider", "model"),
    )  # fmt: skip
    days: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        day = row.hour.replace(hour=0)
        entry = days.setdefault((day, *row.keys), [Decimal(0), 0, 0, 0, 0])
        entry[0] += row.cost
        entry[1] += row.requests
        entry[2] += row.input_tokens
        entry[3] += row.output_tokens
        entry[4] += row.cached_input_tokens
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FOCUS_COLUMNS)
    for key in sorted(days):
        day, team_id, provider, model = key
        cost, count, tokens_in, tokens_out, cached = days[key]
        centre = centres.get(owner.get(team_id) or "", "")
        slug, team_name = names.get(team_id, (team_id, team_id))
        tags = {"team": slug} | ({"cost_centre": centre} if centre else {})
        start, end = max(day, chosen.since), min(day + DAY, chosen.until)
        writer.writerow([
            org_id, org_name, "USD", _stamp(chosen.since), _stamp(chosen.until), _stamp(start),
            _stamp(end), "Usage", "", f"{provider} {model}: {count} requests",
            plain(cost), plain(cost), plain(cost), plain(cost), tokens_in + tokens_out,
            "Tokens", tokens_in + tokens_out, "Tokens", provider, provider, provider,
            "AI and Machine Learning", model, f"{provider}/{model}", team_id, team_name,
            json.dumps(tags, sort_keys=True), centre, count, tokens_in, tokens_out, cached,
        ])  # fmt: skip
    return buffer.getvalue()
