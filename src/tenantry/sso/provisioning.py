"""Applying a mapping outcome to a person's place in an org: their org role and their role in
each team the rules speak of. Used by SSO sign-in at every sign-in (so a change of the rules
applies at the next one) and reusable by any other source of groups (SCIM).

`plan` works out the changes without writing (a test sign-in shows them); `execute` makes them.
Neither records an audit event: the caller's one event carries `Plan.describe()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tenantry.authz.catalog import ORG_ROLE_RANK, OrgRole, parse_org_role
from tenantry.authz.principal import Principal
from tenantry.authz.service import check_may_assign, org_role
from tenantry.kit.context import Ctx
from tenantry.kit.errors import Forbidden, Unprocessable
from tenantry.sso import repository
from tenantry.sso.mapping import Grants, MappingRules
from tenantry.tenancy import memberships
from tenantry.tenancy import repository as tenancy_repository


@dataclass
class Plan:
    org_id: str
    user_id: str | None
    joins_org: bool = False
    org_role: tuple[str | None, str] | None = None  # (before, after) when it changes
    # Team id -> (before, after); None on one side means joining or leaving the team.
    teams: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    # Changes the rules asked for that were not made, and why (the last owner stays an owner).
    kept: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "joins_org": self.joins_org,
            "org_role": list(self.org_role) if self.org_role else None,
            "teams": {team: list(change) for team, change in sorted(self.teams.items())},
            "kept": self.kept,
        }


def check_rules(ctx: Ctx, principal: Principal, *, org_id: str, rules: MappingRules) -> None:
    """Rules name existing teams and roles, and give nothing above what their author holds."""
    teams = repository.teams_by_ref(ctx.session, org_id=org_id, refs=rules.managed_teams())
    unknown = sorted(rules.managed_teams() - set(teams))
    if unknown:
        raise Unprocessable(
            f"No team {', '.join(unknown)} in this organization", code="unknown_team"
        )
    own = org_role(ctx.session, principal, org_id)
    grants = [*rules.rules, *([rules.default] if rules.default else [])]
    for grant in grants:
        wanted = parse_org_role(grant.org_role)
        if own is None or ORG_ROLE_RANK[wanted] > ORG_ROLE_RANK[own]:
            raise Forbidden(
                f"You cannot map anyone to the role {wanted.value}, which is above your own",
                code="role_above_own",
                org_id=org_id,
            )
        for team_grant in grant.teams:
            team = teams[team_grant.team]
            ref = memberships.team_role_from(ctx, org_id, team_grant.role)
            check_may_assign(ctx.session, principal, org_id=org_id, team_id=team.id, ref=ref)


def plan(
    ctx: Ctx, *, org_id: str, user_id: str | None, grants: Grants, rules: MappingRules
) -> Plan:
    """What applying `grants` to the person (None: not yet an account) would change."""
    session = ctx.session
    out = Plan(org_id=org_id, user_id=user_id)
    wanted_role = parse_org_role(grants.org_role)
    membership = (
        repository.org_membership(session, org_id=org_id, user_id=user_id) if user_id else None
    )
    if membership is None:
        out.joins_org = True
        out.org_role = (None, wanted_role.value)
    elif membership.role != wanted_role.value:
        demotes_owner = membership.role == OrgRole.OWNER.value
        if demotes_owner and tenancy_repository.count_org_owners(session, org_id=org_id) <= 1:
            out.kept.append("org_role: the last owner stays an owner")
        else:
            out.org_role = (membership.role, wanted_role.value)
    managed = repository.teams_by_ref(session, org_id=org_id, refs=rules.managed_teams())
    granted = {managed[g.team].id: g.role for g in grants.teams if g.team in managed}
    current = (
        repository.team_memberships_of(
            session, org_id=org_id, user_id=user_id, team_ids={t.id for t in managed.values()}
        )
        if user_id
        else {}
    )
    for team in {t.id: t for t in managed.values()}.values():
        before = current.get(team.id)
        after = (
            memberships.team_role_from(ctx, org_id, granted[team.id])
            if team.id in granted
            else None
        )
        before_role = before.role if before else None
        if before_role == after:
            continue
        if (
            before_role == "owner"
            and tenancy_repository.count_team_owners(session, org_id=org_id, team_id=team.id) <= 1
        ):
            out.kept.append(f"team {team.slug}: the team's last owner stays an owner")
            continue
        out.teams[team.id] = (before_role, after)
    return out


def execute(ctx: Ctx, change: Plan, *, user_id: str) -> None:
    session = ctx.session
    org_id = change.org_id
    if change.joins_org:
        assert change.org_role is not None
        memberships.add_org_member(
            ctx, org_id=org_id, user_id=user_id, role=OrgRole(change.org_role[1])
        )
    elif change.org_role is not None:
        membership = repository.org_membership(session, org_id=org_id, user_id=user_id)
        assert membership is not None
        membership.role = change.org_role[1]
    if not change.teams:
        return
    current = repository.team_memberships_of(
        session, org_id=org_id, user_id=user_id, team_ids=change.teams
    )
    for team_id, (_, after) in change.teams.items():
        existing = current.get(team_id)
        if after is None:
            if existing is not None:
                session.delete(existing)
        elif existing is not None:
            existing.role = after
        else:
            team = tenancy_repository.team_in_org(session, org_id=org_id, team_id=team_id)
            if team is not None:
                memberships.insert_team_member(ctx, team=team, user_id=user_id, role=after)
    session.flush()
