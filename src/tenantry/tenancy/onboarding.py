"""Onboarding: a company's first sign-up makes its org, owned by the new account, with a default
team."""

from __future__ import annotations

from dataclasses import dataclass

from tenantry.audit import service as audit
from tenantry.authz.catalog import OrgRole
from tenantry.identity.models import User
from tenantry.kit.context import Ctx
from tenantry.kit.ids import new_id
from tenantry.tenancy.memberships import add_org_member
from tenantry.tenancy.models import Organization, Team
from tenantry.tenancy.orgs import insert_org


@dataclass(frozen=True)
class Onboarded:
    org: Organization
    team: Team
    owner: User


def onboard(
    ctx: Ctx, *, company_name: str, owner: User, plan: str, trial: str | None = None
) -> Onboarded:
    org = insert_org(
        ctx, name=company_name, slug=None, plan=plan, billing_email=owner.email, settings={}
    )
    add_org_member(ctx, org_id=org.id, user_id=owner.id, role=OrgRole.OWNER)
    now = ctx.clock.now()
    team = Team(
        id=new_id("team"),
        org_id=org.id,
        name="default",
        slug="default",
        description="",
        parent_team_id=None,
        settings={},
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(team)
    ctx.session.flush()
    audit.record(
        ctx,
        None,
        org_id=org.id,
        target_type="organization",
        target_id=org.id,
        actor=("user", owner.id),
        summary={
            "name": company_name,
            "slug": org.slug,
            "plan": plan,
            **({"trial": trial} if trial else {}),
        },
    )
    return Onboarded(org=org, team=team, owner=owner)
