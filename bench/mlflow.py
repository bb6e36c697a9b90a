"""The MLflow face beside a real `mlflow server`, side by side on this machine.

    .venv/bin/python bench/mlflow.py --quick                  # smoke size, SQLite only
    .venv/bin/python bench/mlflow.py                          # full: SQLite and PostgreSQL
    .venv/bin/python bench/mlflow.py --mlflow-python /path/to/venv/bin/python

The real server is installed by this script into a virtual environment of its own under a
temporary folder (`pip install mlflow psycopg2-binary`: the newest release that installs here;
if the newest does not, the next ones down are tried), unless `--mlflow-python` names one
already made. It runs with its default worker settings and with one worker, against a SQLite
file and a PostgreSQL database (127.0.0.1:5432), as Tenantry does (one process, uvicorn).

The same client code drives both: the REST calls MLflow's client makes (`/api/2.0/mlflow/…`),
from the same number of threads, each with a keep-alive connection. Rows:

- runs created per second (`runs/create`);
- `log-batch` of 10 and of 500 metrics: batches and metrics per second;
- single `log-metric` per second;
- `search-runs` p50 over 10,000 runs (a metric filter, a param filter, ordered by the metric);
- `get-history` p50 over 10,000 points of one metric;
- the server's processes, their resident memory (summed), and its start time until it answers.

Prints a table on stderr and one JSON object on stdout. Not a test: CI runs none of it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "bench passphrase 1234"
PG = "postgresql://postgres@127.0.0.1:5432"


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- processes ----


def tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


@dataclass
class Server:
    name: str
    uri: str  # the tracking URI
    headers: dict[str, str]
    process: subprocess.Popen[bytes]
    ready_s: float
    facts: dict[str, Any] = field(default_factory=dict)


def _wait(url: str, process: subprocess.Popen[bytes], limit: float) -> float:
    start = time.monotonic()
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() - start > limit:
            raise RuntimeError(f"the server at {url} did not start")
        time.sleep(0.05)


@contextmanager
def mlflow_server(python: str, backend: str, workers: int | None, folder: Path) -> Iterator[Server]:
    port = free_port()
    command = [python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", backend, "--artifacts-destination", str(folder / "art")]
    if workers is not None:
        command += ["--workers", str(workers)]
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{port}/health", process, 300)
        ready = time.monotonic() - started
        name = f"mlflow server ({'default workers' if workers is None else f'{workers} worker'})"
        yield Server(name, f"http://127.0.0.1:{port}", {}, process, ready)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def tenantry_server(url: str, folder: Path) -> Iterator[Server]:
    from tenantry.kit.migrations import upgrade

    upgrade(url)  # a deployment migrates once, before it starts
    port = free_port()
    env = {
        **os.environ,
        "TENANTRY_DATABASE_URL": url,
        "TENANTRY_DATA_DIR": str(folder / "data"),
        "TENANTRY_SECRET_KEY": "bench-" + "x" * 40,
    }
    command = [sys.executable, "-m", "uvicorn", "tenantry.asgi:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--timeout-keep-alive", "120"]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(f"{base}/readyz", process, 60)
        ready = time.monotonic() - started
        uri, headers = _tenant(base, url)
        yield Server("tenantry (1 process)", uri, headers, process, ready)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _tenant(base: str, url: str) -> tuple[str, dict[str, str]]:
    """An org on the enterprise plan, rate limits out of the way, and an API key: its default
    team's tracking URI and the key's header."""
    from tenantry.kit.db import Database
    from tenantry.operator import service as operators

    with httpx.Client(base_url=base, timeout=30) as http:
        email = f"bench-{secrets.token_hex(4)}@example.com"
        body = {"company_name": f"Bench {secrets.token_hex(2)}", "admin_email": email}
        made = http.post("/api/v1/onboard", json={**body, "admin_password": PASSWORD}).json()
        owner = {"Authorization": f"Bearer {made['access_token']}"}
        org = made["organization"]
        team = http.get(f"/api/v1/teams/{made['team']['id']}", headers=owner).json()
        ops_email = f"bench-operator-{secrets.token_hex(4)}@example.com"
        signed = http.post("/api/v1/auth/signup", json={"email": ops_email, "password": PASSWORD})
        db = Database(url)
        try:
            with db.session(write=True) as session:
                user = operators.user_by_email(session, ops_email)
                assert user is not None
                operators.add_operator(session, user, now=datetime.now(UTC), by="bench")
                session.commit()
        finally:
            db.dispose()
        ops = {"Authorization": f"Bearer {signed.json()['access_token']}"}
        http.put(
            f"/api/v1/operator/tenants/{org['id']}/plan", headers=ops, json={"plan": "enterprise"}
        ).raise_for_status()
        limits = dict.fromkeys(
            ("org_per_minute", "org_burst", "key_per_minute", "key_burst"), 10**7
        )
        http.put(
            f"/api/v1/operator/tenants/{org['id']}/plan-overrides",
            headers=ops,
            json={"rate_limits": limits},
        ).raise_for_status()
        key = http.post(f"/api/v1/orgs/{org['id']}/api-keys", headers=owner, json={"name": "b"})
        key.raise_for_status()
    uri = f"{base}/mlflow/{org['slug']}/{team['slug']}"
    return uri, {"Authorization": f"Bearer {key.json()['secret']}"}


# ---- load ----


class Api:
    """One client thread's connection. A request the server dropped unanswered (a worker of the
    real server restarting, a keep-alive connection closed as it was reused) is sent again, up
    to three times, on a new connection."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = self._connect()

    def _connect(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.uri, headers=self.server.headers, timeout=300)

    def _send(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        for attempt in range(4):
            try:
                resp = self.http.request(method, f"/api/2.0/mlflow/{path}", **kw)
                break
            except httpx.TransportError:
                if attempt == 3:
                    raise
                self.http.close()
                self.http = self._connect()
        if resp.status_code != 200:
            raise RuntimeError(f"{path}: {resp.status_code} {resp.text[:300]}")
        out: dict[str, Any] = resp.json()
        return out

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", path, json=body)

    def get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._send("GET", path, params=params)

    def close(self) -> None:
        self.http.close()


def in_threads(server: Server, threads: int, total: int, call: Callable[[Api, int], None]) -> float:
    """`total` calls shared by `threads` threads, each with its own connection; per second."""
    counter = iter(range(total))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        api = Api(server)
        try:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                call(api, n)
        except BaseException as exc:  # reported after the run
            errors.append(exc)
        finally:
            api.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return total / elapsed


def experiment(api: Api, name: str) -> str:
    return str(api.post("experiments/create", {"name": name})["experiment_id"])


def new_run(api: Api, experiment_id: str) -> str:
    body = {"experiment_id": experiment_id, "start_time": int(time.time() * 1000)}
    return str(api.post("runs/create", body)["run"]["info"]["run_id"])


def batch(api: Api, run_id: str, size: int, step: int) -> None:
    now = int(time.time() * 1000)
    metrics = [
        {"key": f"m{i % 10}", "value": i * 0.5, "timestamp": now, "step": step} for i in range(size)
    ]
    api.post("runs/log-batch", {"run_id": run_id, "metrics": metrics})


def throughput(server: Server, size: dict[str, int], threads: int) -> dict[str, Any]:
    api = Api(server)
    try:
        exp = experiment(api, f"throughput-{secrets.token_hex(3)}")
        run_ids = [new_run(api, exp) for _ in range(threads)]
    finally:
        api.close()
    out: dict[str, Any] = {}
    out["runs_created_per_s"] = round(
        in_threads(server, threads, size["runs"], lambda a, n: (new_run(a, exp), None)[1]), 1
    )
    for batch_size, total in ((10, size["batch10"]), (500, size["batch500"])):
        per_s = in_threads(
            server, threads, total, lambda a, n, b=batch_size: batch(a, run_ids[n % threads], b, n)
        )
        out[f"log_batch_{batch_size}_per_s"] = round(per_s, 1)
        out[f"log_batch_{batch_size}_metrics_per_s"] = round(per_s * batch_size, 1)

    def one(a: Api, n: int) -> None:
        body = {
            "run_id": run_ids[n % threads],
            "key": "loss",
            "value": 0.1,
            "timestamp": n,
            "step": n,
        }
        a.post("runs/log-metric", body)

    out["log_metric_per_s"] = round(in_threads(server, threads, size["metric"], one), 1)
    return out


@dataclass
class Seeded:
    experiment_id: str
    history_run: str


def seed(server: Server, size: dict[str, int], threads: int) -> Seeded:
    """`size["runs_searched"]` runs, each with a loss and an optimizer, and one run with
    `size["points"]` points of one metric."""
    api = Api(server)
    try:
        exp = experiment(api, f"search-{secrets.token_hex(3)}")
        history = new_run(api, exp)
        now = int(time.time() * 1000)
        for start in range(0, size["points"], 500):
            points = [
                {"key": "loss", "value": 1 / (s + 1), "timestamp": now, "step": s}
                for s in range(start, min(start + 500, size["points"]))
            ]
            api.post("runs/log-batch", {"run_id": history, "metrics": points})
    finally:
        api.close()

    def make(a: Api, n: int) -> None:
        run = new_run(a, exp)
        a.post(
            "runs/log-batch",
            {
                "run_id": run,
                "metrics": [
                    {"key": "loss", "value": (n % 1000) / 1000, "timestamp": now, "step": 0}
                ],
                "params": [{"key": "optimizer", "value": "adam" if n % 2 else "sgd"}],
            },
        )

    in_threads(server, threads, size["runs_searched"], make)
    return Seeded(exp, history)


def latencies(server: Server, seeded: Seeded, size: dict[str, int]) -> dict[str, Any]:
    api = Api(server)
    try:
        search = {
            "experiment_ids": [seeded.experiment_id],
            "filter": "metrics.loss < 0.5 and params.optimizer = 'adam'",
            "order_by": ["metrics.loss ASC"],
            "max_results": 100,
        }
        found = api.post("runs/search", search)
        assert len(found.get("runs", [])) == 100, "search found too few runs"
        searched = []
        for _ in range(size["queries"]):
            start = time.perf_counter()
            api.post("runs/search", search)
            searched.append(time.perf_counter() - start)
        params = {"run_id": seeded.history_run, "metric_key": "loss", "max_results": 25000}
        points = api.get("metrics/get-history", params)
        assert len(points["metrics"]) == size["points"], "history is short"
        histories = []
        for _ in range(size["queries"]):
            start = time.perf_counter()
            api.get("metrics/get-history", params)
            histories.append(time.perf_counter() - start)
    finally:
        api.close()
    return {
        "search_runs_p50_ms": round(statistics.median(searched) * 1000, 1),
        "get_history_p50_ms": round(statistics.median(histories) * 1000, 1),
    }


def measure(
    server: Server, size: dict[str, int], threads: int, seeded: Seeded | None
) -> tuple[dict[str, Any], Seeded]:
    log(f"  {server.name}: ready in {server.ready_s:.1f} s")
    figures: dict[str, Any] = {"ready_s": round(server.ready_s, 2)}
    figures |= throughput(server, size, threads)
    if seeded is None:
        log(f"  seeding {size['runs_searched']} runs and {size['points']} points")
        seeded = seed(server, size, threads)
    figures |= latencies(server, seeded, size)
    pids = tree(server.process.pid)
    figures["processes"] = len(pids)
    figures["rss_mb"] = rss_mb(pids)
    log(f"  {json.dumps(figures)}")
    return figures, seeded


# ---- the real server's environment ----


def mlflow_python(folder: Path) -> tuple[str, str]:
    """A virtual environment with the newest mlflow that installs here: (python, version)."""
    venv = folder / "mlflow-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    versions = subprocess.run(
        [python, "-m", "pip", "index", "versions", "mlflow"], capture_output=True, text=True
    ).stdout
    listed = next((line for line in versions.splitlines() if "Available versions" in line), "")
    candidates = [v.strip() for v in listed.split(":", 1)[-1].split(",") if v.strip()][:5]
    for version in candidates or [""]:
        spec = f"mlflow=={version}" if version else "mlflow"
        log(f"installing {spec} into {venv}")
        done = subprocess.run(
            [python, "-m", "pip", "install", "-q", spec, "psycopg2-binary"],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0:
            return python, version or "latest"
        log(f"  {spec} does not install here: {done.stderr.strip().splitlines()[-1:]}")
    raise RuntimeError("no release of mlflow installs here")


def _pg_database(name: str) -> str:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG}/{name}"


