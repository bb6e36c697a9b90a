"""`tenantry ratelimit ...`: rate limits of an organization.

`show` prints the plan's limits, the org's own tighter ones and the effective ones, and today's
API calls against the daily quota; `set` tightens (each at most the plan's), `set` with no limit
clears the org's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, console, plain, show

if TYPE_CHECKING:
    from tenantry.client.throttling import RateLimits

app = typer.Typer(no_args_is_help=True, help="Rate limits of an organization.")

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
LIMITS = ("org_per_minute", "org_burst", "key_per_minute", "key_burst")


def _render(limits: RateLimits) -> None:
    from rich.table import Table  # only when printing for people: Rich is slow to import

    table = Table(show_edge=False, header_style="bold")
    for title in ("LIMIT", "PLAN", "OWN", "EFFECTIVE"):
        table.add_column(title)
    for name in LIMITS:
        own = getattr(limits.override, name) if limits.override else None
        table.add_row(
            name,
            plain(getattr(limits.plan_limits, name)),
            plain(own),
            plain(getattr(limits.effective, name)),
        )
    console().print(table)
    calls = limits.api_calls
    quota = "unlimited" if calls.limit is None else f"{calls.limit} ({calls.enforcement})"
    used = "unknown" if calls.used_today is None else str(calls.used_today)
    typer.echo(f"\nPlan: {limits.plan}   API calls today: {used} of {quota}")
    typer.echo(f"Resets at {plain(calls.resets_at)} UTC   Counters: {limits.store}")


@app.command("show")
def show_(org: OrgArg, json_output: JsonFlag = False) -> None:
    """Show an organization's rate limits and today's API calls."""
    with connection.signed_in() as api:
        limits = api.get_rate_limits(org)
    show(limits, json_output, lambda: _render(limits))


@app.command("set")
def set_(
    org: OrgArg,
    org_per_minute: Annotated[
        int | None, typer.Option("--org-per-minute", help="Requests a minute, whole org.", min=1)
    ] = None,
    org_burst: Annotated[
        int | None, typer.Option("--org-burst", help="Requests at once, whole org.", min=1)
    ] = None,
    key_per_minute: Annotated[
        int | None, typer.Option("--key-per-minute", help="Requests a minute, per API key.", min=1)
    ] = None,
    key_burst: Annotated[
        int | None, typer.Option("--key-burst", help="Requests at once, per API key.", min=1)
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Set the organization's own limits (each at most its plan's); limits not given keep the
    plan's, so `set ORG` alone goes back to the plan."""
    with connection.signed_in() as api:
        limits = api.set_rate_limits(
            org,
            org_per_minute=org_per_minute,
            org_burst=org_burst,
            key_per_minute=key_per_minute,
            key_burst=key_burst,
        )
    show(limits, json_output, lambda: _render(limits))
