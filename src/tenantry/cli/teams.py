"""`tenantry team ...`: teams and their members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import (
    EXIT_API_ERROR,
    CliError,
    JsonFlag,
    done,
    print_members,
    print_record,
    print_table,
    show,
)
from tenantry.client.errors import TenantryError

if TYPE_CHECKING:
    from tenantry.client import Client
    from tenantry.client.models import InvitationCreated, Team

app = typer.Typer(no_args_is_help=True, help="Create and inspect teams; manage their members.")

TEAM_ROLES = "owner, admin, editor (alias developer) or viewer"
TEAM_HELP = "Team id, or ORG/TEAM-SLUG."
TeamArg = Annotated[str, typer.Argument(help=TEAM_HELP, show_default=False)]
TEAM_FIELDS = [
    "id", "slug", "name", "description", "org_id", "parent_team_id", "private", "created_at",
]  # fmt: skip


def resolve_team(api: Client, ref: str) -> str:
    """A team's id from an id or from `org/slug`, the form people remember."""
    org, sep, slug = ref.partition("/")
    if not sep:
        return ref
    for team in api.iter_teams(org):
        if team.slug == slug:
            return team.id
    raise CliError(f"no team {slug!r} in organization {org!r}", exit_code=EXIT_API_ERROR)


@app.command("create")
def create(
    org: Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)],
    name: Annotated[str, typer.Argument(help="Display name.", show_default=False)],
    description: Annotated[
        str | None, typer.Option("--description", help="What the team does.")
    ] = None,
    parent: Annotated[
        str | None, typer.Option("--parent", help=f"Parent team: {TEAM_HELP}")
    ] = None,
    slug: Annotated[
        str | None, typer.Option("--slug", help="URL name; made from NAME when left out.")
    ] = None,
    private: Annotated[
        bool,
        typer.Option(
            "--private", help="Seen only by its members and the organization's admins and owners."
        ),
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Create a team in an organization."""
    with connection.signed_in() as api:
        parent_id = resolve_team(api, parent) if parent else None
        team = api.create_team(
            org,
            name,
            slug=slug,
            description=description,
            parent_team_id=parent_id,
            private=private or None,
        )
    show(team, json_output, lambda: print_record(team, TEAM_FIELDS))


def _team_rows(teams: list[Team]) -> None:
    print_table(
        teams,
        [
            ("SLUG", lambda t: t.slug),
            ("NAME", lambda t: t.name),
            ("PARENT", lambda t: t.parent_team_id),
            ("ID", lambda t: t.id),
        ],
        empty="No teams.",
    )


@app.command("list")
def list_(
    org: Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)],
    json_output: JsonFlag = False,
) -> None:
    """List the teams of an organization."""
    with connection.signed_in() as api:
        teams = list(api.iter_teams(org))
    show(teams, json_output, lambda: _team_rows(teams))


@app.command("show")
def show_(team: TeamArg, json_output: JsonFlag = False) -> None:
    """Show one team."""
    with connection.signed_in() as api:
        found = api.get_team(resolve_team(api, team))
    show(found, json_output, lambda: print_record(found, [*TEAM_FIELDS, "settings"]))


@app.command("update")
def update(
    team: TeamArg,
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="What the team does.")
    ] = None,
    private: Annotated[
        bool | None,
        typer.Option(
            "--private/--public",
            help="Private: seen only by its members and the organization's admins and owners.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Rename a team, describe it, or make it private or public."""
    if name is None and description is None and private is None:
        raise CliError("nothing to change: give --name, --description, --private or --public")
    with connection.signed_in() as api:
        updated = api.update_team(
            resolve_team(api, team), name=name, description=description, private=private
        )
    show(updated, json_output, lambda: print_record(updated, TEAM_FIELDS))


@app.command("delete")
def delete(
    team: TeamArg,
    confirm: Annotated[
        str, typer.Option("--confirm", help="The team's slug, typed back.", show_default=False)
    ],
    json_output: JsonFlag = False,
) -> None:
    """Delete a team (owners only)."""
    with connection.signed_in() as api:
        team_id = resolve_team(api, team)
        api.delete_team(team_id, confirm=confirm)
    done(json_output, f"Deleted team {team}.", {"deleted": "team", "team": team_id})


@app.command("members")
def members(team: TeamArg, json_output: JsonFlag = False) -> None:
    """List the members of a team and their roles."""
    with connection.signed_in() as api:
        found = list(api.iter_team_members(resolve_team(api, team)))
    show(found, json_output, lambda: print_members(found))


def _render_invited(team: str, invitation: InvitationCreated) -> None:
    typer.echo(
        f"{invitation.email} is not in the organization yet: invited to it and to team {team} "
        f"as {invitation.role}. Send them this link (expires {invitation.expires_at:%Y-%m-%d}):"
    )
    typer.echo(invitation.url)


@app.command("add-member")
def add_member(
    team: TeamArg,
    email: Annotated[
        str,
        typer.Argument(
            help="Email or user id. Someone not in the organization yet is invited (by email) "
            "to it and to the team.",
            show_default=False,
        ),
    ],
    role: Annotated[
        str, typer.Option("--role", help=f"Team role: {TEAM_ROLES}.", show_default=False)
    ],
    json_output: JsonFlag = False,
) -> None:
    """Add someone to a team: a member of the organization joins at once; anyone else gets an
    invitation to the organization and the team, whose link is printed."""
    with connection.signed_in() as api:
        team_id = resolve_team(api, team)
        try:
            member = api.add_team_member(team_id, email, role=role)
        except TenantryError as exc:
            # The API adds only the org's members; the team invitation, accepted, makes them
            # both a member of the org and of the team with this role.
            if exc.code != "not_an_org_member" or "@" not in email:
                raise
            org_id = api.get_team(team_id).org_id
            invitation = api.create_invitation(org_id, email, role=role, team_id=team_id)
            show(invitation, json_output, lambda: _render_invited(team, invitation))
            return
    show(
        member,
        json_output,
        lambda: typer.echo(f"Added {member.email} to team {team} as {member.role}."),
    )


@app.command("remove-member")
def remove_member(
    team: TeamArg,
    email: Annotated[str, typer.Argument(help="Email or user id.", show_default=False)],
    json_output: JsonFlag = False,
) -> None:
    """Remove someone from a team (they stay in the organization)."""
    with connection.signed_in() as api:
        team_id = resolve_team(api, team)
        api.remove_team_member(team_id, email)
    done(
        json_output,
        f"Removed {email} from team {team}.",
        {"removed": email, "team": team_id},
    )
