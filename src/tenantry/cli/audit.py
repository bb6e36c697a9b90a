"""`tenantry audit list`: read an organization's audit trail."""

from __future__ import annotations

from itertools import islice
from typing import Annotated

import typer

from tenantry.cli import connection, values
from tenantry.cli.output import EXIT_API_ERROR, CliError, JsonFlag, print_table, show
from tenantry.client import Client
from tenantry.client.models import AuditEvent

app = typer.Typer(no_args_is_help=True, help="Read the audit trail.")

TIME_HELP = "an ISO time (UTC unless a zone is given) or a duration ago such as 7d or 12h"


def _actor_id(api: Client, org: str, actor: str | None) -> str | None:
    """The audit trail records user ids; people know each other by email."""
    if actor is None or "@" not in actor:
        return actor
    wanted = actor.strip().lower()
    for member in api.iter_org_members(org):
        if member.email.lower() == wanted:
            return member.user_id
    raise CliError(f"no member {actor!r} in organization {org!r}", exit_code=EXIT_API_ERROR)


def _rows(events: list[AuditEvent]) -> None:
    # Ids carry their kind in their prefix (usr_, team_, key_), so they are shown bare.
    print_table(
        events,
        [
            ("TIME (UTC)", lambda e: e.occurred_at),
            ("ACTION", lambda e: e.action),
            ("RESULT", lambda e: e.result),
            ("ACTOR", lambda e: e.actor_id or e.actor_type),
            ("TARGET", lambda e: e.target_id or e.target_type),
        ],
        empty="No audit events.",
        keep_whole=("TIME (UTC)", "ACTION"),
    )


@app.command("list")
def list_(
    org: Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)],
    actor: Annotated[
        str | None, typer.Option("--actor", help="Only this actor: a user id or member email.")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", help="Exact action, or a prefix ending in '.' (e.g. team.)."),
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help=f"From {TIME_HELP}.")] = None,
    until: Annotated[str | None, typer.Option("--until", help=f"Until {TIME_HELP}.")] = None,
    target_type: Annotated[
        str | None, typer.Option("--target-type", help="Only events on this kind of thing.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Show at most this many events (oldest first).")
    ] = 100,
    json_output: JsonFlag = False,
) -> None:
    """List audit events of an organization, oldest first."""
    since_at = values.moment(since, option="--since")
    until_at = values.moment(until, option="--until")
    with connection.signed_in() as api:
        found = api.iter_audit_events(
            org,
            actor=_actor_id(api, org, actor),
            action=action,
            target_type=target_type,
            since=since_at,
            until=until_at,
            limit=min(limit, 200),
        )
        events = list(islice(found, limit))
    show(events, json_output, lambda: _rows(events))
