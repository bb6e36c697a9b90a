"""`tenantry grant ...`: Resource-level grants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection, values
from tenantry.cli.access import RESOURCE_HELP, SUBJECT_HELP, resolve_resource, resolve_subject
from tenantry.cli.output import CliError, JsonFlag, done, print_record, print_table, show
from tenantry.cli.teams import TEAM_HELP, resolve_team

if TYPE_CHECKING:
    from tenantry.client import Client
    from tenantry.client.access import BulkAction, BulkResult, Grant, ResourceRef

app = typer.Typer(no_args_is_help=True, help="Resource-level grants.")

TeamArg = Annotated[str, typer.Argument(help=f"The team: {TEAM_HELP}", show_default=False)]
GRANT_FIELDS = [
    "id",
    "subject_type",
    "subject_id",
    "resource_type",
    "resource_id",
    "team_id",
    "role",
    "permissions",
    "expires_at",
    "reason",
]
RoleOpt = Annotated[str | None, typer.Option("--role", help="A built-in or custom role.")]
PermissionsOpt = Annotated[
    str | None,
    typer.Option("--permissions", help="Comma-separated permissions (instead of --role)."),
]
OnOpt = Annotated[
    str | None, typer.Option("--on", help="TYPE:ID of a resource of the team; default: the team.")
]
ExpiresOpt = Annotated[
    str | None, typer.Option("--expires", help="Lifetime such as 7d, 12h or 90m; default: never.")
]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why (kept in the audit trail).")]


def _on(api: Client, text: str | None) -> ResourceRef | None:
    if text is None:
        return None
    parsed = resolve_resource(api, text)
    return (parsed[0], parsed[1])


def _grant_rows(grants: list[Grant]) -> None:
    print_table(
        grants,
        [
            ("SUBJECT", lambda g: f"{g.subject_type}:{g.subject_id}"),
            ("RESOURCE", lambda g: f"{g.resource_type}:{g.resource_id}"),
            ("ROLE", lambda g: g.role or g.permissions),
            ("EXPIRES", lambda g: g.expires_at),
            ("ID", lambda g: g.id),
        ],
        empty="No grants.",
        keep_whole=("ID",),
    )


@app.command("create")
def create(
    team: TeamArg,
    subject: Annotated[str, typer.Argument(help=SUBJECT_HELP.split(";")[0], show_default=False)],
    role: RoleOpt = None,
    permissions: PermissionsOpt = None,
    on: OnOpt = None,
    expires: ExpiresOpt = None,
    reason: ReasonOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Give SUBJECT a role (or permissions) on the team or one of its resources."""
    expires_at = values.expires_at(expires)
    with connection.signed_in() as api:
        grant = api.create_grant(
            resolve_team(api, team),
            resolve_subject(api, subject),
            resource=_on(api, on),
            role=role,
            permissions=values.comma_list(permissions),
            expires_at=expires_at,
            reason=reason,
        )
    show(grant, json_output, lambda: print_record(grant, GRANT_FIELDS))


@app.command("list")
def list_(
    org: Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)],
    team: Annotated[str | None, typer.Option("--team", help=f"Only this team: {TEAM_HELP}")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Only this subject.")] = None,
    on: Annotated[str | None, typer.Option("--on", help="Only this resource: TYPE:ID.")] = None,
    include_expired: Annotated[
        bool, typer.Option("--all", help="Include grants that have expired.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """List an organization's grants, or with --team one team's (a team admin may list these)."""
    with connection.signed_in() as api:
        resource = _on(api, on)
        who = resolve_subject(api, subject) if subject else None
        resource_type = resource[0] if resource else None
        resource_id = resource[1] if resource else None
        if team:
            grants: list[Grant] = list(
                api.iter_team_grants(
                    resolve_team(api, team),
                    subject=who,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    include_expired=include_expired,
                )
            )
        else:
            grants = list(
                api.iter_grants(
                    org,
                    subject=who,
                    resource_type=resource_type,
                    resource_id=resource_id,
                    include_expired=include_expired,
                )
            )
    show(grants, json_output, lambda: _grant_rows(grants))


@app.command("revoke")
def revoke(
    grant_id: Annotated[str, typer.Argument(help="The grant's id.", show_default=False)],
    json_output: JsonFlag = False,
) -> None:
    """Revoke a grant; it stops working on the next request."""
    with connection.signed_in() as api:
        api.revoke_grant(grant_id)
    done(json_output, f"Revoked grant {grant_id}.", {"revoked": grant_id})


def _bulk_summary(result: BulkResult) -> None:
    typer.echo(f"{result.action}: {result.changed} change(s).")


SubjectsOpt = Annotated[
    str,
    typer.Option("--subjects", help="Comma-separated subjects (up to 1,000).", show_default=False),
]


@app.command("bulk")
def bulk(
    team: TeamArg,
    action: Annotated[
        str, typer.Argument(help="grant, revoke or change_role.", show_default=False)
    ],
    subjects: SubjectsOpt,
    role: RoleOpt = None,
    permissions: PermissionsOpt = None,
    on: OnOpt = None,
    expires: ExpiresOpt = None,
    reason: ReasonOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Grant, revoke or change the role of many subjects at once: all or nothing."""
    if action not in ("grant", "revoke", "change_role"):
        raise CliError(f"action: expected grant, revoke or change_role, not {action!r}")
    chosen: BulkAction = action  # type: ignore[assignment]
    expires_at = values.expires_at(expires)
    with connection.signed_in() as api:
        parsed = [resolve_subject(api, s) for s in values.comma_list(subjects) or []]
        result = api.bulk_grants(
            resolve_team(api, team),
            chosen,
            parsed,
            resource=_on(api, on),
            role=role,
            permissions=values.comma_list(permissions),
            expires_at=expires_at,
            reason=reason,
        )
    show(result, json_output, lambda: _bulk_summary(result))


@app.command("apply")
def apply(
    team: TeamArg,
    template: Annotated[str, typer.Argument(help="Template id or name.", show_default=False)],
    subjects: SubjectsOpt,
    resource_id: Annotated[
        str | None,
        typer.Option("--resource-id", help="The resource, if the template leaves it open."),
    ] = None,
    reason: ReasonOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Apply a grant template to many subjects in the team."""
    with connection.signed_in() as api:
        parsed = [resolve_subject(api, s) for s in values.comma_list(subjects) or []]
        result = api.apply_grant_template(
            resolve_team(api, team), template, parsed, resource_id=resource_id, reason=reason
        )
    show(result, json_output, lambda: _bulk_summary(result))


__all__ = ["RESOURCE_HELP", "app"]
