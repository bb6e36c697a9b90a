"""Teams of an organization: creating, listing, updating (a parent team, never a cycle) and
deleting."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tenantry.audit import service as audit
from tenantry.authz.principal import Principal
from tenantry.authz.service import hidden_teams
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Conflict, Unprocessable
from tenantry.kit.ids import new_id
from tenantry.kit.pagination import Page, PageRequest
from tenantry.tenancy import repository
from tenantry.tenancy.fields import before_after, check_slug, free_slug, slugify
from tenantry.tenancy.models import Organization, Team


def create_team(
    ctx: Ctx,
    principal: Principal,
    org: Organization,
    *,
    name: str,
    slug: str | None,
    description: str,
    parent_team_id: str | None,
    settings: dict[str, Any],
    private: bool = False,
) -> Team:
    if (
        parent_team_id is not None
        and repository.team_in_org(ctx.session, org_id=org.id, team_id=parent_team_id) is None
    ):
        raise Unprocessable(
            "Parent team not found in this organization", code="invalid_parent_team"
        )
    if slug is not None:
        check_slug(slug)
        if repository.team_slug_taken(ctx.session, org_id=org.id, slug=slug):
            raise Conflict(
                f"A team with slug {slug!r} exists in this organization", code="slug_taken"
            )
    else:
        base = slugify(name)
        slug = free_slug(base, repository.team_slugs_like(ctx.session, org_id=org.id, base=base))
    now = ctx.clock.now()
    team = Team(
        id=new_id("team"),
        org_id=org.id,
        name=name,
        slug=slug,
        description=description,
        parent_team_id=parent_team_id,
        settings=settings,
        private=private,
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(team)
    ctx.session.flush()
    audit.record(
        ctx,
        principal,
        org_id=org.id,
        team_id=team.id,
        target_type="team",
        target_id=team.id,
        summary={
            "name": name,
            "slug": slug,
            "parent_team_id": parent_team_id,
            **({"private": True} if private else {}),
        },
    )
    return team


def list_teams(
    session: Session, principal: Principal, org: Organization, page: PageRequest
) -> Page[Team]:
    hidden = hidden_teams(session, principal, org.id)
    if principal.kind == "api_key" and principal.key_team_id is not None:
        team = repository.team_in_org(session, org_id=org.id, team_id=principal.key_team_id)
        shown = team is not None and team.id not in hidden and not page.cursor
        return Page(items=[team] if team is not None and shown else [], next_cursor=None)
    return repository.teams_of_org(session, org_id=org.id, page=page, hidden=hidden)


def update_team(ctx: Ctx, principal: Principal, team: Team, changes: dict[str, Any]) -> Team:
    if "slug" in changes:
        check_slug(changes["slug"])
        if changes["slug"] != team.slug and repository.team_slug_taken(
            ctx.session, org_id=team.org_id, slug=changes["slug"]
        ):
            raise Conflict(
                f"A team with slug {changes['slug']!r} exists in this organization",
                code="slug_taken",
            )
    if changes.get("parent_team_id") is not None:
        parent = repository.team_in_org(
            ctx.session, org_id=team.org_id, team_id=changes["parent_team_id"]
        )
        if parent is None:
            raise Unprocessable(
                "Parent team not found in this organization", code="invalid_parent_team"
            )
        if team.id in repository.team_ancestors(ctx.session, org_id=team.org_id, team_id=parent.id):
            raise Unprocessable("A team cannot be its own ancestor", code="team_cycle")
    summary = before_after(team, changes)
    for key, value in changes.items():
        setattr(team, key, value)
    team.updated_at = ctx.clock.now()
    audit.record(
        ctx,
        principal,
        org_id=team.org_id,
        team_id=team.id,
        target_type="team",
        target_id=team.id,
        summary=summary,
    )
    return team


def delete_team(ctx: Ctx, principal: Principal, team: Team, *, confirm: str) -> None:
    if confirm != team.slug:
        raise Unprocessable(
            "Type the team's slug in `confirm` to delete it", code="confirmation_mismatch"
        )
    org_id, team_id, slug = team.org_id, team.id, team.slug
    ctx.session.expunge(team)
    repository.detach_children(ctx.session, org_id=org_id, team_id=team_id)
    repository.delete_team(ctx.session, org_id=org_id, team_id=team_id)
    audit.record(
        ctx,
        principal,
        org_id=org_id,
        team_id=team_id,
        target_type="team",
        target_id=team_id,
        summary={"slug": slug},
    )
