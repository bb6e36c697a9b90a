"""`tenantry budget ...`: LLM spend budgets (docs/spend.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import JsonFlag, print_record, print_table, show
from tenantry.cli.teams import resolve_team

if TYPE_CHECKING:
    from tenantry.client.spend import Budget

app = typer.Typer(no_args_is_help=True, help="LLM spend budgets: set, list, show.")

COLUMNS = [
    ("ID", lambda b: b.id),
    ("NAME", lambda b: b.name),
    ("SCOPE", lambda b: b.scope),
    ("PERIOD", lambda b: b.period),
    ("AMOUNT", lambda b: b.amount),
    ("SPENT", lambda b: b.spent),
    ("HELD", lambda b: b.reserved),
    ("REMAINING", lambda b: b.remaining),
    ("ACTION", lambda b: b.exceeded_action),
]


@app.command("set")
def set_(
    target: Annotated[
        str,
        typer.Argument(
            metavar="ORG|TEAM", help="The org (id or slug) or team.", show_default=False
        ),
    ],
    amount: Annotated[str, typer.Argument(help="Dollars per period.", show_default=False)],
    scope: Annotated[str, typer.Option(help="team (default), member, org or api_key")] = "team",
    period: Annotated[str, typer.Option(help="day, week or month")] = "month",
    member: Annotated[str | None, typer.Option(help="A member budget's member")] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="An API key budget's key")
    ] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider's spend")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model's spend")] = None,
    threshold: Annotated[list[int] | None, typer.Option(help="Warning %, repeatable")] = None,
    restrict: Annotated[bool, typer.Option(help="Refuse what would pass it")] = False,
    name: Annotated[str | None, typer.Option(help="A name people know it by")] = None,
    json_output: JsonFlag = False,
) -> None:
    """A new budget (a member budget: --scope member --member EMAIL on a team)."""
    action = "restrict" if restrict else "notify"
    with connection.signed_in() as api:
        if member and scope == "team":
            scope = "member"
        if scope in ("team", "member"):
            found = api.create_team_budget(
                resolve_team(api, target), amount=amount, scope=scope, member=member,
                provider=provider, model_name=model, period=period, thresholds=threshold,
                exceeded_action=action, name=name,
            )  # fmt: skip
        else:
            found = api.create_budget(
                target, scope=scope, amount=amount, api_key=api_key, provider=provider,
                model_name=model, period=period, thresholds=threshold, exceeded_action=action,
                name=name,
            )  # fmt: skip
    show(found, json_output, lambda: print_record(found))


@app.command("list")
def list_(
    target: Annotated[
        str, typer.Argument(metavar="ORG|TEAM", help="An org, or a team.", show_default=False)
    ],
    json_output: JsonFlag = False,
) -> None:
    """The org's budgets, or those that apply to a team, with this period's spend."""
    with connection.signed_in() as api:
        is_team = target.startswith("team_") or "/" in target
        found = api.team_budgets(resolve_team(api, target)) if is_team else api.list_budgets(target)
    rows: list[Budget] = found.budgets
    show(
        found,
        json_output,
        lambda: print_table(rows, COLUMNS, empty="No budgets.", keep_whole=["ID"]),
    )


@app.command("show")
def show_(
    budget_id: Annotated[str, typer.Argument(show_default=False)], json_output: JsonFlag = False
) -> None:
    """One budget: its target, amount, and this period's spend, holds and what is left."""
    with connection.signed_in() as api:
        found = api.get_budget(budget_id)
    show(found, json_output, lambda: print_record(found))
