"""Forecasts: a backtest on synthetic histories whose future is known (a weekly pattern, a step
change, a ramp) pins the method's error; the billing view carries the forecast, with the day a
budget runs out at the current pace."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import Factory
from tenantry.kit.clock import FrozenClock
from tenantry.spend import forecasts

HISTORY = 56
FIRST = date(2026, 1, 5)  # a Monday
WEEKLY = np.array([100.0, 110.0, 105.0, 100.0, 95.0, 30.0, 25.0])


def _seasonal(t: np.ndarray) -> np.ndarray:
    return WEEKLY[(t + FIRST.weekday()) % 7]


def _step(t: np.ndarray) -> np.ndarray:
    return np.where(t < HISTORY - 10, 50.0, 120.0)


def _ramp(t: np.ndarray) -> np.ndarray:
    return 20.0 + 2.0 * t


def _falling(t: np.ndarray) -> np.ndarray:
    return np.maximum(300.0 - 3.0 * t, 0.0)


def _backtest(truth: Any, *, noise: float, horizon: int = 30) -> tuple[float, dict[str, Any]]:
    """Fit on HISTORY days of `truth` plus noise, project the next `horizon` days; the relative
    error against the true (noise-free) total of those days, and the forecast."""
    rng = np.random.default_rng(7)
    t = np.arange(HISTORY + horizon)
    clean = truth(t)
    observed = np.maximum(clean[:HISTORY] * (1 + rng.normal(0, noise, HISTORY)), 0)
    model = forecasts.fit(list(observed), FIRST)
    start = datetime.combine(FIRST + timedelta(days=HISTORY), datetime.min.time(), UTC)
    out = forecasts.project(
        model,
        spent=Decimal(0),
        now=start,
        since=start,
        until=start + timedelta(days=horizon),
    )
    expected = float(clean[HISTORY:].sum())
    return abs(float(out["projected_total_cost"]) - expected) / expected, out


@pytest.mark.parametrize(
    ("truth", "noise", "max_error", "trend"),
    [
        (_seasonal, 0.05, 0.03, "stable"),
        (_step, 0.05, 0.04, "stable"),
        (_ramp, 0.05, 0.03, "increasing"),
        (_falling, 0.02, 0.05, "decreasing"),
    ],
    ids=["seasonal", "step", "ramp", "falling"],
)
def test_backtest_on_known_futures(truth: Any, noise: float, max_error: float, trend: str) -> None:
    error, out = _backtest(truth, noise=noise)
    assert error <= max_error, (error, out)
    assert out["trend"] == trend
    assert out["method"] == "robust_trend_weekday"
    interval = out["confidence_interval"]
    assert Decimal(interval["lower"]) <= Decimal(out["projected_total_cost"])
    assert Decimal(out["projected_total_cost"]) <= Decimal(interval["upper"])
    assert 0.5 <= out["confidence_score"] <= 1


def test_the_weekday_pattern_is_what_makes_the_seasonal_series_right() -> None:
    """Without its weekday pattern the same method misses a short horizon ending on a weekend."""
    t = np.arange(HISTORY)
    model = forecasts.fit(list(_seasonal(t)), FIRST)
    assert model is not None
    saturday = FIRST + timedelta(days=HISTORY + 5)
    assert model.expected(saturday) == pytest.approx(30.0, abs=1)
    assert model.expected(saturday - timedelta(days=4)) == pytest.approx(110.0, abs=1)
    assert model.sigma == pytest.approx(0.0, abs=1e-9)


def test_noise_widens_the_interval_and_lowers_the_score() -> None:
    _, calm = _backtest(_seasonal, noise=0.01)
    _, noisy = _backtest(_seasonal, noise=0.3)

    def width(out: dict[str, Any]) -> Decimal:
        return Decimal(out["confidence_interval"]["upper"]) - Decimal(
            out["confidence_interval"]["lower"]
        )

    assert width(noisy) > 5 * width(calm)
    assert noisy["confidence_score"] < calm["confidence_score"]


def test_budget_runs_out_on_the_day_the_pace_reaches_it() -> None:
    model = forecasts.fit([10.0] * 28, FIRST)
    now = datetime.combine(FIRST + timedelta(days=28), datetime.min.time(), UTC)
    # 35 left at 10 a day: gone during the fourth day.
    day = forecasts.runs_out_on(
        model, now=now, remaining=Decimal(35), until=now + timedelta(days=30)
    )
    assert day == now.date() + timedelta(days=3)
    assert (
        forecasts.runs_out_on(
            model, now=now, remaining=Decimal(500), until=now + timedelta(days=30)
        )
        is None
    )
    assert forecasts.runs_out_on(model, now=now, remaining=Decimal(0), until=now) == now.date()


def test_a_period_that_is_over_shows_its_actual_cost() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    out = forecasts.project(
        None, spent=Decimal("12.345"), now=now, since=now - timedelta(days=28), until=now
    )
    assert out["method"] == "actual"
    assert out["projected_total_cost"] == "12.34"  # half-even to the cent
    assert out["confidence_score"] == 1.0


def test_the_billing_view_forecasts_from_the_rollups(
    client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    """Two weeks of $2 a day, then the view on the 15th at midnight: 14 days spent, 17 to come
    at the same pace, and a $40 monthly budget gone on the 20th."""
    clock.set(datetime(2026, 3, 15, tzinfo=UTC))
    acme = factory.tenant("Acme")
    resp = client.put(
        f"/api/v1/teams/{acme.team_id}/billing/settings",
        headers=acme.headers,
        json={"monthly_budget": 40},
    )
    assert resp.status_code == 200, resp.text
    calls = [
        {
            "id": f"day-{day}-{n}",
            "team": acme.team_id,
            "provider": "openai",
            "model": "gpt-4o",
            "cost": "1",
            "timestamp": f"2026-03-{day:02d}T{9 + n:02d}:00:00Z",
        }
        for day in range(1, 15)
        for n in range(2)
    ]
    resp = client.post("/api/v1/llm-calls", headers=acme.headers, json={"calls": calls})
    assert resp.status_code == 200 and resp.json()["accepted"] == 28, resp.text
    view = client.get(f"/api/v1/teams/{acme.team_id}/billing", headers=acme.headers).json()
    assert view["billing_period"]["total_cost"] == "28"
    forecast = view["forecast"]
    assert forecast["projected_total_cost"] == "62"  # 28 + 17 x 2
    assert forecast["confidence_interval"] == {"level": 0.9, "lower": "62", "upper": "62"}
    assert forecast["trend"] == "stable"
    assert forecast["history_days"] == 14
    # The budget's counter counts what was recorded (28 of 40): 12 left, 6 days at $2.
    assert forecast["budget_runs_out_on"] == "2026-03-20"
    org = client.get(f"/api/v1/orgs/{acme.org_id}/costs", headers=acme.headers).json()
    assert org["forecast"]["projected_total_cost"] == "62"
    assert org["forecast"]["budget_runs_out_on"] is None  # the org has no monthly budget
    previous = client.get(
        f"/api/v1/teams/{acme.team_id}/billing",
        headers=acme.headers,
        params={"period": "2026-02"},
    ).json()
    assert previous["forecast"]["method"] == "actual"
    assert previous["forecast"]["projected_total_cost"] == "0"
