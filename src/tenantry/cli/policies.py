"""`tenantry policy ...`: governance policies (docs/governance.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tenantry.cli import connection
from tenantry.cli.output import CliError, JsonFlag, print_record, print_table, show

app = typer.Typer(
    no_args_is_help=True,
    help="Governance policies: create, list, show, activate, disable, dry-run.",
)

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
PolicyArg = Annotated[str, typer.Argument(help="Policy id.", show_default=False)]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    if not isinstance(found, dict):
        raise CliError(f"{path} holds no JSON object")
    # Seed 001's request body works too: its `policy` is the policy.
    inner = found.get("policy")
    return inner if isinstance(inner, dict) and "action" in found else found


@app.command("create")
def create(
    org: OrgArg,
    file: Annotated[
        Path, typer.Option("--file", "-f", help="The policy as JSON (name, type, rules, ...)")
    ],
    team: Annotated[str | None, typer.Option(help="A team's policy (and its subteams')")] = None,
    active: Annotated[bool, typer.Option("--active", help="Active at once, not a draft")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Create a policy from a JSON file: the org's, or with --team a team's."""
    policy = _read_json(file)
    if active:
        policy["status"] = "active"
    with connection.signed_in() as api:
        if team:
            found = api.team_policy_action(team, policy)
        else:
            found = api.create_policy(org, **_known(policy))
    show(found, json_output, lambda: print_record(found))


def _known(policy: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "rules", "type", "description", "status", "exceptions")
    unknown = sorted(set(policy) - set(keys))
    if unknown:
        raise CliError(f"unknown policy fields: {', '.join(unknown)}")
    if "name" not in policy or "rules" not in policy:
        raise CliError("a policy has a name and rules")
    return {k: policy[k] for k in keys if k in policy}


@app.command("list")
def list_(org: OrgArg, json_output: JsonFlag = False) -> None:
    """Every policy of the org and its teams."""
    with connection.signed_in() as api:
        found = api.policies(org)
    columns = [
        ("ID", lambda p: p.id),
        ("NAME", lambda p: p.name),
        ("TYPE", lambda p: p.type),
        ("STATUS", lambda p: p.status),
        ("TEAM", lambda p: p.team_id or "(org)"),
        ("VERSION", lambda p: p.version),
    ]
    show(found, json_output, lambda: print_table(found.policies, columns, empty="No policies."))


@app.command("show")
def show_(policy_id: PolicyArg, json_output: JsonFlag = False) -> None:
    """A policy, its rules, exceptions and versions."""
    with connection.signed_in() as api:
        found = api.policy(policy_id)
    show(found, json_output, lambda: print_record(found))


@app.command("activate")
def activate(policy_id: PolicyArg, json_output: JsonFlag = False) -> None:
    """Enforce the policy in admission from now on."""
    with connection.signed_in() as api:
        found = api.activate_policy(policy_id)
    show(found, json_output, lambda: print_record(found, ["id", "name", "status", "version"]))


@app.command("disable")
def disable(policy_id: PolicyArg, json_output: JsonFlag = False) -> None:
    """Stop enforcing the policy."""
    with connection.signed_in() as api:
        found = api.disable_policy(policy_id)
    show(found, json_output, lambda: print_record(found, ["id", "name", "status", "version"]))


@app.command("dry-run")
def dry_run(
    policy_id: PolicyArg,
    days: Annotated[int, typer.Option(help="How many days of recorded calls to replay")] = 30,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Try these rules (a policy JSON) instead")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """What the policy would have denied or sent for approval over the last days' calls."""
    changed = _read_json(file) if file else {}
    with connection.signed_in() as api:
        found = api.dry_run_policy(
            policy_id, days=days, rules=changed.get("rules"), exceptions=changed.get("exceptions")
        )

    def render() -> None:
        typer.echo(f"{found.calls} calls replayed over {found.days} days")
        for outcome, tally in found.would.items():
            typer.echo(f"  would {outcome}: {tally['count']} calls, ${tally['cost']}")
        for title, table in (("member", found.by_member), ("model", found.by_model),
                             ("day", found.by_day)):  # fmt: skip
            for key, outcomes in table.items():
                for outcome, tally in outcomes.items():
                    typer.echo(f"  {title} {key}: {outcome} {tally['count']} (${tally['cost']})")

    show(found, json_output, render)
