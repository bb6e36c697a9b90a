"""`tenantry org ...`: organizations and their members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import (
    CliError,
    JsonFlag,
    done,
    print_members,
    print_record,
    print_table,
    show,
)

if TYPE_CHECKING:
    from tenantry.client.models import Org, OrgCreated

app = typer.Typer(no_args_is_help=True, help="Create, inspect, change and delete organizations.")

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
ORG_FIELDS = ["id", "slug", "name", "plan", "billing_email", "status", "created_at", "updated_at"]


def _render_created(org: OrgCreated) -> None:
    print_record(org, ORG_FIELDS)
    invitation = org.owner_invitation
    if invitation is not None:
        typer.echo(
            f"\n{invitation.email} has no account yet. Send them this link to accept "
            f"ownership (expires {invitation.expires_at:%Y-%m-%d}):\n{invitation.url}"
        )


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Display name.", show_default=False)],
    slug: Annotated[
        str | None,
        typer.Argument(help="URL name; made from NAME when left out.", show_default=False),
    ] = None,
    owner_email: Annotated[
        str | None,
        typer.Option(
            "--owner-email",
            help="Make this person an owner too; without an account they get an invitation link.",
        ),
    ] = None,
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan",
            "--billing-plan",
            help="A paid plan starts a trial of it (see `tenantry billing pricing`); "
            "without it the organization is on the Free plan.",
        ),
    ] = None,
    billing_email: Annotated[
        str | None, typer.Option("--billing-email", help="Where invoices go.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Create an organization (you become its owner)."""
    with connection.signed_in() as api:
        org = api.create_org(
            name, slug=slug, plan=plan, billing_email=billing_email, owner_email=owner_email
        )
    show(org, json_output, lambda: _render_created(org))


def _org_rows(orgs: list[Org]) -> None:
    print_table(
        orgs,
        [
            ("SLUG", lambda o: o.slug),
            ("NAME", lambda o: o.name),
            ("PLAN", lambda o: o.plan),
            ("STATUS", lambda o: o.status),
            ("ID", lambda o: o.id),
        ],
        empty="No organizations.",
    )


@app.command("list")
def list_(json_output: JsonFlag = False) -> None:
    """List the organizations you belong to."""
    with connection.signed_in() as api:
        orgs = list(api.iter_orgs())
    show(orgs, json_output, lambda: _org_rows(orgs))


@app.command("show")
def show_(org: OrgArg, json_output: JsonFlag = False) -> None:
    """Show one organization."""
    with connection.signed_in() as api:
        found = api.get_org(org)
    show(found, json_output, lambda: print_record(found, [*ORG_FIELDS, "settings"]))


@app.command("update")
def update(
    org: OrgArg,
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    billing_email: Annotated[
        str | None, typer.Option("--billing-email", help="New billing email.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Change an organization's name or billing email (its plan moves through `tenantry
    billing subscribe`)."""
    if name is None and billing_email is None:
        raise CliError("nothing to change: give --name or --billing-email")
    with connection.signed_in() as api:
        updated = api.update_org(org, name=name, billing_email=billing_email)
    show(updated, json_output, lambda: print_record(updated, ORG_FIELDS))


@app.command("delete")
def delete(
    org: OrgArg,
    confirm: Annotated[
        str,
        typer.Option("--confirm", help="The organization's slug, typed back.", show_default=False),
    ],
    json_output: JsonFlag = False,
) -> None:
    """Delete an organization and all its data (owners only)."""
    with connection.signed_in() as api:
        api.delete_org(org, confirm=confirm)
    done(json_output, f"Deleted organization {org}.", {"deleted": "organization", "org": org})


@app.command("transfer")
def transfer(
    org: OrgArg,
    new_owner: Annotated[
        str, typer.Argument(help="Email or user id of a member.", show_default=False)
    ],
    json_output: JsonFlag = False,
) -> None:
    """Make a member the owner; you stay on as an admin."""
    with connection.signed_in() as api:
        member = api.transfer_ownership(org, new_owner)
    show(
        member,
        json_output,
        lambda: typer.echo(f"{member.email} now owns {org}; you are an admin of it."),
    )


@app.command("members")
def members(org: OrgArg, json_output: JsonFlag = False) -> None:
    """List the members of an organization and their roles."""
    with connection.signed_in() as api:
        found = list(api.iter_org_members(org))
    show(found, json_output, lambda: print_members(found))
