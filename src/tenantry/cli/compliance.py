"""`tenantry compliance ...`: compliance reports of an org (docs/governance.md, "Compliance
reports")."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from tenantry.cli import connection
from tenantry.cli.output import CliError, JsonFlag, print_table, show

app = typer.Typer(no_args_is_help=True, help="Compliance reports: SOC 2, GDPR, HIPAA.")

OrgArg = Annotated[str, typer.Argument(help="Organization id or slug.", show_default=False)]
Output = Annotated[
    Path | None,
    typer.Option(
        "-o", "--output", dir_okay=False,
        help="Write the report to FILE: PDF when it ends in .pdf, else JSON.",
    ),
]  # fmt: skip


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a failed write leaves no half report behind."""
    partial = path.with_name(path.name + ".part")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)


def _day(text: str | None, name: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{name} is a day, YYYY-MM-DD, not {text!r}") from None


@app.command("report")
def report(
    org: OrgArg,
    framework: Annotated[str, typer.Option(help="soc2, gdpr or hipaa")],
    period: Annotated[str | None, typer.Option(help="A month, YYYY-MM (UTC)")] = None,
    since: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Last day, included")] = None,
    output: Output = None,
    json_output: JsonFlag = False,
) -> None:
    """Generate a report for a month (or from/to days) and write it as PDF or JSON."""
    with connection.signed_in() as api:
        found = api.create_compliance_report(
            org, framework=framework, period=period,
            since=_day(since, "--from"), until=_day(until, "--to"),
        )  # fmt: skip
        data = None
        if output is not None:
            data = (
                api.compliance_report_pdf(org, found.id)
                if output.suffix.lower() == ".pdf"
                else json.dumps(found.model_dump(mode="json"), indent=2).encode()
            )
    if output is not None and data is not None:
        _write(output, data)

    def render() -> None:
        integrity = next((s for s in found.sections if s["key"] == "audit_integrity"), None)
        typer.echo(f"{found.framework_title}, {found.period['label']}: report {found.id}")
        for key, counts in found.summary.items():
            listed = ", ".join(f"{k} {v}" for k, v in counts.items())
            typer.echo(f"  {key}: {listed or '-'}")
        if integrity is not None:
            state = "verified" if integrity["verified"] else "FAILED"
            typer.echo(f"  audit chain: {state} ({integrity['events_checked']} events)")
        typer.echo(f"  sha256 {found.digest}")
        if output is not None and data is not None:
            typer.echo(f"Wrote {output} ({len(data)} bytes).")

    show(found, json_output, render)


@app.command("list")
def list_reports(org: OrgArg, json_output: JsonFlag = False) -> None:
    """The org's reports, oldest first."""
    with connection.signed_in() as api:
        page = api.list_compliance_reports(org, limit=200)
    show(
        page.items,
        json_output,
        lambda: print_table(
            page.items,
            [
                ("ID", lambda r: r.id),
                ("FRAMEWORK", lambda r: r.framework),
                ("PERIOD", lambda r: r.period),
                ("GENERATED", lambda r: r.generated_at.isoformat()),
                ("BY", lambda r: r.trigger),
                ("SHA-256", lambda r: r.digest[:16]),
            ],
            empty="No compliance reports yet.",
            keep_whole=("ID",),
        ),
    )


@app.command("show")
def show_report(
    org: OrgArg,
    report_id: Annotated[str, typer.Argument(help="The report's id (crp_…).", show_default=False)],
    output: Output = None,
    json_output: JsonFlag = False,
) -> None:
    """One report; `-o FILE` writes it (PDF when FILE ends in .pdf)."""
    with connection.signed_in() as api:
        found = api.get_compliance_report(org, report_id)
        data = None
        if output is not None:
            data = (
                api.compliance_report_pdf(org, report_id)
                if output.suffix.lower() == ".pdf"
                else json.dumps(found.model_dump(mode="json"), indent=2).encode()
            )
    if output is not None and data is not None:
        _write(output, data)

    def render() -> None:
        typer.echo(f"{found.framework_title}, {found.period['label']}: report {found.id}")
        typer.echo(f"  generated {found.generated_at} ({found.trigger}), sha256 {found.digest}")
        if output is not None and data is not None:
            typer.echo(f"Wrote {output} ({len(data)} bytes).")

    show(found, json_output, render)


@app.command("schedule")
def schedule(
    org: OrgArg,
    framework: Annotated[
        list[str] | None, typer.Option(help="A framework to report monthly (repeatable)")
    ] = None,
    email: Annotated[list[str] | None, typer.Option(help="A recipient (repeatable)")] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop the monthly reports")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Show the monthly schedule, or set it with --framework/--email (or --off)."""
    with connection.signed_in() as api:
        if off or framework:
            found = api.set_compliance_schedule(
                org, frameworks=[] if off else list(framework or []), recipients=email
            )
        else:
            found = api.compliance_schedule(org)

    def render() -> None:
        if not found.frameworks:
            typer.echo("No monthly compliance reports.")
            return
        typer.echo(f"monthly: {', '.join(found.frameworks)}")
        typer.echo(f"emailed to: {', '.join(found.recipients) or '-'}")
        if found.next_run is not None:
            typer.echo(f"next run: {found.next_run.isoformat()}")

    show(found, json_output, render)
