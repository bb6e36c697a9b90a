"""`tenantry analytics usage|dashboard|recommendations TEAM`: seed 001's analytics of a team
(docs/spend.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, print_table, show
from tenantry.cli.teams import resolve_team

app = typer.Typer(no_args_is_help=True, help="Analytics of a team: usage, dashboard, savings.")
TeamArg = Annotated[str, typer.Argument(help="Team id, or ORG/TEAM-SLUG.", show_default=False)]
DaysOpt = Annotated[int, typer.Option(help="Days back from now (1-400).")]


@app.command("usage")
def usage(team: TeamArg, days: DaysOpt = 30, json_output: JsonFlag = False) -> None:
    """Requests, cost, tokens, latency and success per model over the last days."""
    with connection.signed_in() as api:
        found = api.team_analytics(resolve_team(api, team), include=["usage"], days=days)
    data: dict[str, Any] = found.usage or {}

    def render() -> None:
        typer.echo(
            f"Last {days} days: {data.get('total_requests', 0)} requests, "
            f"${data.get('total_cost', '0')} (${data.get('cost_per_request', '0')} a request)"
        )
        rows = list((data.get("by_model") or {}).values())
        columns = [
            ("MODEL", lambda m: f"{m['provider']}/{m['model']}"),
            ("REQUESTS", lambda m: m["requests"]),
            ("COST", lambda m: m["cost"]),
            ("$/REQUEST", lambda m: m["cost_per_request"]),
            ("SUCCESS", lambda m: f"{m['success_rate']:.1%}"),
            ("P50 MS", lambda m: m["latency_p50_ms"] if m["latency_p50_ms"] is not None else ""),
            ("P95 MS", lambda m: m["latency_p95_ms"] if m["latency_p95_ms"] is not None else ""),
        ]
        print_table(rows, columns, empty="No calls in this window.")

    show(found, json_output, render)


@app.command("dashboard")
def dashboard(
    team: TeamArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write the JSON to.")],
    days: DaysOpt = 30,
) -> None:
    """Every section of the team's analytics (usage, insights, compliance) into a JSON file."""
    with connection.signed_in() as api:
        found = api.team_analytics(resolve_team(api, team), days=days)
    output.write_text(json.dumps(found.model_dump(mode="json"), indent=2) + "\n")
    insights = found.insights or {}
    savings = (insights.get("cost_optimization_opportunities") or {}).get("potential_savings")
    typer.echo(
        f"Wrote {output}: efficiency score {insights.get('efficiency_score')}, "
        f"potential savings ${savings} a month"
    )


@app.command("recommendations")
def recommendations(team: TeamArg, days: DaysOpt = 30, json_output: JsonFlag = False) -> None:
    """How the team could spend less, largest saving first, with what each is computed from."""
    with connection.signed_in() as api:
        found = api.team_analytics(resolve_team(api, team), include=["insights"], days=days)
    opportunities = (found.insights or {}).get("cost_optimization_opportunities") or {}

    def render() -> None:
        typer.echo(f"Potential savings: ${opportunities.get('potential_savings', '0')} a month")
        columns = [
            ("PRIORITY", lambda r: r["priority"]),
            ("CATEGORY", lambda r: r["category"]),
            ("SAVES/MONTH", lambda r: r["estimated_monthly_savings"]),
            ("EFFORT", lambda r: r["implementation_effort"]),
            ("WHAT", lambda r: r["title"]),
        ]
        rows = opportunities.get("recommendations") or []
        print_table(rows, columns, empty="Nothing to save on: no cheaper fit found.")

    show(found, json_output, render)
