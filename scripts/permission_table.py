"""Print the permission table of the built-in roles as Markdown, straight from the catalog.

    python scripts/permission_table.py

docs/concepts.md pastes this output; rerun it whenever `tenantry.authz.catalog` changes.
"""

from __future__ import annotations

from tenantry.authz.catalog import (
    CATALOG_DESCRIPTIONS,
    ORG_MEMBER_PERMISSIONS,
    ROLE_ALIASES,
    TEAM_ROLE_PERMISSIONS,
    TEAM_ROLE_RANK,
    Permission,
    TeamRole,
)

YES, NO = "✓", "·"


def role_heading(role: TeamRole) -> str:
    aliases = [alias for alias, target in ROLE_ALIASES.items() if target == role.value]
    return f"{role.value} ({', '.join(aliases)})" if aliases else role.value


def main() -> None:
    roles = sorted(TeamRole, key=TEAM_ROLE_RANK.__getitem__)
    headings = ["permission", "what it allows", *map(role_heading, roles), "org member"]
    print("| " + " | ".join(headings) + " |")
    print("|" + "|".join("---" for _ in headings) + "|")
    for permission in Permission:
        marks = [YES if permission in TEAM_ROLE_PERMISSIONS[r] else NO for r in roles]
        marks.append(YES if permission in ORG_MEMBER_PERMISSIONS else NO)
        row = [f"`{permission.value}`", CATALOG_DESCRIPTIONS[permission], *marks]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
