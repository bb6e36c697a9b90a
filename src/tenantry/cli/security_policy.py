"""`tenantry security-policy show|set`: an organization's security policy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tenantry.cli import connection
from tenantry.cli.output import CliError, JsonFlag, print_json

if TYPE_CHECKING:
    from tenantry.client.models import SecurityPolicy

app = typer.Typer(no_args_is_help=True, help="An organization's security policy: show, set.")

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
SECTIONS = ("password", "mfa", "sessions")


def _render(policy: SecurityPolicy) -> None:
    def line(section: str, rules: dict[str, Any]) -> None:
        shown = [f"{k}={v}" for k, v in rules.items() if v not in (None, False, 0, [])]
        typer.echo(f"{section:<10} {', '.join(shown) if shown else '(no rule)'}")

    line("password", policy.password)
    line("mfa", policy.mfa)
    line("sessions", policy.sessions)
    typer.echo(f"{'ip':<10} {', '.join(policy.ip_allowlist) or '(any address)'}")
    typer.echo(f"{'sso':<10} {'enforced' if policy.sso_enforced else 'not enforced'}")


@app.command("show")
def show(org: OrgArg, json_output: JsonFlag = False) -> None:
    """Show the policy: password rules, MFA, session timeouts, IP allowlist, SSO."""
    with connection.signed_in() as api:
        policy = api.security_policy(org)
    if json_output:
        print_json(policy)
    else:
        _render(policy)


def _value(raw: str) -> Any:
    """A rule's value as typed: true/false, none, a number, else the text."""
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null", ""):
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


@app.command("set")
def set_(
    org: OrgArg,
    rules: Annotated[
        list[str] | None,
        typer.Argument(
            help="Rules to change, as section.rule=value: password.min_length=14, "
            "mfa.required=true, mfa.grace_days=7, sessions.idle_timeout_minutes=60, "
            "ip_allowlist=10.0.0.0/8,192.0.2.0/24. Other rules stay as they are.",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="The whole policy as JSON ('-' reads standard input).", dir_okay=False
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Change the policy (admins): some rules, or the whole policy from a JSON file."""
    with connection.signed_in() as api:
        if file is not None:
            text = sys.stdin.read() if str(file) == "-" else file.read_text()
            try:
                wanted = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CliError(f"--file: not JSON ({exc})") from None
        else:
            if not rules:
                raise CliError("name rules to change (section.rule=value) or give --file")
            current = api.security_policy(org)
            wanted = {
                "password": dict(current.password),
                "mfa": {k: v for k, v in current.mfa.items() if k in ("required", "grace_days")},
                "sessions": dict(current.sessions),
                "ip_allowlist": list(current.ip_allowlist),
            }
            for rule in rules:
                name, sep, raw = rule.partition("=")
                if not sep:
                    raise CliError(f"{rule!r}: write section.rule=value")
                if name == "ip_allowlist":
                    wanted["ip_allowlist"] = [c.strip() for c in raw.split(",") if c.strip()]
                    continue
                section, _, key = name.partition(".")
                if section not in SECTIONS or not key:
                    raise CliError(f"{name!r}: not a rule (sections: {', '.join(SECTIONS)})")
                wanted[section][key] = _value(raw)
        if not isinstance(wanted, dict):
            raise CliError("--file: the policy is a JSON object")
        policy = api.set_security_policy(
            org,
            password=wanted.get("password"),
            mfa=wanted.get("mfa"),
            sessions=wanted.get("sessions"),
            ip_allowlist=wanted.get("ip_allowlist"),
        )
    if json_output:
        print_json(policy)
    else:
        _render(policy)
