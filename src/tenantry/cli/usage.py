"""`tenantry usage ...`: Record and summarize usage."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection, values
from tenantry.cli.output import EXIT_API_ERROR, CliError, JsonFlag, print_table, show
from tenantry.cli.teams import TeamArg, resolve_team

if TYPE_CHECKING:
    from tenantry.client.metering import UsageRecorded, UsageSummary

app = typer.Typer(no_args_is_help=True, help="Record and summarize usage.")


def _dimensions(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--dimension: expected KEY=VALUE, not {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _quantity(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise CliError(f"QUANTITY: expected a number, not {text!r}") from None


@app.command("record")
def record(
    team: TeamArg,
    meter: Annotated[str, typer.Argument(help="Meter, e.g. llm_input_tokens.", show_default=False)],
    quantity: Annotated[str, typer.Argument(help="How much (a decimal).", show_default=False)],
    dimension: Annotated[
        list[str] | None,
        typer.Option("--dimension", "-d", help="KEY=VALUE, e.g. provider=openai (repeatable)."),
    ] = None,
    event_id: Annotated[
        str | None, typer.Option("--id", help="Your id for the event; default: a new one.")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="When it was used (ISO time); default: now.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Record one usage event for a team."""
    from tenantry.client.metering import usage_event  # the SDK loads once a command runs

    event = usage_event(
        event_id or f"cli-{secrets.token_hex(8)}",
        meter,
        _quantity(quantity),
        timestamp=values.moment(at, option="--at") or values.now(),
        dimensions=_dimensions(dimension),
    )
    with connection.signed_in() as api:
        event["team"] = resolve_team(api, team)
        result = api.record_usage([event])
    _report(result, json_output)


def _report(result: UsageRecorded, json_output: bool) -> None:
    [outcome] = result.results
    if outcome.status == "rejected" and not json_output:
        raise CliError(f"refused: {outcome.detail} ({outcome.code})", exit_code=EXIT_API_ERROR)
    message = {
        "accepted": f"Recorded {outcome.id}.",
        "duplicate": f"Already recorded: {outcome.id} (nothing changed).",
        "rejected": f"Refused {outcome.id}: {outcome.detail}",
    }[outcome.status]
    show(result, json_output, lambda: typer.echo(message))


def _summary_rows(found: UsageSummary, by: str | None) -> None:
    columns = [("METER", lambda r: r.meter)]
    if by:
        columns.append((by.upper(), lambda r: r.group or "(none)"))
    columns += [
        ("QUANTITY", lambda r: r.quantity),
        ("UNIT", lambda r: r.unit),
        ("EVENTS", lambda r: r.events),
    ]
    print_table(found.rows, columns, empty="No usage in this period.")


@app.command("summary")
def summary(
    team: TeamArg,
    days: Annotated[int, typer.Option("--days", min=1, max=400, help="How far back.")] = 30,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Also group by member, provider or model."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """A team's usage per meter over the last days."""
    if by is not None and by not in ("member", "provider", "model"):
        raise CliError(f"--by: expected member, provider or model, not {by!r}")
    since = values.now() - timedelta(days=days)
    with connection.signed_in() as api:
        found = api.team_usage(resolve_team(api, team), since=since, group_by=by)
    show(found, json_output, lambda: _summary_rows(found, by))
