"""Data classification (seed 001): the levels an org defines, or a team for itself and the teams
under it, each with categories and handling requirements, and what admission makes of them.

A request names its level (`data_classification`) and region. Admission then refuses a level it
does not know (422), denies a region outside the level's `geographic_restrictions` and a request
not made over TLS when `encryption_required`, sends the request for approval when
`approval_required`, and writes an audit event per admitted request when `access_logging`. The
worker purges recorded LLM calls of a level once they are older than `retention_period_days`.
The default levels exist whatever is configured, with no requirements until one is set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.catalog import Permission
from tenantry.authz.principal import Principal
from tenantry.authz.service import authorize
from tenantry.governance import repository
from tenantry.governance.models import GovernanceConfig
from tenantry.governance.policies import DEFAULT_TIMEZONE
from tenantry.governance.schemas import DataClassificationIn, HandlingRequirements
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Unprocessable
from tenantry.kit.stamps import stamped
from tenantry.metering.admission import Reason
from tenantry.spend import repository as spend_repository
from tenantry.tenancy import repository as tenancy_repository

log = logging.getLogger("tenantry.governance.classification")

DEFAULT_LEVELS = ("public", "internal", "confidential", "restricted")
SETTINGS_KEY = "data_classification"
ORG = "org"
# Who decides a request its level sends for approval: the org's owners and admins.
APPROVER_ROLES = ("owner", "admin")


@dataclass(frozen=True)
class Level:
    name: str
    categories: tuple[str, ...]
    requirements: HandlingRequirements
    configured: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "categories": list(self.categories),
            "handling_requirements": self.requirements.model_dump(),
            "configured": self.configured,
        }


@dataclass(frozen=True)
class Levels:
    """The levels that apply to a team: whose configuration defines them (a team's id, `org`,
    or None for the defaults) and the levels by name."""

    defined_by: str | None
    levels: Mapping[str, Level]


def _defaults() -> dict[str, Level]:
    return {name: Level(name, (), HandlingRequirements(), False) for name in DEFAULT_LEVELS}


def levels_of(configured: DataClassificationIn | None) -> dict[str, Level]:
    """The default levels with the configured ones over them (a configured level replaces its
    default; new names are added after them, in the order given)."""
    levels = _defaults()
    for name, level in (configured.levels if configured else {}).items():
        levels[name] = Level(
            name, tuple(level.categories), level.handling_requirements, configured=True
        )
    return levels


def _parsed(settings: Mapping[str, Any]) -> DataClassificationIn | None:
    raw = settings.get(SETTINGS_KEY)
    if raw is None:
        return None
    try:
        return DataClassificationIn.model_validate(raw)
    except ValidationError:
        # Saved before levels were checked: the org has to save them again; until then the
        # defaults apply (and say so in the log) rather than a half-read configuration.
        log.warning("a stored data classification no longer reads; the defaults apply")
        return None


@dataclass(frozen=True)
class OrgClassification:
    by_owner: Mapping[str, DataClassificationIn]  # team id ("" the org) -> its configuration

    def for_chain(self, chain: Iterable[str]) -> Levels:
        for team_id in (*chain, ""):
            found = self.by_owner.get(team_id)
            if found is not None:
                return Levels(team_id or ORG, levels_of(found))
        return Levels(None, levels_of(None))


def org_classification(session: Session, org_id: str) -> OrgClassification:
    """Every configuration's levels in the org, read once per process and version stamp (a
    configuration saved anywhere in the org bumps it)."""

    def load() -> OrgClassification:
        parsed = {
            team_id: _parsed(settings)
            for team_id, settings in repository.settings_by_team(session, org_id).items()
        }
        return OrgClassification({k: v for k, v in parsed.items() if v is not None})

    return stamped(session, org_id, "governance.classification", load)


# ---- in admission ----


@dataclass(frozen=True)
class Classified:
    """What a request's level asks of it."""

    level: Level
    region: str | None
    denials: tuple[Reason, ...]

    @property
    def approval_required(self) -> bool:
        return not self.denials and self.level.requirements.approval_required

    @property
    def access_logging(self) -> bool:
        return self.level.requirements.access_logging

    @property
    def outcome(self) -> str:
        if self.denials:
            return "deny"
        return "require_approval" if self.approval_required else "allow"

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level.name,
            "region": self.region,
            "outcome": self.outcome,
            "reasons": [r.as_dict() for r in self.denials],
            "handling_requirements": self.level.requirements.model_dump(),
            "categories": list(self.level.categories),
        }


def unknown_level(name: str, levels: Levels) -> Unprocessable:
    known = ", ".join(levels.levels)
    return Unprocessable(
        f"Unknown data classification {name!r}; the levels are: {known}",
        code="unknown_data_classification",
    )


