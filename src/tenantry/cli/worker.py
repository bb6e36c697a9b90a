"""`tenantry worker`: run the background worker here (like `serve`, not through the API)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from tenantry.cli.output import EXIT_API_ERROR, JsonFlag, print_json, settings_or_exit

if TYPE_CHECKING:
    from tenantry.worker import WorkerReport

DEFAULT_INTERVAL_SECONDS = 300.0


def describe(report: WorkerReport) -> str:
    retention, checkpoints = report.retention, report.checkpoints
    line = (
        f"{report.started_at:%Y-%m-%d %H:%M:%S} UTC: purged {retention.purged_events} audit "
        f"events from {len(retention.purged_chains)} chains; signed "
        f"{len(checkpoints.checkpointed_chains)} periodic checkpoints; forgot "
        f"{report.expired_idempotency_records} expired idempotency records; closed "
        f"{report.billing.periods_closed} billing periods, issued "
        f"{len(report.billing.invoices)} invoices, made {len(report.billing.payments)} payment "
        "attempts"
    )
    failed = sorted(set(retention.failed_chains) | set(checkpoints.failed_chains))
    failed += sorted(report.billing.failed)
    return line + (f"; FAILED on {', '.join(failed)} (see the log)" if failed else "")


@contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and Ctrl-C end the loop after the pass in progress, never halfway through a
    chain's transaction."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def worker(
    once: Annotated[bool, typer.Option("--once", help="Run one pass and exit.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=1.0, help="Seconds between passes.")
    ] = DEFAULT_INTERVAL_SECONDS,
    json_output: JsonFlag = False,
) -> None:
    """Run background work: audit retention purges, periodic audit checkpoints, expiry of
    idempotency records, leases and reservations, and billing (period invoices, automatic
    payments). Several workers may run at once."""
    # The server stack, imported here so that no other command pays for it at start-up.
    from tenantry.runtime import migrate
    from tenantry.worker import run, run_once

    settings = settings_or_exit()
    if settings.uses_embedded_database():
        migrate(settings)  # as `serve` does: the embedded database migrates itself

    def report(result: WorkerReport) -> None:
        if json_output:
            print_json(result.as_dict())
        else:
            typer.echo(describe(result))

    if once:
        result = run_once(settings)
        report(result)
        if result.failed:
            raise typer.Exit(EXIT_API_ERROR)
        return
    stop = threading.Event()
    typer.echo(
        f"Worker started at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC; a pass every "
        f"{interval:g}s (Ctrl-C to stop)",
        err=True,
    )
    with _stopped_by_signals(stop):
        run(settings, interval=interval, stop=stop, on_report=report)
