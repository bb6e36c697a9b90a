"""`tenantry access ...`: Ask who may do what: check, explain, who-can, what-can.

Subjects are written `user:EMAIL-OR-ID`, `team:TEAM` or `api_key:KEY-ID` (a bare email or id
says which by its form); resources `org`, `team:TEAM` or `TYPE:ID@TEAM` for a team-owned
resource such as `model:mdl_…@team_…`. TEAM is a team id or ORG/TEAM-SLUG, as everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import (
    EXIT_DENIED,
    CliError,
    JsonFlag,
    print_record,
    print_table,
    show,
)
from tenantry.cli.teams import resolve_team

if TYPE_CHECKING:
    from tenantry.client import Client
    from tenantry.client.access import Explanation, ResourceRef, SubjectRef, WhatCan, WhoCan

app = typer.Typer(
    no_args_is_help=True, help="Ask who may do what: check, explain, who-can, what-can."
)

SUBJECT_HELP = "user:EMAIL-OR-ID, team:TEAM or api_key:KEY-ID; default: yourself."
RESOURCE_HELP = "org, team:TEAM or TYPE:ID@TEAM (e.g. model:mdl_…@team_…); default: the org."
_PREFIXES = {"usr": "user", "team": "team", "key": "api_key"}

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
PermissionArg = Annotated[
    str, typer.Argument(help="A permission such as model:update.", show_default=False)
]
SubjectOpt = Annotated[str | None, typer.Option("--subject", help=SUBJECT_HELP)]
ResourceOpt = Annotated[str | None, typer.Option("--on", help=RESOURCE_HELP)]


def parse_subject(text: str) -> SubjectRef:
    kind, sep, ident = text.partition(":")
    if sep and kind in ("user", "team", "api_key") and ident:
        return (kind, ident)
    if "@" in text:
        return ("user", text)
    prefix = text.split("_", 1)[0]
    if prefix in _PREFIXES and "_" in text:
        return (_PREFIXES[prefix], text)
    raise CliError(f"subject: expected {SUBJECT_HELP.split(';')[0]}, not {text!r}")


def parse_resource(text: str) -> ResourceRef:
    if text == "org":
        return ("org", "")
    kind, sep, rest = text.partition(":")
    if not sep or not rest:
        raise CliError(f"resource: expected {RESOURCE_HELP.split(';')[0]}, not {text!r}")
    ident, at, team = rest.partition("@")
    return (kind, ident, team) if at else (kind, ident)


def resolve_subject(api: Client, text: str) -> SubjectRef:
    """`parse_subject`, with a team written ORG/TEAM-SLUG resolved to its id."""
    kind, ident = parse_subject(text)
    return (kind, resolve_team(api, ident)) if kind == "team" else (kind, ident)


def resolve_resource(api: Client, text: str) -> ResourceRef:
    """`parse_resource`, with a team written ORG/TEAM-SLUG (`team:…`, `TYPE:ID@…`) resolved."""
    parsed = parse_resource(text)
    if len(parsed) == 3:
        return (parsed[0], parsed[1], resolve_team(api, parsed[2]))
    if parsed[0] == "team":
        return ("team", resolve_team(api, parsed[1]))
    return parsed


def _resource(api: Client, text: str | None) -> ResourceRef | None:
    if text is None:
        return None
    parsed = resolve_resource(api, text)
    return None if parsed[0] == "org" else parsed


def _subject(api: Client, text: str | None) -> SubjectRef | None:
    return resolve_subject(api, text) if text is not None else None


@app.command("check")
def check(
    org: OrgArg,
    permission: PermissionArg,
    on: ResourceOpt = None,
    subject: SubjectOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """May the subject do PERMISSION on the resource? Prints what allows it; exits with code 6
    when the answer is no."""
    with connection.signed_in() as api:
        decision = api.check_access(
            org, permission, resource=_resource(api, on), subject=_subject(api, subject)
        )

    def render() -> None:
        who = f"{decision.subject.type}:{decision.subject.id}"
        where = f"{decision.resource.type}:{decision.resource.id}"
        if decision.allowed:
            typer.echo(f"allowed: {who} may {permission} on {where} (via {decision.via})")
        else:
            typer.echo(f"denied: {who} may not {permission} on {where}")

    show(decision, json_output, render)
    if not decision.allowed:
        raise typer.Exit(EXIT_DENIED)


def _render_explanation(found: Explanation) -> None:
    print_record(found, ["allowed", "via", "missing", "reason", "detail"])
    if found.remedies:
        typer.echo("\nWould be given by:")
        print_table(
            found.remedies,
            [
                ("KIND", lambda r: r.kind),
                ("NAME", lambda r: r.name),
                ("ID", lambda r: r.id),
                ("DETAIL", lambda r: r.detail),
            ],
            empty="",
        )


@app.command("explain")
def explain(
    org: OrgArg,
    permission: PermissionArg,
    on: ResourceOpt = None,
    subject: SubjectOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Why the subject may or may not do PERMISSION, and what role or grant would give it."""
    with connection.signed_in() as api:
        found = api.explain_access(
            org, permission, resource=_resource(api, on), subject=_subject(api, subject)
        )
    show(found, json_output, lambda: _render_explanation(found))


@app.command("who-can")
def who_can(
    org: OrgArg,
    permission: PermissionArg,
    on: ResourceOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Every user, team and API key that may do PERMISSION on the resource."""
    with connection.signed_in() as api:
        found: list[WhoCan] = list(api.iter_who_can(org, permission, resource=_resource(api, on)))
    show(
        found,
        json_output,
        lambda: print_table(
            found,
            [
                ("TYPE", lambda w: w.subject.type),
                ("ID", lambda w: w.subject.id),
                ("VIA", lambda w: w.via),
            ],
            empty="Nobody.",
            keep_whole=("ID",),
        ),
    )


@app.command("what-can")
def what_can(
    org: OrgArg,
    permission: PermissionArg,
    resource_type: Annotated[
        str, typer.Option("--type", help="Resource type: team, model, experiment, …")
    ] = "team",
    subject: SubjectOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """The resources of a type on which the subject may do PERMISSION (`*`: all of a team's)."""
    with connection.signed_in() as api:
        found: list[WhatCan] = list(
            api.iter_what_can(
                org, permission, resource_type=resource_type, subject=_subject(api, subject)
            )
        )
    show(
        found,
        json_output,
        lambda: print_table(
            found,
            [
                ("TYPE", lambda w: w.resource.type),
                ("ID", lambda w: w.resource.id),
                ("TEAM", lambda w: w.resource.team_id),
                ("VIA", lambda w: w.via),
            ],
            empty="Nothing.",
            keep_whole=("ID",),
        ),
    )
