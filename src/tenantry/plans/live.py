"""The plan catalog as the deployment has it: the shipped plans (`plans.catalog.PLANS`) with the
operators' edits (`plan_catalog` rows) laid over them.

Reading it is cheap: each process keeps the built catalog under the deployment-wide catalog
version (`plan_catalog_version`, one row), read at most once per transaction and only by code
that asks for the catalog (an org's effective plan is kept under the org's own version stamp and
does not ask on the hot path). An edit bumps the catalog version and every org's version stamp in
its transaction, so every process rebuilds both on its next request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tenantry.kit.errors import Unprocessable
from tenantry.plans.catalog import (
    DEFAULT_PLAN,
    PLANS,
    QUOTA_SHAPES,
    UPGRADE_PATH,
    Enforcement,
    Plan,
    Quota,
    RateLimits,
)
from tenantry.plans.models import CatalogPlanRow, CatalogVersion

_SEEN = "tenantry.plans.catalog_version"  # the version this transaction read
_VERSION = text("SELECT version FROM plan_catalog_version WHERE id = 1")


@dataclass(frozen=True)
class Catalog:
    version: int
    plans: dict[str, Plan]
    upgrade: dict[str, str | None] = field(default_factory=dict)

    def get(self, key: str) -> Plan | None:
        return self.plans.get(key)

    def check(self, key: str) -> Plan:
        """The plan `key`, or 422 `invalid_plan` naming the plans."""
        plan = self.plans.get(key)
        if plan is None:
            raise Unprocessable(f"Plan must be one of {', '.join(self.plans)}", code="invalid_plan")
        return plan

    def upgrade_hint(self, key: str) -> str | None:
        return self.upgrade.get(key)


SHIPPED = Catalog(0, dict(PLANS), dict(UPGRADE_PATH))
_built: WeakKeyDictionary[Engine, Catalog] = WeakKeyDictionary()
_lock = threading.Lock()


def version(session: Session) -> int:
    seen: int | None = session.info.get(_SEEN)
    if seen is None:
        seen = session.info[_SEEN] = int(session.execute(_VERSION).scalar() or 0)
    return seen


def current(session: Session) -> Catalog:
    """The catalog at this transaction's view of it."""
    at = version(session)
    if at == 0:
        return SHIPPED  # never edited
    bind: Any = session.get_bind()
    engine: Engine = getattr(bind, "engine", bind)
    with _lock:
        found = _built.get(engine)
    if found is not None and found.version == at:
        return found
    rows = list(session.scalars(select(CatalogPlanRow).order_by(CatalogPlanRow.position)))
    built = build(at, rows)
    if not session.info.get("tenantry.plans.catalog_dirty"):
        with _lock:
            _built[engine] = built
    return built


def build(at: int, rows: list[CatalogPlanRow]) -> Catalog:
    plans = dict(PLANS)
    upgrade = dict(UPGRADE_PATH)
    for row in rows:
        plans[row.key] = plan_of(row)
        upgrade[row.key] = row.upgrade_to
    return Catalog(at, plans, upgrade)


def plan_of(row: CatalogPlanRow) -> Plan:
    quotas: dict[str, Quota] = {}
    for key, spec in (row.quotas or {}).items():
        kind, period, meter = QUOTA_SHAPES[key]
        raw = spec.get("limit")
        quotas[key] = Quota(
            key=key,
            kind=kind,
            limit=None if raw is None else Decimal(str(raw)),
            enforcement=Enforcement(spec.get("enforcement") or Enforcement.HARD.value),
            period=period,
            meter=meter,
        )
    return Plan(
        key=row.key,
        name=row.name,
        monthly_price=Decimal(row.monthly_price),
        yearly_price=Decimal(row.yearly_price),
        quotas=quotas,
        rate_limits=RateLimits(**{k: int(v) for k, v in (row.rate_limits or {}).items()}),
        overage_rates={k: Decimal(str(v)) for k, v in (row.overage_rates or {}).items()},
        currency=row.currency,
        audit_retention_days=row.audit_retention_days,
    )


def row_values(plan: Plan, *, upgrade_to: str | None, position: int) -> dict[str, Any]:
    """A plan as a `plan_catalog` row stores it."""
    return {
        "key": plan.key,
        "name": plan.name,
        "monthly_price": str(plan.monthly_price),
        "yearly_price": str(plan.yearly_price),
        "currency": plan.currency,
        "quotas": {
            q.key: {
                "limit": None if q.limit is None else str(q.limit),
                "enforcement": q.enforcement.value,
            }
            for q in plan.quotas.values()
        },
        "rate_limits": {
            "org_per_minute": plan.rate_limits.org_per_minute,
            "org_burst": plan.rate_limits.org_burst,
            "key_per_minute": plan.rate_limits.key_per_minute,
            "key_burst": plan.rate_limits.key_burst,
        },
        "overage_rates": {k: str(v) for k, v in plan.overage_rates.items()},
        "audit_retention_days": plan.audit_retention_days,
        "upgrade_to": upgrade_to,
        "position": position,
    }


def save(session: Session, plan: Plan, *, upgrade_to: str | None, now: datetime, new: bool) -> None:
    """Store `plan` in the catalog (a new plan, or an edit of one, shipped ones included) and
    make every process see it: the catalog version and every org's version stamp move."""
    row = session.get(CatalogPlanRow, plan.key)
    position = (
        row.position
        if row is not None
        else (
            list(PLANS).index(plan.key) if plan.key in PLANS else 100 + len(current(session).plans)
        )
    )
    values = row_values(plan, upgrade_to=upgrade_to, position=position)
    if row is None:
        row = CatalogPlanRow(**values, updated_at=now)
        session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = now
    counter = session.get(CatalogVersion, 1)
    if counter is None:
        counter = CatalogVersion(id=1, version=0)
        session.add(counter)
    # Past every version this database's catalog ever had, even if its rows were emptied since.
    counter.version = max((counter.version or 0) + 1, time.time_ns() // 1000)
    session.flush()
    session.info[_SEEN] = counter.version
    session.info["tenantry.plans.catalog_dirty"] = True
    # Effective plans are kept under each org's version stamp: move them all.
    session.execute(text("UPDATE access_versions SET version = version + 1"))
    session.execute(
        text(
            "INSERT INTO access_versions (org_id, version) SELECT id, 1 FROM organizations "
            "WHERE id NOT IN (SELECT org_id FROM access_versions)"
        )
    )


def default_key() -> str:
    return DEFAULT_PLAN


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_SEEN, None)
    session.info.pop("tenantry.plans.catalog_dirty", None)
