"""`tenantry audit ...`: read, export, follow and verify an organization's audit trail.

`verify --file` is the one command that needs no server: it checks an export offline with
`tenantry.audit.offline`, exactly as an auditor's copy of `scripts/verify_audit_export.py` would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Literal

import typer

from tenantry.cli import config, connection, values
from tenantry.cli.output import (
    EXIT_API_ERROR,
    EXIT_VERIFY_FAILED,
    CliError,
    JsonFlag,
    done,
    note,
    print_json,
    print_record,
    print_table,
    show,
)

if TYPE_CHECKING:
    from tenantry.client import Client
    from tenantry.client.models import AuditCheckpoint, AuditEvent, AuditVerdict

app = typer.Typer(no_args_is_help=True, help="Read, export, follow and verify the audit trail.")

TIME_HELP = "an ISO time (UTC unless a zone is given) or a duration ago such as 7d or 12h"
OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Only this actor: a user id or member email.")
]
ActionOpt = Annotated[
    str | None,
    typer.Option("--action", help="Exact action, or a prefix ending in '.' (e.g. team.)."),
]
SinceOpt = Annotated[str | None, typer.Option("--since", help=f"From {TIME_HELP}.")]
UntilOpt = Annotated[str | None, typer.Option("--until", help=f"Until {TIME_HELP}.")]
TargetTypeOpt = Annotated[
    str | None, typer.Option("--target-type", help="Only events on this kind of thing.")
]
TeamOpt = Annotated[
    str | None,
    typer.Option(
        "--team",
        help="Only this team's events, read from the team's own trail (what its admins may "
        "read): id or ORG/TEAM-SLUG.",
    ),
]
CHECKPOINT_FIELDS = ["id", "chain_id", "seq", "hash", "created_at", "reason", "purged_through"]


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
    org: OrgArg,
    actor: ActorOpt = None,
    action: ActionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    target_type: TargetTypeOpt = None,
    team: TeamOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Show at most this many events (oldest first).")
    ] = 100,
    json_output: JsonFlag = False,
) -> None:
    """List audit events of an organization (or of one of its teams), oldest first."""
    from tenantry.cli.teams import resolve_team

    since_at = values.moment(since, option="--since")
    until_at = values.moment(until, option="--until")
    with connection.signed_in() as api:
        read = (
            partial(api.iter_team_audit_events, resolve_team(api, team))
            if team
            else partial(api.iter_audit_events, org)
        )
        found = read(
            actor=_actor_id(api, org, actor),
            action=action,
            target_type=target_type,
            since=since_at,
            until=until_at,
            limit=min(limit, 200),
        )
        events = list(islice(found, limit))
    show(events, json_output, lambda: _rows(events))


# ---- verify ----


def _span(first: int | None, last: int) -> str:
    return f"seq {first}-{last}" if first is not None else "no events"


def _server_verdict(verdict: AuditVerdict, json_output: bool) -> None:
    if json_output:
        print_json(verdict)
    elif verdict.ok:
        typer.echo(
            f"OK: chain {verdict.chain_id} is intact: {verdict.events_checked} events "
            f"({_span(verdict.first_seq, verdict.last_seq)}), "
            f"{verdict.checkpoints_checked} signed checkpoints"
        )
    fault = verdict.fault
    if fault is not None:
        if json_output:
            raise typer.Exit(EXIT_VERIFY_FAILED)
        raise CliError(
            f"chain {verdict.chain_id} is not intact at seq {fault.seq}: {fault.kind}: "
            f"{fault.detail}",
            exit_code=EXIT_VERIFY_FAILED,
        )


def _offline_verdict(path: Path, public_key: Path | None, json_output: bool) -> None:
    from tenantry.audit import offline  # the server's side of the package: only needed here

    pem = public_key.read_text() if public_key is not None else None
    verdict = offline.verify_file(path, public_key_pem=pem)
    if json_output:
        print_json(dataclasses.asdict(verdict))
    elif verdict.ok:
        what = "filtered export" if verdict.filtered else "export"
        typer.echo(
            f"OK: {what} of chain {verdict.chain_id} verified offline: "
            f"{verdict.events_checked} events ({_span(verdict.first_seq, verdict.last_seq)}), "
            f"{verdict.checkpoints_checked} signed checkpoints, signed trailer"
        )
        for remark in verdict.notes:
            note(remark)
    fault = verdict.fault
    if fault is not None:
        if json_output:
            raise typer.Exit(EXIT_VERIFY_FAILED)
        raise CliError(
            f"{path} is not intact at seq {fault.seq}: {fault.kind}: {fault.detail}",
            exit_code=EXIT_VERIFY_FAILED,
        )


@app.command("verify")
def verify(
    org: Annotated[
        str | None,
        typer.Argument(help="Organization id or slug, checked by the server.", show_default=False),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="An NDJSON or JSON export to check offline instead (no server needed).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="With --file: a PEM file of the server's key (`tenantry audit public-key`).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Check that the audit trail is intact: every hash, link, signed checkpoint and the tail.
    Prints OK, or the first bad seq and what is wrong (exit code 5)."""
    if (org is None) == (file is None):
        raise CliError("give ORG (checked by the server) or --file EXPORT (checked here)")
    if file is not None:
        _offline_verdict(file, public_key, json_output)
        return
    if public_key is not None:
        raise CliError("--public-key goes with --file")
    assert org is not None
    with connection.signed_in() as api:
        verdict = api.verify_audit_chain(org)
    _server_verdict(verdict, json_output)


