"""Print the HTTP surface as a Markdown table, read from the app's own route table.

    python scripts/route_table.py

For every route: method, path, whether it needs credentials, the permission its signature
declares, the rule the service checks on top (where there is one), and, for a mutating route,
the audit action it records (the route's `name`). docs/api.md pastes this output.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from tenantry.app import create_app
from tenantry.authz.catalog import Permission
from tenantry.config import Settings
from tenantry.http.auth import bearer_credential, current_principal
from tenantry.kit.context import MUTATING_METHODS

# Rules that depend on the resource and are checked in the service, keyed by route name.
# A key that matches no route makes this script fail, so the notes cannot silently go stale.
SERVICE_RULES: dict[str, str] = {
    "organization.created": "signed-in users only; the caller becomes owner",
    "organization.ownership_transferred": "signed-in owner only; old owner becomes admin",
    "organization.member.updated": "no role above one's own; keeps the last owner",
    "organization.member.removed": "`member:remove` unless removing oneself; keeps the last owner",
    "team.member.added": "role at most one's own; user must be an org member",
    "team.member.updated": "role at most one's own; keeps the last team owner",
    "team.member.removed": "`member:remove` unless removing oneself; keeps the last team owner",
    "invitation.created": "`member:invite` on the org, or on the team for a team invitation",
    "invitation.accepted": "signed in with the invited email",
    "invitation.declined": "signed in with the invited email",
    "invitation.revoked": "`member:invite` on the invitation's org or team",
    "api_key.created": (
        "users only; `apikey:create` on the org or the key's team; no permission beyond one's own"
    ),
    "api_key.revoked": "`apikey:revoke` on the key's org or team",
    "organization.deleted": "body `confirm` must equal the org's slug",
    "team.deleted": "body `confirm` must equal the team's slug",
    "user.erased": (
        "one's own account, signed in as a user; body `confirm` must equal its email; refused "
        "while the last owner of an org"
    ),
    "sso_connection.enabled": "after a successful test sign-in of its current settings",
    "sso_connection.mapping_changed": "rules give nothing above one's own; teams of the org",
    "sso_policy.updated": "break-glass accounts are owners; needs a verified domain and an "
    "enabled connection",
    "sso.link_started": "a signed-in person, for their own account",
    "export_my_data": "an API key gets its org's part only",
    "export_member_data": "404 unless the user is a member of the org",
}


def api_routes(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path. Newer FastAPI keeps an included router as one wrapper
    route (`_IncludedRouter`) instead of copying its routes into the app, so unwrap those too."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from api_routes(inner.routes, prefix + (getattr(context, "prefix", "") or ""))


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependants(sub)


def _declared_permission(call: Any) -> Permission | None:
    for cell in getattr(call, "__closure__", None) or ():
        if isinstance(cell.cell_contents, Permission):
            return cell.cell_contents
    return None


def describe(path: str, route: APIRoute) -> dict[str, str]:
    calls = [d.call for d in _dependants(route.dependant)]
    permissions = [p for p in map(_declared_permission, calls) if p is not None]
    authenticated = current_principal in calls or bearer_credential in calls
    mutating = bool(set(route.methods) & MUTATING_METHODS)
    return {
        "method": "/".join(sorted(route.methods)),
        "path": path,
        "auth": "bearer" if authenticated else "none",
        "permission": ", ".join(f"`{p.value}`" for p in permissions) or "—",
        "also checked": SERVICE_RULES.get(route.name, ""),
        "audit action": f"`{route.name}`" if mutating else "—",
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=f"sqlite:///{tmp}/routes.db",
            secret_key="route-table-" + "x" * 32,
        )
        app = create_app(settings)
        routes = list(api_routes(app.routes))
        unknown = set(SERVICE_RULES) - {r.name for _, r in routes}
        if unknown:
            raise SystemExit(f"SERVICE_RULES names routes that do not exist: {sorted(unknown)}")
        rows = [describe(path, r) for path, r in routes]
        app.state.db.dispose()
    headings = list(rows[0])
    print("| " + " | ".join(headings) + " |")
    print("|" + "|".join("---" for _ in headings) + "|")
    for row in rows:
        print("| " + " | ".join(row.values()) + " |")


if __name__ == "__main__":
    main()
