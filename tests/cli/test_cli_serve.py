"""`tenantry serve`: several worker processes without Redis are warned about, loudly, before the
server starts (each process would count rate limits on its own). uvicorn itself is replaced by
a recorder: what matters is what `serve` says and hands it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tenantry import runtime
from tenantry.cli.main import app


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(runtime.uvicorn, "run", lambda *args, **kw: calls.append(kw))
    for name in ("TENANTRY_DATABASE_URL", "TENANTRY_SECRET_KEY", "TENANTRY_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TENANTRY_DATA_DIR", str(tmp_path / "data"))
    return calls


def serve(*args: str, **env: str) -> Any:
    result = CliRunner().invoke(app, ["serve", *args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_several_workers_without_redis_are_warned_about(started: list[dict[str, Any]]) -> None:
    result = serve("--workers", "4")
    assert result.exit_code == 0, result.stderr
    assert "WARNING: 4 worker processes and no TENANTRY_REDIS_URL" in result.stderr
    assert "up to 4 times what a plan allows" in result.stderr
    assert "TENANTRY_REDIS_URL" in result.stderr and "docs/rate-limits.md" in result.stderr
    assert started == [
        {"host": "127.0.0.1", "port": 8000, "workers": 4, "log_level": "info"}
    ]  # it still starts: the warning is advice, the operator decides


def test_one_worker_or_a_redis_url_is_not_warned_about(started: list[dict[str, Any]]) -> None:
    alone = serve()
    shared = serve("--workers", "3", TENANTRY_REDIS_URL="redis://127.0.0.1:6379/0")
    assert alone.exit_code == 0 and shared.exit_code == 0
    assert "WARNING" not in alone.stderr and "WARNING" not in shared.stderr
    assert [call["workers"] for call in started] == [1, 3]


def test_no_workers_is_refused(started: list[dict[str, Any]]) -> None:
    result = serve("--workers", "0")
    assert result.exit_code == 2
    assert started == []
