"""bench/governance.py at a tiny size on the test database, so the benchmark keeps working as
the code under it changes: its own checks (10 of 100 policies match, every call replayed, the
reference read sees every call) fail the run on a wrong answer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The bench imports its helpers as `audit` (bench/audit.py), a name tests/audit also has:
    # the helpers stand in for it only while the bench is loaded.
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setitem(sys.modules, "audit", _load("bench_audit", BENCH / "audit.py"))
    module = _load("bench_governance", BENCH / "governance.py")
    monkeypatch.setitem(module.SIZES, "tiny", {"admissions": 3, "calls": 300, "repeat": 1})
    return module


def test_the_governance_bench_runs_at_a_tiny_size(bench: Any, database_url: str) -> None:
    report = bench.run(database_url, "tiny")
    admission, replay = report["admission"], report["dry_run"]
    assert admission["policies_active"] == 100 and admission["policies_matching"] == 10
    # 40 of the org's, 15 each of the team and its parent; the other teams' never apply.
    assert admission["policies_applicable"] == 70
    assert admission["ratio"] > 0 and admission["cpu_ratio"] > 0
    assert replay["calls"] == 300 and replay["ratio"] > 0
    assert report["calls_in_database"] == 300
    assert set(replay["would"]) == {"deny", "require_approval", "log"}
