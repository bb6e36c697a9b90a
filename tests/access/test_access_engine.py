"""The authorization engine against a reference model written plainly here.

Hypothesis builds random organizations — team trees (some teams refusing inheritance), org and
team roles, custom roles inheriting from built-in and other custom roles, grants to users, teams
and API keys on teams, single resources and every resource of a type, some expiring — and random
questions at random times. The compiled snapshot, asked the same question twice (the second time
from its memo, as a warm cache would), must answer as the reference does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantry.authz.catalog import (
    ORG_MEMBER_PERMISSIONS,
    ORG_ROLE_AS_TEAM_ROLE,
    TEAM_ROLE_PERMISSIONS,
    OrgRole,
    Permission,
    TeamRole,
    org_role_permissions,
)
from tenantry.authz.engine import (
    CustomRoleData,
    GrantData,
    KeyData,
    PolicyData,
    PolicyError,
    Resource,
    Snapshot,
    Subject,
    TeamData,
    flatten_roles,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
USERS = [f"usr_{i}" for i in range(4)]
TEAMS = [f"team_{i}" for i in range(4)]
MODELS = {f"mdl_{i}": TEAMS[i % len(TEAMS)] for i in range(3)}
BUILTIN = [r.value for r in TeamRole]
# Questions and grants draw from a few permissions, so that one grant often decides an answer.
PERMS = [
    Permission.ORG_READ,
    Permission.TEAM_UPDATE,
    Permission.MODEL_READ,
    Permission.MODEL_CREATE,
    Permission.MODEL_DELETE,
    Permission.EXPERIMENT_CREATE,
    Permission.GRANT_MANAGE,
    Permission.BILLING_MANAGE,
]


# ---- the reference model: the rules of docs/access-control.md, written as plainly as possible ----


@dataclass
class World:
    data: PolicyData
    keys: list[KeyData]


def expand(world: World, role: str) -> set[Permission]:
    if role in BUILTIN:
        return set(TEAM_ROLE_PERMISSIONS[TeamRole(role)])
    custom = world.data.roles[role]
    found = {Permission(p) for p in custom.permissions}
    for parent in custom.inherits:
        found |= expand(world, parent)
    return found


def grant_permissions(world: World, grant: GrantData) -> set[Permission]:
    if grant.role is not None:
        return expand(world, grant.role)
    return {Permission(p) for p in grant.permissions or ()}


def ancestors(world: World, team: str) -> list[str]:
    """The team, then its parent, and so on, stopping after a team that refuses inheritance."""
    chain = [team]
    while True:
        node = world.data.teams[chain[-1]]
        if not node.inherits or node.parent_id is None:
            return chain
        chain.append(node.parent_id)


def is_live(grant: GrantData, now: datetime) -> bool:
    return grant.expires_at is None or now < grant.expires_at


def reference(
    world: World,
    user: str,
    key: KeyData | None,
    permission: Permission,
    resource: Resource,
    now: datetime,
) -> bool:
    data = world.data
    if user not in data.org_roles:
        return False
    org_role = data.org_roles[user]
    if key is not None and key.permissions is not None and permission not in key.permissions:
        return False
    if resource.type == "org":
        if key is not None and key.team_id is not None and permission not in ORG_MEMBER_PERMISSIONS:
            return False
        return permission in org_role_permissions(org_role)
    team = resource.id if resource.type == "team" else resource.team_id
    assert team is not None
    if key is not None and key.team_id is not None and key.team_id != team:
        return False
    me = {("user", user)} | {("team", t) for (t, u) in data.team_roles if u == user}
    if key is not None:
        me.add(("api_key", key.id))
    held = set(ORG_MEMBER_PERMISSIONS)
    as_team = ORG_ROLE_AS_TEAM_ROLE[org_role]
    if as_team is not None:
        held |= TEAM_ROLE_PERMISSIONS[as_team]
    chain = ancestors(world, team)
    for ancestor in chain:
        if (ancestor, user) in data.team_roles:
            held |= expand(world, data.team_roles[(ancestor, user)])
        for grant in data.grants:
            if (
                grant.resource_type == "team"
                and grant.team_id == ancestor
                and (grant.subject_type, grant.subject_id) in me
                and is_live(grant, now)
            ):
                held |= grant_permissions(world, grant)
    if resource.type != "team":
        for grant in data.grants:
            if (
                grant.resource_type != resource.type
                or (grant.subject_type, grant.subject_id) not in me
            ):
                continue
            if not is_live(grant, now):
                continue
            if grant.resource_id == "*":
                if grant.team_id in chain:  # every model of a team in the chain
                    held |= grant_permissions(world, grant)
            elif grant.resource_id == resource.id:
                held |= grant_permissions(world, grant)
    return permission in held


# ---- random worlds ----


@st.composite
def worlds(draw: st.DrawFn) -> World:
    teams = {}
    for index, team in enumerate(TEAMS):
        parent = draw(st.sampled_from([None, *TEAMS[:index]])) if index else None
        teams[team] = TeamData(team, parent, draw(st.booleans()))
    org_roles = {
        # Mostly plain members: owners and admins hold nearly everything, deciding little.
        user: draw(st.sampled_from([OrgRole.MEMBER] * 4 + [OrgRole.ADMIN, OrgRole.OWNER]))
        for user in USERS
        if draw(st.integers(0, 5))  # now and then someone is not a member at all
    }
    roles: dict[str, CustomRoleData] = {}
    for index in range(draw(st.integers(0, 4))):
        role_id = f"role_{index}"
        parents = draw(st.lists(st.sampled_from([*BUILTIN, *roles]), max_size=2, unique=True))
        perms = draw(st.frozensets(st.sampled_from([p.value for p in PERMS]), max_size=4))
        roles[role_id] = CustomRoleData(role_id, f"custom-{index}", perms, tuple(parents))
    role_refs = [*BUILTIN, *roles]
    team_roles = {
        (team, user): draw(st.sampled_from(role_refs))
        for team in TEAMS
        for user in org_roles
        if draw(st.integers(0, 5)) == 0
    }
    keys = [
        KeyData(
            f"key_{index}",
            draw(st.sampled_from(USERS)),
            draw(st.sampled_from([None, *TEAMS])),
            draw(st.none() | st.frozensets(st.sampled_from(PERMS), max_size=8)),
        )
        for index in range(2)
    ]
    grants = []
    for index in range(draw(st.integers(2, 14))):
        subject_type = draw(st.sampled_from(["user", "team", "api_key"]))
        subject_id = draw(
            st.sampled_from(
                {"user": USERS, "team": TEAMS, "api_key": [k.id for k in keys]}[subject_type]
            )
        )
        kind = draw(st.sampled_from(["team", "model", "every"]))
        if kind == "team":
            team = draw(st.sampled_from(TEAMS))
            resource_type, resource_id = "team", team
        elif kind == "model":
            resource_id = draw(st.sampled_from(sorted(MODELS)))
            resource_type, team = "model", MODELS[resource_id]
        else:
            resource_type, resource_id, team = "model", "*", draw(st.sampled_from(TEAMS))
        use_role = draw(st.booleans())
        expires = draw(st.none() | st.integers(-3, 3).map(lambda h: T0 + timedelta(hours=h)))
        grants.append(
            GrantData(
                id=f"grt_{index}",
                subject_type=subject_type,
                subject_id=subject_id,
                resource_type=resource_type,
                resource_id=resource_id,
                team_id=team,
                role=draw(st.sampled_from(role_refs)) if use_role else None,
                permissions=None
                if use_role
                else draw(
                    st.frozensets(st.sampled_from([p.value for p in PERMS]), min_size=1, max_size=4)
                ),
                expires_at=expires,
            )
        )
    data = PolicyData("org_1", org_roles, teams, team_roles, roles, grants)
    return World(data, keys)


resources = st.one_of(
    st.just(Resource("org", "org_1")),
    st.sampled_from(TEAMS).map(lambda t: Resource("team", t)),
    st.sampled_from(sorted(MODELS)).map(lambda m: Resource("model", m, MODELS[m])),
    st.sampled_from(TEAMS).map(lambda t: Resource("model", "*", t)),
)
questions = st.lists(
    st.tuples(
        st.integers(0, len(USERS) + 1),  # a user, or one of the two keys
        st.sampled_from(PERMS),
        resources,
        st.integers(-4 * 60, 4 * 60).map(lambda m: T0 + timedelta(minutes=m)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(world=worlds(), asked=questions)
def test_the_engine_decides_as_the_reference_model(world: World, asked: list) -> None:  # type: ignore[type-arg]
    snapshot = Snapshot(world.data)
    for who, permission, resource, now in asked:
        if who < len(USERS):
            user, key = USERS[who], None
            subject = Subject("user", user)
        else:
            key = world.keys[who - len(USERS)]
            user, subject = key.creator_id, Subject("api_key", key.id)
        expected = reference(world, user, key, permission, resource, now)
        for attempt in ("cold", "warm"):
            decision = snapshot.check(subject, permission, resource, now, key)
            assert decision.allowed == expected, (attempt, subject, permission, resource, now)
            assert (decision.via is not None) == expected
        snapshot_via = decision.via
        if expected:
            assert snapshot_via is not None
            assert snapshot_via.split(":", 1)[0] in ("org_role", "team_role", "grant")


# ---- particular rules ----


def _one_grant_world(expires_at: datetime | None) -> Snapshot:
    return Snapshot(
        PolicyData(
            "org_1",
            {"usr_a": OrgRole.MEMBER},
            {"team_x": TeamData("team_x", None)},
            {},
            {},
            [
                GrantData(
                    "grt_1", "user", "usr_a", "team", "team_x", "team_x", "editor", None, expires_at
                )
            ],
        )
    )


def test_an_expired_grant_stops_at_the_exact_instant_even_from_the_memo() -> None:
    ends = T0 + timedelta(hours=1)
    snapshot = _one_grant_world(ends)
    team = Resource("team", "team_x")
    just_before = ends - timedelta(microseconds=1)
    assert snapshot.check_user("usr_a", Permission.MODEL_CREATE, team, just_before).allowed
    assert snapshot.check_user("usr_a", Permission.MODEL_CREATE, team, just_before).via == (
        "grant:grt_1"
    )
    assert not snapshot.check_user("usr_a", Permission.MODEL_CREATE, team, ends).allowed
    # Asking about an earlier moment again does not reuse the later answer, nor the reverse.
    assert snapshot.check_user("usr_a", Permission.MODEL_CREATE, team, just_before).allowed
    assert not snapshot.check_user("usr_a", Permission.MODEL_CREATE, team, ends).allowed


def test_a_parent_teams_role_reaches_children_unless_a_child_refuses() -> None:
    snapshot = Snapshot(
        PolicyData(
            "org_1",
            {"usr_a": OrgRole.MEMBER},
            {
                "team_research": TeamData("team_research", None),
                "team_vision": TeamData("team_vision", "team_research"),
                "team_secret": TeamData("team_secret", "team_research", inherits=False),
                "team_deep": TeamData("team_deep", "team_vision"),
            },
            {("team_research", "usr_a"): "editor"},
        )
    )
    for team in ("team_research", "team_vision", "team_deep"):
        decision = snapshot.check_user("usr_a", Permission.MODEL_CREATE, Resource("team", team), T0)
        assert decision == decision.__class__(True, "team_role:editor@team_research"), team
    assert not snapshot.check_user(
        "usr_a", Permission.MODEL_CREATE, Resource("team", "team_secret"), T0
    ).allowed


def test_role_inheritance_is_flattened_and_a_cycle_is_refused() -> None:
    roles = {
        "role_a": CustomRoleData("role_a", "a", frozenset({"audit:read"}), ("viewer",)),
        "role_b": CustomRoleData("role_b", "b", frozenset({"model:delete"}), ("role_a",)),
    }
    flat = flatten_roles(roles)
    assert Permission.AUDIT_READ in flat["role_b"] and Permission.MODEL_READ in flat["role_b"]
    roles["role_a"] = CustomRoleData("role_a", "a", frozenset(), ("role_b",))
    with pytest.raises(PolicyError):
        flatten_roles(roles)


def test_explain_names_what_is_missing_and_what_would_give_it() -> None:
    ends = T0 + timedelta(hours=1)
    snapshot = _one_grant_world(ends)
    found = snapshot.explain(
        Subject("user", "usr_a"), Permission.MODEL_CREATE, Resource("team", "team_x"), ends
    )
    assert (found.allowed, found.missing, found.reason) == (False, "model:create", "not_granted")
    kinds = [(r.kind, r.id) for r in found.remedies]
    assert kinds[0] == ("grant", "grt_1")  # the grant that expired, to renew
    assert ("role", "editor") in kinds and ("role", "viewer") not in kinds
