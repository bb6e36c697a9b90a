"""The permission catalog and the built-in roles, as data.

Permissions are `resource:action` strings.
Built-in team roles nest: owner ⊃ admin ⊃ editor ⊃ viewer.
Organization roles map onto them: an org owner acts as owner and an org admin as admin on every team
of the org; an org member holds only `ORG_MEMBER_PERMISSIONS` at org level and whatever their team
memberships give inside teams.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Permission(StrEnum):
    ORG_READ = "org:read"
    ORG_UPDATE = "org:update"
    ORG_DELETE = "org:delete"
    ORG_TRANSFER = "org:transfer"
    TEAM_READ = "team:read"
    TEAM_CREATE = "team:create"
    TEAM_UPDATE = "team:update"
    TEAM_DELETE = "team:delete"
    MEMBER_READ = "member:read"
    MEMBER_INVITE = "member:invite"
    MEMBER_UPDATE = "member:update"
    MEMBER_REMOVE = "member:remove"
    MODEL_READ = "model:read"
    MODEL_CREATE = "model:create"
    MODEL_UPDATE = "model:update"
    MODEL_DELETE = "model:delete"
    EXPERIMENT_READ = "experiment:read"
    EXPERIMENT_CREATE = "experiment:create"
    EXPERIMENT_UPDATE = "experiment:update"
    EXPERIMENT_DELETE = "experiment:delete"
    USAGE_READ = "usage:read"
    USAGE_WRITE = "usage:write"
    ROLE_READ = "role:read"
    ROLE_MANAGE = "role:manage"
    GRANT_READ = "grant:read"
    GRANT_MANAGE = "grant:manage"
    APIKEY_READ = "apikey:read"
    APIKEY_CREATE = "apikey:create"
    APIKEY_REVOKE = "apikey:revoke"
    AUDIT_READ = "audit:read"
    BILLING_VIEW = "billing:view"
    BILLING_MANAGE = "billing:manage"
    SPEND_READ = "spend:read"
    SPEND_MANAGE = "spend:manage"
    GOVERNANCE_READ = "governance:read"
    GOVERNANCE_MANAGE = "governance:manage"
    SSO_READ = "sso:read"
    SSO_MANAGE = "sso:manage"
    SSO_ENFORCE = "sso:enforce"
    WEBHOOK_READ = "webhook:read"
    WEBHOOK_MANAGE = "webhook:manage"
    SECURITY_MANAGE = "security:manage"
    MEMBER_MFA_RESET = "member:mfa_reset"


CATALOG_DESCRIPTIONS: Final[dict[Permission, str]] = {
    Permission.ORG_READ: "See the organization and its settings",
    Permission.ORG_UPDATE: "Change the organization's name, plan, billing email and settings",
    Permission.ORG_DELETE: "Delete the organization and all its data",
    Permission.ORG_TRANSFER: "Transfer ownership of the organization",
    Permission.TEAM_READ: "See teams",
    Permission.TEAM_CREATE: "Create teams",
    Permission.TEAM_UPDATE: "Edit a team's name, description and settings",
    Permission.TEAM_DELETE: "Delete a team",
    Permission.MEMBER_READ: "See members",
    Permission.MEMBER_INVITE: "Invite and add members",
    Permission.MEMBER_UPDATE: "Change a member's role (up to one's own)",
    Permission.MEMBER_REMOVE: "Remove members",
    Permission.MODEL_READ: "See models",
    Permission.MODEL_CREATE: "Register models",
    Permission.MODEL_UPDATE: "Update models",
    Permission.MODEL_DELETE: "Delete models",
    Permission.EXPERIMENT_READ: "See experiments and runs",
    Permission.EXPERIMENT_CREATE: "Create experiments and runs",
    Permission.EXPERIMENT_UPDATE: "Update experiments and runs",
    Permission.EXPERIMENT_DELETE: "Delete experiments and runs",
    Permission.USAGE_READ: "See usage, quotas and limits",
    Permission.USAGE_WRITE: "Record usage, ask for admission and hold run leases",
    Permission.ROLE_READ: "See custom roles",
    Permission.ROLE_MANAGE: "Create, edit and delete custom roles (with permissions one holds)",
    Permission.GRANT_READ: "See resource grants and ask who can do what",
    Permission.GRANT_MANAGE: "Grant and revoke access (only with permissions one holds)",
    Permission.APIKEY_READ: "See API keys",
    Permission.APIKEY_CREATE: "Create API keys",
    Permission.APIKEY_REVOKE: "Revoke API keys",
    Permission.AUDIT_READ: "Read the audit trail",
    Permission.BILLING_VIEW: "See plans, subscriptions and invoices",
    Permission.BILLING_MANAGE: "Change the plan, pay and manage payment methods",
    Permission.SPEND_READ: "See LLM costs by provider, model and member, budgets and their alerts",
    Permission.SPEND_MANAGE: "Set budgets, billing settings and negotiated prices; acknowledge "
    "budget alerts",
    Permission.GOVERNANCE_READ: "See governance policies, their violations and approval requests",
    Permission.GOVERNANCE_MANAGE: "Create, change, activate and dry-run governance policies; "
    "set governance configuration",
    Permission.SSO_READ: "See SSO connections, their tests, verified domains and the SSO policy",
    Permission.SSO_MANAGE: "Add, test, enable and map SSO connections; add and verify domains",
    Permission.SSO_ENFORCE: "Require SSO for the verified domains and name break-glass owners",
    Permission.WEBHOOK_READ: "See webhook endpoints and their delivery log",
    Permission.WEBHOOK_MANAGE: "Add, change and remove webhook endpoints; send test events and "
    "redeliver",
    Permission.SECURITY_MANAGE: "Set the security policy: password rules, MFA for members, "
    "session timeouts and the IP allowlist",
    Permission.MEMBER_MFA_RESET: "Reset a member's two-factor authentication (recovery)",
}


class TeamRole(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    OWNER = "owner"


class OrgRole(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"


ROLE_ALIASES: Final[dict[str, str]] = {"developer": "editor"}

P = Permission
_VIEWER = frozenset(
    {
        P.ORG_READ,
        P.TEAM_READ,
        P.MEMBER_READ,
        P.MODEL_READ,
        P.EXPERIMENT_READ,
        P.USAGE_READ,
        P.SPEND_READ,
        P.GOVERNANCE_READ,
    }
)
_EDITOR = _VIEWER | {
    P.MODEL_CREATE,
    P.MODEL_UPDATE,
    P.EXPERIMENT_CREATE,
    P.EXPERIMENT_UPDATE,
    P.USAGE_WRITE,
}
_ADMIN = _EDITOR | {
    P.MODEL_DELETE,
    P.EXPERIMENT_DELETE,
    P.TEAM_CREATE,
    P.TEAM_UPDATE,
    P.MEMBER_INVITE,
    P.MEMBER_UPDATE,
    P.MEMBER_REMOVE,
    P.APIKEY_READ,
    P.APIKEY_CREATE,
    P.APIKEY_REVOKE,
    P.AUDIT_READ,
    P.BILLING_VIEW,
    P.SPEND_MANAGE,
    P.GOVERNANCE_MANAGE,
    P.ORG_UPDATE,
    P.ROLE_READ,
    P.ROLE_MANAGE,
    P.GRANT_READ,
    P.GRANT_MANAGE,
    P.SSO_READ,
    P.SSO_MANAGE,
    P.WEBHOOK_READ,
    P.WEBHOOK_MANAGE,
    P.SECURITY_MANAGE,
}
_OWNER = _ADMIN | {
    P.BILLING_MANAGE,
    P.TEAM_DELETE,
    P.ORG_DELETE,
    P.ORG_TRANSFER,
    P.SSO_ENFORCE,
    P.MEMBER_MFA_RESET,
}

TEAM_ROLE_PERMISSIONS: Final[dict[TeamRole, frozenset[Permission]]] = {
    TeamRole.VIEWER: frozenset(_VIEWER),
    TeamRole.EDITOR: frozenset(_EDITOR),
    TeamRole.ADMIN: frozenset(_ADMIN),
    TeamRole.OWNER: frozenset(_OWNER),
}
TEAM_ROLE_RANK: Final[dict[TeamRole, int]] = {
    TeamRole.VIEWER: 1,
    TeamRole.EDITOR: 2,
    TeamRole.ADMIN: 3,
    TeamRole.OWNER: 4,
}

# What an org role gives at org level and, as a team role, on every team of the org.
ORG_MEMBER_PERMISSIONS: Final = frozenset({P.ORG_READ, P.TEAM_READ})
ORG_ROLE_AS_TEAM_ROLE: Final[dict[OrgRole, TeamRole | None]] = {
    OrgRole.OWNER: TeamRole.OWNER,
    OrgRole.ADMIN: TeamRole.ADMIN,
    OrgRole.MEMBER: None,
}
ORG_ROLE_RANK: Final[dict[OrgRole, int]] = {OrgRole.MEMBER: 1, OrgRole.ADMIN: 3, OrgRole.OWNER: 4}


def org_role_permissions(role: OrgRole) -> frozenset[Permission]:
    as_team = ORG_ROLE_AS_TEAM_ROLE[role]
    return TEAM_ROLE_PERMISSIONS[as_team] if as_team else ORG_MEMBER_PERMISSIONS


def parse_team_role(name: str) -> TeamRole:
    """A team role by name (`developer` is accepted for editor); ValueError if unknown."""
    return TeamRole(ROLE_ALIASES.get(name.lower(), name.lower()))


def parse_org_role(name: str) -> OrgRole:
    return OrgRole(name.lower())


def is_known_permission(value: str) -> bool:
    return value in Permission._value2member_map_
