"""Webhooks benchmark: how fast the worker delivers, and whether a receiver that is down slows
the request that caused the event.

- Throughput: N events written to the outbox of an org whose endpoint is a local receiver (a
  threaded HTTP server in a process of its own, keep-alive), then delivered by the worker's task
  (`webhooks.tasks.deliver_due`: claim, sign, send in parallel, record) until none is left;
  deliveries per second, beside the same number of plain signed POSTs to the same receiver
  with the same parallelism and no database (the floor), and the ratio of the two. Target:
  >= 200 deliveries/s.
- Receiver down: `POST .../webhooks/{id}/test` (a request that emits an event) to a `uvicorn
  tenantry.asgi:app` process, for an endpoint whose receiver answers and one whose receiver
  accepts connections and never answers, interleaved, while the worker delivers to both in the
  background; the ratio of the medians of their latencies. Target: <= 1.1 (not slower).

    .venv/bin/python bench/webhooks.py [--quick] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit import DEFAULT_POSTGRES_SERVER, log, scratch_sqlite, throwaway_postgres
from metering import free_port, tenant
from spend import server as api_server
from tenantry.config import Settings
from tenantry.kit.clock import SystemClock
from tenantry.kit.db import Database
from tenantry.kit.ids import new_id
from tenantry.webhooks import outbox, tasks
from tenantry.webhooks.delivery import signed_headers
from tenantry.webhooks.secrets import new_secret

SIZES = {
    "quick": {"deliveries": 400, "requests": 40},
    "full": {"deliveries": 4000, "requests": 400},
}
TARGET_PER_S = 200
TARGET_DOWN_RATIO = 1.1
CONCURRENCY = 16


# ---- the receivers ----


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def run_receiver(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Answer)
    server.daemon_threads = True
    server.request_queue_size = 256
    print("ready", flush=True)
    server.serve_forever()


@contextmanager
def receiver() -> Iterator[str]:
    """The answering receiver, in a process of its own (it does not share the bench's GIL)."""
    port = free_port()
    command = [sys.executable, __file__, "--receiver", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def black_hole() -> Iterator[str]:
    """A receiver that is down the slow way: it takes connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"


# ---- throughput ----


def _settings(url: str) -> Settings:
    return Settings(
        database_url=url,
        secret_key="bench-" + "x" * 40,
        webhooks_allow_private_urls=True,
        webhooks_concurrency=CONCURRENCY,
        webhooks_timeout_seconds=2,
        # The receiver that is down stays subscribed for the whole run.
        webhooks_disable_after_failures=10**9,
        data_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "tenantry-bench-data",
    )


def _endpoint(http: httpx.Client, base: str, who: dict[str, str], url: str) -> dict[str, Any]:
    body = {"url": url, "event_types": ["budget.exceeded"]}
    headers = {"Authorization": f"Bearer {who['key']}"}
    resp = http.post(f"{base}/api/v1/orgs/{who['org']}/webhooks", headers=headers, json=body)
    resp.raise_for_status()
    return dict(resp.json())


def _enqueue(db: Database, org_id: str, count: int) -> None:
    now = datetime.now(UTC)
    with db.session(write=True) as session:
        for i in range(count):
            outbox.enqueue(
                session,
                org_id=org_id,
                event_type="budget.exceeded",
                event_id=new_id("msg"),
                occurred_at=now,
                data={"budget_id": "bud_bench", "spent": "100", "amount": "100", "n": i},
            )
        session.commit()


def floor(url: str, count: int) -> float:
    """Plain signed POSTs to the receiver, as parallel as the worker's: requests per second."""
    secret = new_secret()
    body = json.dumps({"type": "budget.exceeded", "data": {"n": 0}})
    with httpx.Client(limits=httpx.Limits(max_connections=CONCURRENCY * 2)) as http:

        def one(i: int) -> None:
            headers = signed_headers(secret, message_id=f"msg_{i}", body=body, at=datetime.now(UTC))
            http.post(url, content=body, headers=headers).raise_for_status()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            list(pool.map(one, range(count)))
        return count / (time.perf_counter() - started)


def throughput(db_url: str, base: str, who: dict[str, str], count: int) -> dict[str, Any]:
    settings = _settings(db_url)
    db = Database(db_url)
    try:
        with receiver() as url, httpx.Client(timeout=30) as http:
            _endpoint(http, base, who, url)
            floor(url, 50)  # warm
            _enqueue(db, who["org"], count)
            log(f"webhooks: delivering {count} events")
            started = time.perf_counter()
            delivered = 0
            while delivered < count:
                report = tasks.deliver_due(db, settings, clock=SystemClock(), batches=1000)
                assert report.failed == 0, report
                if report.attempted == 0:
                    raise RuntimeError(f"only {delivered} of {count} delivered")
                delivered += report.succeeded
            took = time.perf_counter() - started
            log(f"webhooks: {count} plain signed POSTs (the floor)")
            plain = floor(url, count)
    finally:
        db.dispose()
    per_s = count / took
    return {
        "deliveries": count,
        "deliveries_per_s": round(per_s, 1),
        "plain_posts_per_s": round(plain, 1),
        "ratio_to_plain_posts": round(per_s / plain, 3),
    }


# ---- a receiver that is down ----


def receiver_down(db_url: str, base: str, who: dict[str, str], total: int) -> dict[str, Any]:
    settings = _settings(db_url)
    db = Database(db_url)
    stop = threading.Event()

    def work() -> None:  # the worker, delivering to both receivers meanwhile
        while not stop.is_set():
            tasks.deliver_due(db, settings, clock=SystemClock(), batches=1)
            stop.wait(0.05)

    headers = {"Authorization": f"Bearer {who['key']}"}
    try:
        with receiver() as up_url, black_hole() as down_url, httpx.Client(timeout=30) as http:
            up = _endpoint(http, base, who, up_url)
            down = _endpoint(http, base, who, down_url)

            def emit(endpoint: dict[str, Any]) -> float:
                path = f"{base}/api/v1/orgs/{who['org']}/webhooks/{endpoint['id']}/test"
                started = time.perf_counter()
                http.post(path, headers=headers).raise_for_status()
                return time.perf_counter() - started

            for _ in range(10):
                emit(up), emit(down)
            worker = threading.Thread(target=work, daemon=True)
            worker.start()
            log(f"webhooks: {total} events each for a receiver that answers and one that is down")
            up_times, down_times = [], []
            for _ in range(total):
                up_times.append(emit(up))
                down_times.append(emit(down))
            stop.set()
            worker.join()
    finally:
        db.dispose()
    p50_up, p50_down = statistics.median(up_times), statistics.median(down_times)
    return {
        "requests_each": total,
        "p50_ms_receiver_up": round(p50_up * 1000, 3),
        "p50_ms_receiver_down": round(p50_down * 1000, 3),
        "ratio_down_to_up": round(p50_down / p50_up, 3),
    }


def bench_database(url: str, size: dict[str, Any]) -> dict[str, Any]:
    os.environ["TENANTRY_WEBHOOKS_ALLOW_PRIVATE_URLS"] = "true"  # the receivers are on loopback
    data = Path(os.environ.get("TMPDIR", "/tmp")) / "tenantry-bench-data"
    with api_server(url, data) as base, httpx.Client(timeout=30) as http:
        who = tenant(base, http)
        return {
            "throughput": throughput(url, base, who, size["deliveries"]),
            "receiver_down": receiver_down(url, base, tenant(base, http), size["requests"]),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (as CI runs it)")
    parser.add_argument("--database-url", help="only this database (sqlite:/// or postgresql://)")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)  # the receiver process
    args = parser.parse_args(argv)
    if args.receiver:
        run_receiver(args.receiver)
        return 0
    size = SIZES["quick" if args.quick else "full"]
    report: dict[str, Any] = {"size": "quick" if args.quick else "full"}
    targets = [args.database_url] if args.database_url else ["sqlite", DEFAULT_POSTGRES_SERVER]
    for target in targets:
        if target.startswith("sqlite"):
            with scratch_sqlite(None if target == "sqlite" else target) as url:
                report["sqlite"] = bench_database(url, size)
        else:
            with throwaway_postgres(target) as url:
                report["postgresql"] = bench_database(url, size)
    dialects = [d for d in ("sqlite", "postgresql") if d in report]
    report["targets"] = {
        "deliveries_per_s_min": TARGET_PER_S,
        "deliveries_per_s_met": {
            d: report[d]["throughput"]["deliveries_per_s"] >= TARGET_PER_S for d in dialects
        },
        "ratio_down_to_up_max": TARGET_DOWN_RATIO,
        "receiver_down_not_slower": {
            d: report[d]["receiver_down"]["ratio_down_to_up"] <= TARGET_DOWN_RATIO for d in dialects
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
