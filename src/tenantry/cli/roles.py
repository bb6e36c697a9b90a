"""`tenantry role ...`: Custom roles of an organization."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection, values
from tenantry.cli.output import CliError, JsonFlag, done, print_record, print_table, show

if TYPE_CHECKING:
    from tenantry.client.access import Role

app = typer.Typer(no_args_is_help=True, help="Custom roles of an organization.")

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
RoleArg = Annotated[str, typer.Argument(help="Role id or name.", show_default=False)]
ROLE_FIELDS = [
    "id",
    "name",
    "description",
    "builtin",
    "permissions",
    "inherits",
    "effective_permissions",
]
PermissionsOpt = Annotated[
    str | None,
    typer.Option(
        "--permissions", help="Comma-separated permissions, e.g. model:read,model:update."
    ),
]
InheritsOpt = Annotated[
    str | None,
    typer.Option("--inherits", help="Comma-separated roles it includes: built-in names or custom."),
]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="What the role is for.")]


@app.command("create")
def create(
    org: OrgArg,
    name: Annotated[
        str, typer.Argument(help="Lowercase name, e.g. ml-reviewer.", show_default=False)
    ],
    permissions: PermissionsOpt = None,
    inherits: InheritsOpt = None,
    description: DescriptionOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Create a custom role (with permissions you hold yourself)."""
    with connection.signed_in() as api:
        role = api.create_role(
            org,
            name,
            permissions=values.comma_list(permissions),
            inherits=values.comma_list(inherits),
            description=description,
        )
    show(role, json_output, lambda: print_record(role, ROLE_FIELDS))


@app.command("list")
def list_(
    org: OrgArg,
    builtin: Annotated[
        bool, typer.Option("--builtin", help="List the built-in roles too.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """List the organization's custom roles."""
    with connection.signed_in() as api:
        roles: list[Role] = list(api.iter_roles(org, include_builtin=builtin))
    show(
        roles,
        json_output,
        lambda: print_table(
            roles,
            [
                ("NAME", lambda r: r.name),
                ("BUILT-IN", lambda r: "yes" if r.builtin else ""),
                ("INHERITS", lambda r: r.inherits),
                ("PERMISSIONS", lambda r: r.effective_permissions),
                ("ID", lambda r: r.id),
            ],
            empty="No custom roles.",
            keep_whole=("ID",),
        ),
    )


@app.command("show")
def show_(org: OrgArg, role: RoleArg, json_output: JsonFlag = False) -> None:
    """One role, with its permissions and every one it inherits."""
    with connection.signed_in() as api:
        found = api.get_role(org, role)
    show(found, json_output, lambda: print_record(found, ROLE_FIELDS))


@app.command("update")
def update(
    org: OrgArg,
    role: RoleArg,
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    permissions: PermissionsOpt = None,
    inherits: InheritsOpt = None,
    description: DescriptionOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Change a custom role; its holders have the new permissions on their next request."""
    if name is None and permissions is None and inherits is None and description is None:
        raise CliError("nothing to change: give --name, --permissions, --inherits or --description")
    with connection.signed_in() as api:
        updated = api.update_role(
            org,
            role,
            name=name,
            permissions=values.comma_list(permissions),
            inherits=values.comma_list(inherits),
            description=description,
        )
    show(updated, json_output, lambda: print_record(updated, ROLE_FIELDS))


@app.command("delete")
def delete(
    org: OrgArg,
    role: RoleArg,
    reassign_to: Annotated[
        str | None,
        typer.Option("--reassign-to", help="Give the role's holders this role instead."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Delete a custom role; one in use needs --reassign-to."""
    with connection.signed_in() as api:
        api.delete_role(org, role, reassign_to=reassign_to)
    done(json_output, f"Deleted role {role}.", {"deleted": role, "reassigned_to": reassign_to})
