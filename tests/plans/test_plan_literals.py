"""The plan catalog is written in one place: no module outside `tenantry/plans/` spells a plan's
key as a string literal (it asks `plans` for the default plan, the upgrade path, the keys)."""

from __future__ import annotations

import ast
from pathlib import Path

import tenantry
from tenantry.plans.catalog import PLANS

SOURCE = Path(tenantry.__file__).parent
PLAN_HOME = SOURCE / "plans"


def _plan_literals(path: Path) -> list[tuple[int, str]]:
    keys = set(PLANS)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.strip().lower() in keys
    ]


def test_no_plan_key_is_written_outside_the_plans_domain() -> None:
    found = [
        f"{path.relative_to(SOURCE)}:{line}: {value!r}"
        for path in sorted(SOURCE.rglob("*.py"))
        if PLAN_HOME not in path.parents
        for line, value in _plan_literals(path)
    ]
    assert found == []


def test_the_check_sees_a_plan_literal(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(f'DEFAULT = "{next(iter(PLANS))}"\nOTHER = "team"\n', encoding="utf-8")
    assert _plan_literals(sample) == [(1, next(iter(PLANS)))]
