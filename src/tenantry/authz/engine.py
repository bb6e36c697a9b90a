"""The authorization engine: one organization's policy compiled into an immutable snapshot that
answers check, explain, who-can and what-can with dictionary and set lookups only.

The policy of an org is: each member's org role, the team tree (a team may stop inheriting from
its parent), each team membership's role (built-in or custom), the custom roles (inheritance
flattened here, once) and the resource grants (to a user, a team or an API key; on a whole team,
on one resource, or on every resource of a type in a team), some of them expiring.

Decisions are pure functions of the snapshot, the question and `now`. Grant expiry is compared
with `now` at decision time, so a snapshot kept in a cache never lets an expired grant through.
What a principal holds on a team is memoized per (principal, team) together with the interval of
time in which that answer stays true (from the last expiry it has seen to the next one ahead).

Nothing here touches the database: `tenantry.authz.policy` loads an org's rows into a
`PolicyData` and caches the compiled `Snapshot`; the property test and the benchmark compile
snapshots from plain data the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from tenantry.authz.catalog import (
    ORG_MEMBER_PERMISSIONS,
    ORG_ROLE_AS_TEAM_ROLE,
    TEAM_ROLE_PERMISSIONS,
    OrgRole,
    Permission,
    TeamRole,
    org_role_permissions,
)

SUBJECT_TYPES: Final = ("user", "team", "api_key")
ORG_RESOURCE: Final = "org"
TEAM_RESOURCE: Final = "team"
EVERY: Final = "*"  # a grant's resource id meaning every resource of its type in its team
# How deep a team tree may be walked; the tenancy rules refuse cycles, this bounds a bad row.
MAX_TEAM_DEPTH: Final = 64
_NEVER: Final = datetime.max.replace(tzinfo=UTC)
_ALWAYS: Final = datetime.min.replace(tzinfo=UTC)

BUILTIN_ROLES: Final[dict[str, frozenset[Permission]]] = {
    role.value: TEAM_ROLE_PERMISSIONS[role] for role in TeamRole
}


# ---- the input: an org's policy as plain data ----


@dataclass(frozen=True, slots=True)
class CustomRoleData:
    id: str
    name: str
    permissions: frozenset[str]
    inherits: tuple[str, ...]  # built-in role names or custom role ids


@dataclass(frozen=True, slots=True)
class GrantData:
    id: str
    subject_type: str
    subject_id: str
    resource_type: str
    resource_id: str  # a team id when resource_type is "team"; EVERY for every resource
    team_id: str  # the team the resource belongs to (the team itself for "team")
    role: str | None  # a built-in role name or a custom role id
    permissions: frozenset[str] | None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TeamData:
    id: str
    parent_id: str | None
    inherits: bool = True  # False: roles on ancestor teams stop at this team
    # Seen only by its members and the org's admins and owners; roles on ancestor teams stop at
    # it too, so nobody outside holds anything on it.
    private: bool = False


@dataclass(frozen=True)
class PolicyData:
    org_id: str
    org_roles: Mapping[str, OrgRole]  # user id → org role
    teams: Mapping[str, TeamData]
    team_roles: Mapping[tuple[str, str], str]  # (team id, user id) → role ref
    roles: Mapping[str, CustomRoleData] = field(default_factory=dict)
    grants: Sequence[GrantData] = ()


# ---- questions and answers ----


@dataclass(frozen=True, slots=True)
class Subject:
    type: str  # "user", "team" or "api_key"
    id: str


@dataclass(frozen=True, slots=True)
class Resource:
    type: str  # "org", "team" or a team-owned type ("model", ...)
    id: str
    team_id: str | None = None  # the owning team, for team-owned types


@dataclass(frozen=True, slots=True)
class KeyData:
    """An API key as a subject: it acts for its creator, narrowed to its team and permissions."""

    id: str
    creator_id: str
    team_id: str | None
    permissions: frozenset[Permission] | None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    via: str | None = None  # "org_role:admin", "team_role:editor@team_…", "grant:grt_…"


DENIED: Final = Decision(False, None)


@dataclass(frozen=True)
class Remedy:
    """Something that would give the missing permission."""

    kind: str  # "role" (assign it on the team), "grant" (an expired grant, renewed), "key"
    id: str
    name: str
    detail: str


@dataclass(frozen=True)
class Explanation:
    allowed: bool
    via: str | None
    missing: str | None
    reason: str  # a stable code: allowed, no_standing, not_granted, key_team, key_permissions
    detail: str
    remedies: tuple[Remedy, ...] = ()


class PolicyError(ValueError):
    """The policy cannot be compiled (a role inheritance cycle, an unknown role)."""


# ---- role flattening ----


def flatten_roles(roles: Mapping[str, CustomRoleData]) -> dict[str, frozenset[Permission]]:
    """Every role ref (built-in names and custom ids) → its permissions, inheritance included.
    Raises PolicyError on a cycle or an unknown parent."""
    flat: dict[str, frozenset[Permission]] = dict(BUILTIN_ROLES)
    visiting: set[str] = set()

    def resolve(ref: str) -> frozenset[Permission]:
        if ref in flat:
            return flat[ref]
        role = roles.get(ref)
        if role is None:
            raise PolicyError(f"unknown role {ref}")
        if ref in visiting:
            raise PolicyError(f"role inheritance cycle through {role.name}")
        visiting.add(ref)
        found = {Permission(p) for p in role.permissions if p in Permission._value2member_map_}
        for parent in role.inherits:
            found |= resolve(parent)
        visiting.discard(ref)
        flat[ref] = frozenset(found)
        return flat[ref]

    for ref in roles:
        resolve(ref)
    return flat


def role_cycle(roles: Mapping[str, CustomRoleData]) -> str | None:
    """The name of a role on an inheritance cycle (or naming an unknown parent), if any."""
    try:
        flatten_roles(roles)
    except PolicyError as exc:
        return str(exc)
    return None


# ---- the compiled snapshot ----


@dataclass(frozen=True, slots=True)
class _Rule:
    """A grant, compiled: its permissions flattened, its subject as a hashable pair."""

    id: str
    subject: tuple[str, str]
    resource_type: str
    resource_id: str
    team_id: str
    role: str | None
    permissions: frozenset[Permission]
    expires_at: datetime | None


@dataclass(slots=True)
class _Held:
    """What one principal holds on one team, and the interval of time in which that is true."""

    via: dict[Permission, str]
    valid_from: datetime
    valid_until: datetime


class Snapshot:
    """One org's compiled policy. Immutable apart from the memo of derived answers."""

    def __init__(self, data: PolicyData) -> None:
        self.org_id = data.org_id
        self.org_roles: dict[str, OrgRole] = dict(data.org_roles)
        self.teams: dict[str, TeamData] = dict(data.teams)
        self.custom_roles: dict[str, CustomRoleData] = dict(data.roles)
        self.role_permissions = flatten_roles(data.roles)
        self.role_names = {ref: ref for ref in BUILTIN_ROLES} | {
            r.id: r.name for r in data.roles.values()
        }
        self.team_roles: dict[tuple[str, str], str] = dict(data.team_roles)
        self.chains = {team: self._chain(team) for team in self.teams}
        self.children: dict[str, list[str]] = {}
        for team in self.teams.values():
            if team.parent_id is not None and team.inherits and not team.private:
                self.children.setdefault(team.parent_id, []).append(team.id)
        member_of: dict[str, set[str]] = {}
        members: dict[str, set[str]] = {}
        for team_id, user_id in self.team_roles:
            member_of.setdefault(user_id, set()).add(team_id)
            members.setdefault(team_id, set()).add(user_id)
        self.member_of = {user: frozenset(teams) for user, teams in member_of.items()}
        self.members = {team: frozenset(users) for team, users in members.items()}
        self.rules: dict[str, _Rule] = {}
        self.team_rules: dict[str, list[_Rule]] = {}
        self.every_rules: dict[tuple[str, str], list[_Rule]] = {}
        self.resource_rules: dict[tuple[str, str], list[_Rule]] = {}
        self.resource_team: dict[tuple[str, str], str] = {}
        self.subject_rules: dict[tuple[str, str], list[_Rule]] = {}
        for grant in data.grants:
            self._add_rule(grant)
        self._memo: dict[tuple[str, str | None, str], _Held] = {}

    def _chain(self, team_id: str) -> tuple[str, ...]:
        """The team, then each ancestor whose roles reach it (nearest first)."""
        chain = [team_id]
        current = self.teams.get(team_id)
        while (
            current is not None
            and current.inherits
            and not current.private
            and current.parent_id is not None
            and current.parent_id not in chain
            and len(chain) < MAX_TEAM_DEPTH
        ):
            chain.append(current.parent_id)
            current = self.teams.get(current.parent_id)
        return tuple(chain)

    def _add_rule(self, grant: GrantData) -> None:
        if grant.role is not None:
            permissions = self.role_permissions.get(grant.role, frozenset())
        else:
            permissions = frozenset(
                Permission(p) for p in grant.permissions or () if p in Permission._value2member_map_
            )
        rule = _Rule(
            id=grant.id,
            subject=(grant.subject_type, grant.subject_id),
            resource_type=grant.resource_type,
            resource_id=grant.resource_id,
            team_id=grant.team_id,
            role=grant.role,
            permissions=permissions,
            expires_at=grant.expires_at,
        )
        self.rules[rule.id] = rule
        self.subject_rules.setdefault(rule.subject, []).append(rule)
        if rule.resource_type == TEAM_RESOURCE:
            self.team_rules.setdefault(rule.team_id, []).append(rule)
        elif rule.resource_id == EVERY:
            self.every_rules.setdefault((rule.team_id, rule.resource_type), []).append(rule)
        else:
            key = (rule.resource_type, rule.resource_id)
            self.resource_rules.setdefault(key, []).append(rule)
            self.resource_team[key] = rule.team_id

    # ---- standing ----

    def has_standing(self, subject: Subject, key: KeyData | None = None) -> bool:
        """Whether the subject belongs to this org at all (else: 404 for anything in it)."""
        if subject.type == "user":
            return subject.id in self.org_roles
        if subject.type == "api_key":
            return key is not None and key.creator_id in self.org_roles
        return subject.id in self.teams

    # ---- who may see a team ----

    def sees_team(self, user_id: str, team_id: str) -> bool:
        """Whether the user may know the team exists: any team of the org for its admins and
        owners, a private team for its members only."""
        team = self.teams.get(team_id)
        if team is None or not team.private:
            return True
        role = self.org_roles.get(user_id)
        if role is OrgRole.OWNER or role is OrgRole.ADMIN:
            return True
        return (team_id, user_id) in self.team_roles

    # ---- what a principal holds on a team ----

    def _subjects_of(self, user_id: str, key_id: str | None) -> frozenset[tuple[str, str]]:
        found = {("user", user_id)} | {("team", t) for t in self.member_of.get(user_id, ())}
        if key_id is not None:
            found.add(("api_key", key_id))
        return frozenset(found)

    def _compute(self, user_id: str, key_id: str | None, team_id: str, now: datetime) -> _Held:
        via: dict[Permission, str] = {}
        valid_from, valid_until = _ALWAYS, _NEVER

        def add(permissions: Iterable[Permission], reason: str) -> None:
            for permission in permissions:
                via.setdefault(permission, reason)

        org_role = self.org_roles.get(user_id)
        if org_role is None:
            return _Held(via, valid_from, valid_until)
        as_team = ORG_ROLE_AS_TEAM_ROLE[org_role]
        if as_team is not None:
            add(TEAM_ROLE_PERMISSIONS[as_team], f"org_role:{org_role.value}")
        add(ORG_MEMBER_PERMISSIONS, f"org_role:{org_role.value}")
        subjects = self._subjects_of(user_id, key_id)
        for ancestor in self.chains.get(team_id, (team_id,)):
            role = self.team_roles.get((ancestor, user_id))
            if role is not None:
                add(self.role_permissions.get(role, ()), f"team_role:{role}@{ancestor}")
            for rule in self.team_rules.get(ancestor, ()):
                if rule.subject not in subjects:
                    continue
                if rule.expires_at is not None:
                    if rule.expires_at <= now:
                        valid_from = max(valid_from, rule.expires_at)
                        continue
                    valid_until = min(valid_until, rule.expires_at)
                add(rule.permissions, f"grant:{rule.id}")
        return _Held(via, valid_from, valid_until)

    def held_on_team(
        self, user_id: str, team_id: str, now: datetime, key_id: str | None = None
    ) -> dict[Permission, str]:
        """Permission → what gives it, for the user (or their API key) on the team, before any
        narrowing of the key. Memoized for as long as no grant in play expires."""
        memo_key = (user_id, key_id, team_id)
        held = self._memo.get(memo_key)
        if held is None or not (held.valid_from <= now < held.valid_until):
            held = self._compute(user_id, key_id, team_id, now)
            self._memo[memo_key] = held
        return held.via

    def clear_memo(self) -> None:
        self._memo.clear()

    # ---- check ----

    def team_of(self, resource: Resource) -> str | None:
        """The team a resource belongs to: the team itself, the one given, or the one its
        grants name."""
        if resource.type == TEAM_RESOURCE:
            return resource.id if resource.id in self.teams else None
        if resource.team_id is not None:
            return resource.team_id if resource.team_id in self.teams else None
        return self.resource_team.get((resource.type, resource.id))

    def _org_level(self, user_id: str, permission: Permission) -> Decision:
        role = self.org_roles.get(user_id)
        if role is not None and permission in org_role_permissions(role):
            return Decision(True, f"org_role:{role.value}")
        return DENIED

    def _resource_level(
        self,
        subjects: frozenset[tuple[str, str]],
        permission: Permission,
        resource: Resource,
        team_id: str,
        now: datetime,
    ) -> Decision:
        for rule in self.resource_rules.get((resource.type, resource.id), ()):
            if (
                permission in rule.permissions
                and rule.subject in subjects
                and (rule.expires_at is None or now < rule.expires_at)
            ):
                return Decision(True, f"grant:{rule.id}")
        for ancestor in self.chains.get(team_id, (team_id,)):
            for rule in self.every_rules.get((ancestor, resource.type), ()):
                if (
                    permission in rule.permissions
                    and rule.subject in subjects
                    and (rule.expires_at is None or now < rule.expires_at)
                ):
                    return Decision(True, f"grant:{rule.id}")
        return DENIED

    def check_user(
        self,
        user_id: str,
        permission: Permission,
        resource: Resource,
        now: datetime,
        key_id: str | None = None,
    ) -> Decision:
        """May the user (or their API key's own grants, given `key_id`) do `permission` on
        `resource`? No narrowing of a key here: see `check`."""
        if user_id not in self.org_roles:
            return DENIED
        if resource.type == ORG_RESOURCE:
            return self._org_level(user_id, permission)
        team_id = self.team_of(resource)
        if team_id is None or not self.sees_team(user_id, team_id):
            return DENIED
        via = self.held_on_team(user_id, team_id, now, key_id).get(permission)
        if via is not None:
            return Decision(True, via)
        if resource.type == TEAM_RESOURCE:
            return DENIED
        subjects = self._subjects_of(user_id, key_id)
        return self._resource_level(subjects, permission, resource, team_id, now)

    def check_key(
        self, key: KeyData, permission: Permission, resource: Resource, now: datetime
    ) -> Decision:
        """An API key: its creator's access plus its own grants, inside its team and its
        permission subset."""
        if key.permissions is not None and permission not in key.permissions:
            return DENIED
        if resource.type == ORG_RESOURCE:
            if key.team_id is not None and permission not in ORG_MEMBER_PERMISSIONS:
                return DENIED
            return self._org_level(key.creator_id, permission)
        if key.team_id is not None and self.team_of(resource) != key.team_id:
            return DENIED
        return self.check_user(key.creator_id, permission, resource, now, key_id=key.id)

    def check_team(
        self, team_id: str, permission: Permission, resource: Resource, now: datetime
    ) -> Decision:
        """A team as a subject: what the grants to the team give (to each of its members)."""
        if resource.type == ORG_RESOURCE or team_id not in self.teams:
            return DENIED
        target = self.team_of(resource)
        if target is None:
            return DENIED
        private = self.teams.get(target)
        if private is not None and private.private and target != team_id:
            return DENIED  # another team's members are outsiders to a private team
        subjects = frozenset({("team", team_id)})
        for ancestor in self.chains.get(target, (target,)):
            for rule in self.team_rules.get(ancestor, ()):
                if (
                    rule.subject in subjects
                    and permission in rule.permissions
                    and (rule.expires_at is None or now < rule.expires_at)
                ):
                    return Decision(True, f"grant:{rule.id}")
        if resource.type == TEAM_RESOURCE:
            return DENIED
        return self._resource_level(subjects, permission, resource, target, now)

    def check(
        self,
        subject: Subject,
        permission: Permission,
        resource: Resource,
        now: datetime,
        key: KeyData | None = None,
    ) -> Decision:
        """May `subject` do `permission` on `resource` at `now`? (`key` describes an API key
        subject.)"""
        if subject.type == "user":
            return self.check_user(subject.id, permission, resource, now)
        if subject.type == "api_key":
            return DENIED if key is None else self.check_key(key, permission, resource, now)
        if subject.type == "team":
            return self.check_team(subject.id, permission, resource, now)
        return DENIED

    def permissions_of(
        self, subject: Subject, resource: Resource, now: datetime, key: KeyData | None = None
    ) -> frozenset[Permission]:
        """Every permission the subject holds on the resource."""
        return frozenset(
            p for p in Permission if self.check(subject, p, resource, now, key).allowed
        )

    # ---- explain ----

    def roles_giving(self, permission: Permission) -> list[Remedy]:
        """Roles that include the permission, smallest first (the least one would need)."""
        refs = [r for r, perms in self.role_permissions.items() if permission in perms]
        refs.sort(key=lambda r: (len(self.role_permissions[r]), self.role_names.get(r, r)))
        return [
            Remedy(
                "role",
                ref,
                self.role_names.get(ref, ref),
                "built-in role" if ref in BUILTIN_ROLES else "custom role",
            )
            for ref in refs
        ]

    def _expired_grants(
        self,
        subjects: frozenset[tuple[str, str]],
        permission: Permission,
        resource: Resource,
        now: datetime,
    ) -> list[Remedy]:
        team_id = self.team_of(resource)
        if team_id is None:
            return []
        chain = set(self.chains.get(team_id, (team_id,)))
        found = []
        for subject in subjects:
            for rule in self.subject_rules.get(subject, ()):
                if rule.expires_at is None or rule.expires_at > now:
                    continue
                if permission not in rule.permissions:
                    continue
                reaches = (rule.resource_type == TEAM_RESOURCE and rule.team_id in chain) or (
                    rule.resource_type == resource.type
                    and rule.resource_id in (resource.id, EVERY)
                    and rule.team_id in chain
                )
                if reaches:
                    found.append(
                        Remedy(
                            "grant",
                            rule.id,
                            rule.role or "permissions",
                            f"expired {rule.expires_at}",
                        )
                    )
        return found

    def explain(
        self,
        subject: Subject,
        permission: Permission,
        resource: Resource,
        now: datetime,
        key: KeyData | None = None,
    ) -> Explanation:
        decision = self.check(subject, permission, resource, now, key)
        if decision.allowed:
            return Explanation(True, decision.via, None, "allowed", f"allowed by {decision.via}")
        missing = permission.value
        if not self.has_standing(subject, key):
            return Explanation(
                False, None, missing, "no_standing", "the subject is not part of this org"
            )
        if key is not None:
            if key.permissions is not None and permission not in key.permissions:
                return Explanation(
                    False,
                    None,
                    missing,
                    "key_permissions",
                    "the API key's permission subset leaves this out; make a key that includes it",
                    (Remedy("key", key.id, "api key", "create a key with this permission"),),
                )
            if (
                resource.type != ORG_RESOURCE
                and key.team_id is not None
                and self.team_of(resource) != key.team_id
            ):
                return Explanation(
                    False,
                    None,
                    missing,
                    "key_team",
                    f"the API key is bound to team {key.team_id}",
                )
        if resource.type == ORG_RESOURCE:
            org_roles = [
                Remedy("org_role", role.value, role.value, "organization role")
                for role in OrgRole
                if permission in org_role_permissions(role)
            ]
            return Explanation(
                False,
                None,
                missing,
                "not_granted",
                f"{missing} at organization level comes only with an organization role",
                tuple(org_roles),
            )
        if subject.type == "user":
            subjects = self._subjects_of(subject.id, None)
        elif subject.type == "api_key" and key is not None:
            subjects = self._subjects_of(key.creator_id, key.id)
        else:
            subjects = frozenset({(subject.type, subject.id)})
        if self.team_of(resource) is None:
            return Explanation(
                False, None, missing, "unknown_resource", "the resource's team is not known"
            )
        remedies = self._expired_grants(subjects, permission, resource, now) + self.roles_giving(
            permission
        )
        return Explanation(
            False,
            None,
            missing,
            "not_granted",
            f"no role or grant gives {missing} on this {resource.type}",
            tuple(remedies),
        )

    # ---- who can, what can ----

    def subjects(self) -> list[Subject]:
        """Users, teams and API keys this policy knows, in a stable order (type, id)."""
        found = [Subject("user", u) for u in self.org_roles]
        found += [Subject("team", t) for t in self.teams]
        keys = {s for s in self.subject_rules if s[0] == "api_key"}
        found += [Subject(kind, ident) for kind, ident in keys]
        found.sort(key=lambda s: (s.type, s.id))
        return found

    def resources_of_type(self, resource_type: str) -> list[Resource]:
        """The resources of a type this policy can name: every team; for a team-owned type,
        "every resource of the type" in each team, and each one a grant names."""
        if resource_type == TEAM_RESOURCE:
            return [Resource(TEAM_RESOURCE, t) for t in sorted(self.teams)]
        found = [Resource(resource_type, EVERY, t) for t in sorted(self.teams)]
        found += [
            Resource(kind, ident, team)
            for (kind, ident), team in sorted(self.resource_team.items())
            if kind == resource_type
        ]
        return found
