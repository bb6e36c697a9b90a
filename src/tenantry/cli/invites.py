"""`tenantry invite ...`: invitations to an organization or one of its teams."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, print_table, show
from tenantry.cli.teams import TEAM_HELP, TEAM_ROLES, resolve_team

if TYPE_CHECKING:
    from tenantry.client.models import Invitation, InvitationCreated

app = typer.Typer(
    no_args_is_help=True, help="Invite people; accept, decline or revoke invitations."
)

Status = Literal["pending", "accepted", "declined", "revoked", "all"]
OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
TokenArg = Annotated[str, typer.Argument(help="The invitation token.", show_default=False)]


def _render_created(invitation: InvitationCreated) -> None:
    where = f"team {invitation.team_id}" if invitation.team_id else f"org {invitation.org_id}"
    typer.echo(
        f"Invited {invitation.email} to {where} as {invitation.role} "
        f"(expires {invitation.expires_at:%Y-%m-%d %H:%M} UTC)."
    )
    typer.echo(f"Token (shown once): {invitation.token}")
    typer.echo(f"Link: {invitation.url}")


@app.command("create")
def create(
    org: OrgArg,
    email: Annotated[str, typer.Argument(help="Who to invite.", show_default=False)],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help=f"Organization role (owner, admin or member), or with --team a team role "
            f"({TEAM_ROLES}).",
            show_default=False,
        ),
    ],
    team: Annotated[
        str | None, typer.Option("--team", help=f"Invite to this team: {TEAM_HELP}")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Invite someone by email; prints the token and link to send them."""
    with connection.signed_in() as api:
        team_id = resolve_team(api, team) if team else None
        invitation = api.create_invitation(org, email, role=role, team_id=team_id)
    show(invitation, json_output, lambda: _render_created(invitation))


def _rows(invitations: list[Invitation]) -> None:
    print_table(
        invitations,
        [
            ("EMAIL", lambda i: i.email),
            ("ROLE", lambda i: i.role),
            ("TEAM", lambda i: i.team_id),
            ("STATUS", lambda i: i.status),
            ("EXPIRES", lambda i: i.expires_at),
            ("ID", lambda i: i.id),
        ],
        empty="No invitations.",
        keep_whole=("EMAIL",),
    )


@app.command("list")
def list_(
    org: OrgArg,
    status: Annotated[Status, typer.Option("--status", help="Which invitations.")] = "pending",
    json_output: JsonFlag = False,
) -> None:
    """List an organization's invitations (pending ones unless --status says otherwise)."""
    with connection.signed_in() as api:
        invitations = list(api.iter_invitations(org, status=status))
    show(invitations, json_output, lambda: _rows(invitations))


def _answered(invitation: Invitation, verb: str) -> None:
    where = f"team {invitation.team_id}" if invitation.team_id else f"org {invitation.org_id}"
    typer.echo(f"{verb} the invitation to {where} as {invitation.role}.")


@app.command("accept")
def accept(token: TokenArg, json_output: JsonFlag = False) -> None:
    """Accept an invitation sent to your email."""
    with connection.signed_in() as api:
        invitation = api.accept_invitation(token)
    show(invitation, json_output, lambda: _answered(invitation, "Accepted"))


@app.command("decline")
def decline(token: TokenArg, json_output: JsonFlag = False) -> None:
    """Decline an invitation sent to your email."""
    with connection.signed_in() as api:
        invitation = api.decline_invitation(token)
    show(invitation, json_output, lambda: _answered(invitation, "Declined"))


@app.command("revoke")
def revoke(
    invitation_id: Annotated[str, typer.Argument(help="The invitation's id.", show_default=False)],
    json_output: JsonFlag = False,
) -> None:
    """Withdraw a pending invitation."""
    with connection.signed_in() as api:
        invitation = api.revoke_invitation(invitation_id)
    show(
        invitation,
        json_output,
        lambda: typer.echo(f"Revoked the invitation {invitation.id} for {invitation.email}."),
    )