def _drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- the run ----

SIZES = {
    "quick": {
        "runs": 200, "batch10": 200, "batch500": 40, "metric": 300,
        "runs_searched": 1000, "points": 10_000, "queries": 15,
    },
    "full": {
        "runs": 2000, "batch10": 2000, "batch500": 300, "metric": 3000,
        "runs_searched": 10_000, "points": 10_000, "queries": 40,
    },
}  # fmt: skip

ROWS = [
    ("runs_created_per_s", "runs created /s", "more"),
    ("log_batch_10_per_s", "log-batch of 10 /s", "more"),
    ("log_batch_10_metrics_per_s", "  metrics /s", "more"),
    ("log_batch_500_per_s", "log-batch of 500 /s", "more"),
    ("log_batch_500_metrics_per_s", "  metrics /s", "more"),
    ("log_metric_per_s", "log-metric /s", "more"),
    ("search_runs_p50_ms", "search-runs p50 ms", "less"),
    ("get_history_p50_ms", "get-history p50 ms", "less"),
    ("ready_s", "ready in s", "less"),
    ("processes", "processes", "less"),
    ("rss_mb", "RSS MB", "less"),
]


def table(backend: str, columns: dict[str, dict[str, Any]]) -> None:
    names = list(columns)
    log(f"\n{backend}")
    log(f"{'':24}" + "".join(f"{n[:26]:>28}" for n in names) + f"{'ratio':>10}")
    ours = columns.get("tenantry (1 process)", {})
    theirs = [c for n, c in columns.items() if n != "tenantry (1 process)"]
    for key, label, better in ROWS:
        cells = "".join(f"{columns[n].get(key, '-')!s:>28}" for n in names)
        ratio = ""
        best = [c[key] for c in theirs if isinstance(c.get(key), int | float) and c[key]]
        if key in ours and best and ours[key]:
            value = max(best) if better == "more" else min(best)
            ratio = f"{(ours[key] / value if better == 'more' else value / ours[key]):.1f}x"
        log(f"{label:24}{cells}{ratio:>10}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke size, SQLite only")
    parser.add_argument("--mlflow-python", help="a python with mlflow and psycopg2 installed")
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--backends", default=None, help="sqlite,postgresql")
    parser.add_argument(
        "--servers", default="mlflow,tenantry", help="which to run (default both: mlflow,tenantry)"
    )
    args = parser.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    backends = (args.backends or ("sqlite" if args.quick else "sqlite,postgresql")).split(",")
    result: dict[str, Any] = {"threads": args.threads, "size": size}
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as temp:
        folder = Path(temp)
        servers = args.servers.split(",")
        python = ""
        if "mlflow" in servers:
            if args.mlflow_python:
                python, version = args.mlflow_python, "given"
            else:
                python, version = mlflow_python(folder)
            result["mlflow"] = (
                subprocess.run(
                    [python, "-c", "import mlflow; print(mlflow.__version__)"],
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                or version
            )
            log(f"mlflow {result['mlflow']}")
        for backend in backends:
            columns: dict[str, dict[str, Any]] = {}
            tag = secrets.token_hex(3)
            if backend == "sqlite":
                theirs_url = f"sqlite:///{folder}/mlflow-{tag}.db"
                ours_url = f"sqlite:///{folder}/tenantry-{tag}.db"
            else:
                theirs_url = _pg_database(f"bench_mlflow_{tag}")
                ours_url = _pg_database(f"bench_tenantry_{tag}")
            try:
                log(f"{backend}:")
                seeded = None
                for workers in (None, 1) if "mlflow" in servers else ():
                    with mlflow_server(python, theirs_url, workers, folder / f"m{tag}") as real:
                        columns[real.name], seeded = measure(real, size, args.threads, seeded)
                if "tenantry" in servers:
                    with tenantry_server(ours_url, folder / f"t{tag}") as ours:
                        columns[ours.name], _ = measure(ours, size, args.threads, None)
            finally:
                if backend != "sqlite":
                    _drop_pg(theirs_url.rsplit("/", 1)[1])
                    _drop_pg(ours_url.rsplit("/", 1)[1])
            result[backend] = columns
            table(backend, columns)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
