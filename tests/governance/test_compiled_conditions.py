"""Compiled conditions decide as the condition tree does: every operator, on numbers (int,
float, Decimal), text, missing values and combinators, over the same values."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from tenantry.governance.conditions import check_rules, compile_conditions, holds


def c(field: str, operator: str, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


LEAVES = [
    c("estimated_cost", "equals", 5),
    c("estimated_cost", "not_equals", 5),
    c("estimated_cost", "greater_than", 4.5),
    c("estimated_cost", "less_than", 5),
    c("estimated_cost", "in", [1, 5, 7.25]),
    c("estimated_cost", "not_in", [1, 5]),
    c("model", "equals", "gpt-4o"),
    c("model", "not_equals", "gpt-4o"),
    c("model", "in", ["gpt-4o", "o1"]),
    c("model", "not_in", ["gpt-4o", "o1"]),
    c("model", "contains", "4o"),
    c("model", "matches", r"gpt-4o(-mini)?"),
    c("tags.project", "equals", "search"),
    c("tags.project", "not_in", ["ads"]),
    c("region", "not_equals", "eu-west-1"),
]
TREES: list[Any] = [[leaf] for leaf in LEAVES] + [
    [],
    [LEAVES[0], LEAVES[6]],
    [{"any": [LEAVES[2], LEAVES[10]]}],
    [{"not": {"all": [LEAVES[4], {"any": [LEAVES[11], LEAVES[12]]}]}}],
    [{"all": [LEAVES[5]]}, {"not": LEAVES[9]}],
]
VALUES: list[dict[str, Any]] = [
    {"estimated_cost": cost, "model": model, "tags.project": project}
    for cost, model, project in itertools.product(
        [5, Decimal("5.00"), 5.0, 7.25, Decimal("4.6"), 0, None],
        ["gpt-4o", "gpt-4o-mini", "o1", "claude", "x" * 1001, None],
        ["search", "ads", None],
    )
]


def test_every_tree_decides_as_the_tree_walk_does() -> None:
    for tree in TREES:
        check_rules({"conditions": tree, "actions": [{"type": "log"}]})
        compiled = compile_conditions(tree)
        for values in VALUES:
            present = {k: v for k, v in values.items() if v is not None}
            for seen in (values, present):
                assert compiled(seen) is holds(tree, seen), (tree, seen)