# ---- export ----


@contextmanager
def _destination(output: str) -> Iterator[IO[bytes]]:
    """stdout for `-`; else a file that appears only once complete (a failed export leaves no
    half-written file behind to be mistaken for a whole one)."""
    if output == "-":
        yield typer.get_binary_stream("stdout")
        return
    target = Path(output)
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("wb") as file:
            yield file
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


@app.command("export")
def export(
    org: OrgArg,
    output: Annotated[str, typer.Option("--output", "-o", help="File to write, or - for stdout.")],
    format: Annotated[
        Literal["ndjson", "csv", "json"],
        typer.Option("--format", help="ndjson and json verify offline; csv is for spreadsheets."),
    ] = "ndjson",
    actor: ActorOpt = None,
    action: ActionOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    target_type: TargetTypeOpt = None,
    target_id: Annotated[
        str | None, typer.Option("--target-id", help="Only events on this thing (its id).")
    ] = None,
    team: TeamOpt = None,
    result: Annotated[
        str | None, typer.Option("--result", help="Only success or denied events.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Export the audit trail to a file, streamed in constant memory at any size. With filters
    the export holds the matching events only, and offline checks cover each event's own hash."""
    from tenantry.cli.teams import resolve_team

    since_at = values.moment(since, option="--since")
    until_at = values.moment(until, option="--until")
    with connection.signed_in() as api, _destination(output) as sink:
        write = (
            partial(api.export_team_audit_events, resolve_team(api, team))
            if team
            else partial(api.export_audit_events, org)
        )
        written = write(
            sink,
            format=format,
            actor=_actor_id(api, org, actor),
            action=action,
            target_type=target_type,
            target_id=target_id,
            result=result,
            since=since_at,
            until=until_at,
        )
    if output == "-":
        return
    message = f"Exported the audit trail of {org} to {output} ({written} bytes, {format})"
    data = {"org": org, "file": output, "format": format, "bytes": written}
    done(json_output, message, data)


# ---- stream ----


def _event_line(event: AuditEvent) -> str:
    when = event.occurred_at.strftime("%Y-%m-%d %H:%M:%S")
    who = event.actor_id or event.actor_type
    target = event.target_id or event.target_type or "-"
    return f"{event.seq or '-':>6}  {when}  {event.action}  {event.result}  {who}  {target}"


@app.command("stream")
def stream(
    org: OrgArg,
    after_seq: Annotated[
        int | None, typer.Option("--after-seq", min=0, help="Start after this seq (resume).")
    ] = None,
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, help="Stop after this many events.")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow/--no-follow", help="Wait for new events, or stop once caught up."),
    ] = True,
    team: TeamOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print each event as one line of JSON.")
    ] = False,
) -> None:
    """Print the audit events as they are written (oldest first, then live) until Ctrl-C."""
    from tenantry.cli.teams import resolve_team

    try:
        with connection.signed_in() as api:
            follower = (
                partial(api.stream_team_audit_events, resolve_team(api, team))
                if team
                else partial(api.stream_audit_events, org)
            )
            events = follower(after_seq=after_seq, max_events=max_events, follow=follow)
            for event in events:
                typer.echo(event.model_dump_json() if json_output else _event_line(event))
    except KeyboardInterrupt:
        pass  # the way a follower is meant to end


# ---- checkpoints and the key ----


@app.command("checkpoint")
def checkpoint(org: OrgArg, json_output: JsonFlag = False) -> None:
    """Sign the chain's head now (the server also does so periodically and at every purge)."""
    with connection.signed_in() as api:
        made = api.create_audit_checkpoint(org)
    show(made, json_output, lambda: print_record(made, CHECKPOINT_FIELDS))


def _checkpoint_rows(found: list[AuditCheckpoint]) -> None:
    print_table(
        found,
        [
            ("SEQ", lambda c: c.seq),
            ("CREATED (UTC)", lambda c: c.created_at),
            ("REASON", lambda c: c.reason),
            ("PURGED THROUGH", lambda c: c.purged_through or None),
            ("ID", lambda c: c.id),
        ],
        empty="No checkpoints.",
        keep_whole=("CREATED (UTC)", "ID"),
    )


@app.command("checkpoints")
def checkpoints(org: OrgArg, json_output: JsonFlag = False) -> None:
    """List the signed checkpoints of the chain, oldest first."""
    with connection.signed_in() as api:
        found = api.list_audit_checkpoints(org)
    show(found, json_output, lambda: _checkpoint_rows(found))


@app.command("public-key")
def public_key(json_output: JsonFlag = False) -> None:
    """Print the server's Ed25519 audit key as PEM, for `verify --file --public-key`. Needs no
    sign-in; keep a copy apart from the exports it is to vouch for."""
    with connection.anonymous(connection.server_url(config.load())) as api:
        key = api.audit_public_key()
    if json_output:
        print_json(key)
    else:
        typer.echo(key.public_key_pem, nl=False)
