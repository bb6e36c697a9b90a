"""MLflow's search language, parsed by a grammar: what it takes and how it refuses."""

from __future__ import annotations

import pytest

from tenantry.ml.search import Comparison, Ordering, SearchError, parse_filter, parse_order_by


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "metrics.loss < 0.6 and params.optimizer = 'adam'",
            [Comparison("metric", "loss", "<", 0.6), Comparison("param", "optimizer", "=", "adam")],
        ),
        ("tags.`mlflow.user` LIKE 'a%'", [Comparison("tag", "mlflow.user", "LIKE", "a%")]),
        (
            'tags."team name" ILIKE "%Vision%"',
            [Comparison("tag", "team name", "ILIKE", "%Vision%")],
        ),
        ("tags.mlflow.runName = 'x'", [Comparison("tag", "mlflow.runName", "=", "x")]),
        (
            "attributes.status IN ('FINISHED', 'FAILED')",
            [Comparison("attribute", "status", "IN", ("FINISHED", "FAILED"))],
        ),
        ("run_id NOT IN ('a')", [Comparison("attribute", "run_id", "NOT IN", ("a",))]),
        ("metrics.loss <= -1e-3", [Comparison("metric", "loss", "<=", -0.001)]),
        ("metric.step_count >= 10", [Comparison("metric", "step_count", ">=", 10)]),
        ("params.x IS NOT NULL", [Comparison("param", "x", "IS NOT NULL", None)]),
        ("name = 'it''s'", [Comparison("attribute", "name", "=", "it's")]),
        (
            "metrics.f1 <> 1 AND tags.k != 'v'",
            [Comparison("metric", "f1", "!=", 1), Comparison("tag", "k", "!=", "v")],
        ),
        ("", []),
        ("   ", []),
    ],
)
def test_filters(text: str, expected: list[Comparison]) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("metrics.loss <", "ends too early"),
        ("metrics.loss ~ 3", "unexpected '~ 3' at column 14"),
        ("foo.bar = 1", "Invalid entity type 'foo'"),
        ("metrics.loss < 0.6 or params.x = 'y'", "at column 20"),
        ("'x' = 1", "unexpected"),
        ("metrics.loss < 0.6; DROP TABLE ml_runs", "unexpected"),
        ("tags.k = 'unterminated", "unexpected"),
        ("a = 'nul\x00'", "NUL"),
    ],
)
def test_refusals_say_what_and_where(text: str, why: str) -> None:
    with pytest.raises(SearchError) as refused:
        parse_filter(text)
    assert why in str(refused.value)


def test_orderings() -> None:
    assert parse_order_by(["metrics.loss ASC", "attributes.start_time desc", "name"]) == [
        Ordering("metric", "loss", True),
        Ordering("attribute", "start_time", False),
        Ordering("attribute", "name", True),
    ]
    for bad in ("metrics.loss sideways", "", "metrics.loss ASC DESC"):
        with pytest.raises(SearchError):
            parse_order_by([bad])