def classify(
    session: Session, *, org_id: str, chain: tuple[str, ...], attributes: Mapping[str, Any]
) -> Classified | None:
    """The level a request names and what its requirements refuse (None: it names none). An
    unknown level is bad input (422): the caller mistyped it, and guessing would be unsafe."""
    named = attributes.get("data_classification")
    if named is None:
        return None
    levels = org_classification(session, org_id).for_chain(chain)
    level = levels.levels.get(str(named).strip().lower())
    if level is None:
        raise unknown_level(str(named), levels)
    region = attributes.get("region")
    region = str(region).strip().upper() if region else None
    needs = level.requirements
    denials: list[Reason] = []
    allowed = needs.geographic_restrictions
    if allowed is not None and region not in allowed:
        where = f"region {region!r}" if region else "no region"
        denials.append(
            Reason(
                "data_classification_region_denied",
                f"Data classified {level.name!r} may not be processed in {where}; allowed "
                f"regions: {', '.join(allowed)}",
                {"data_classification": level.name, "region": region, "allowed_regions": allowed},
            )
        )
    if needs.encryption_required and not attributes.get("tls"):
        denials.append(
            Reason(
                "data_classification_requires_tls",
                f"Data classified {level.name!r} requires encryption in transit: make the "
                "request over HTTPS",
                {"data_classification": level.name},
            )
        )
    return Classified(level, region, tuple(denials))


def approvers() -> dict[str, Any]:
    return {"users": [], "roles": list(APPROVER_ROLES), "level": None}


def access_logged(
    session: Session, *, principal: Principal, org_id: str, team_id: str, reservation_id: str,
    classified: Classified, action: str, model: str | None, now: datetime,
) -> None:  # fmt: skip
    """The audit event of an admitted request whose level asks for access logging."""
    audit.append(
        session,
        now=now,
        org_id=org_id,
        team_id=team_id,
        actor_type=principal.actor_type,
        actor_id=principal.actor_id,
        action="data_classification.accessed",
        target_type="reservation",
        target_id=reservation_id,
        result="success",
        request_id=None,
        summary={
            "data_classification": classified.level.name,
            "region": classified.region,
            "action": action[:100],
            "model": model,
        },
        subject_id=principal.user_id,
        personal=audit.Personal(),
    )


# ---- the org's levels ----


def read_levels(session: Session, principal: Principal, *, org_id: str) -> dict[str, Any]:
    authorize(session, principal, Permission.GOVERNANCE_READ, org_id=org_id)
    return levels_out(session, org_id=org_id)


def levels_out(session: Session, *, org_id: str) -> dict[str, Any]:
    found = org_classification(session, org_id).for_chain(())
    return {
        "org_id": org_id,
        "team_id": None,
        "defined_by": found.defined_by,
        "levels": {name: level.as_dict() for name, level in found.levels.items()},
    }


def set_levels(
    ctx: Ctx, principal: Principal, *, org_id: str, levels: DataClassificationIn
) -> dict[str, Any]:
    """Replace the org's levels (the other settings stay); one audit event naming the levels
    that changed."""
    session = ctx.session
    authorize(session, principal, Permission.GOVERNANCE_MANAGE, org_id=org_id)
    row = repository.config(session, org_id=org_id, team_id="")
    if row is None:
        row = GovernanceConfig(org_id=org_id, team_id="", timezone=DEFAULT_TIMEZONE, settings={})
        session.add(row)
    before = _parsed(row.settings or {}) if row.settings else None
    was = {n: lv.as_dict() for n, lv in levels_of(before).items()}
    after = {n: lv.as_dict() for n, lv in levels_of(levels).items()}
    row.settings = {**(row.settings or {}), SETTINGS_KEY: levels.model_dump(mode="json")}
    row.updated_at = ctx.clock.now()
    session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        target_type="governance_config",
        target_id=org_id,
        summary={"changed_levels": sorted(n for n in was | after if was.get(n) != after.get(n))},
        action="governance.classification_updated",
    )
    return levels_out(session, org_id=org_id)


# ---- retention ----


def purge_due(session: Session, *, org_id: str, now: datetime) -> dict[str, int]:
    """Delete the org's recorded LLM calls whose level's retention period has passed, team by
    team (each team's levels are its own, its parents' or the org's); how many, by level. One
    audit event per level that purged any. Rollups keep their totals: they hold no call."""
    org = org_classification(session, org_id)
    if not org.by_owner:
        return {}
    purged: dict[str, int] = {}
    for team_id, level_name in spend_repository.classified_call_teams(session, org_id=org_id):
        chain = tuple(tenancy_repository.team_ancestors(session, org_id=org_id, team_id=team_id))
        level = org.for_chain(chain).levels.get(level_name)
        days = level.requirements.retention_period_days if level is not None else None
        if days is None:
            continue
        count = spend_repository.delete_classified_calls(
            session, org_id=org_id, team_id=team_id, level=level_name,
            before=now - timedelta(days=days),
        )  # fmt: skip
        if count:
            purged[level_name] = purged.get(level_name, 0) + count
    for level_name, count in sorted(purged.items()):
        audit.append(
            session,
            now=now,
            org_id=org_id,
            actor_type="system",
            actor_id=None,
            action="llm_calls.purged",
            target_type="data_classification",
            target_id=level_name,
            result="success",
            summary={"data_classification": level_name, "calls": count},
            subject_id=None,
            personal=audit.Personal(),
        )
    return purged
