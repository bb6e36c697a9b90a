"""Usage in the browser: the chart draws the numbers the API's summary returns (read back from
the chart itself), the totals and the CSV are the API's, and each quota says what is left."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

from playwright.sync_api import expect

from conftest import Factory, Tenant
from tenantry.kit.clock import FrozenClock
from web.conftest import LiveServer, check_accessibility, sign_in

# Read from the page: what Chart.js holds for the usage chart, the numbers it draws.
CHART_DATA = """() => {
  const chart = Chart.getChart("usage-chart");
  return {
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })),
  };
}"""


def _record(live_server: LiveServer, tenant: Tenant, events: list[dict[str, Any]]) -> None:
    with live_server.http() as api:
        resp = api.post(
            "/api/v1/usage/events",
            headers=tenant.headers,
            json={"org": tenant.org_id, "events": events},
        )
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == len(events), resp.text


def _seed(live_server: LiveServer, tenant: Tenant, clock: FrozenClock) -> None:
    """Tokens by three models over three days and several hours, and some compute hours."""
    start = clock.now() - timedelta(days=2, hours=5)
    events = []
    for i, (model, tokens) in enumerate(
        [("gpt-4o", 1200), ("claude-3", 800), ("gpt-4o", 350), ("llama-3", 75), ("claude-3", 20)]
        * 3
    ):
        at = start + timedelta(hours=3 * i)
        events.append(
            {
                "id": f"tok-{i}",
                "meter": "llm_input_tokens",
                "quantity": str(tokens + i),
                "timestamp": at.isoformat(),
                "team": tenant.team_id,
                "dimensions": {"provider": model.split("-")[0], "model": model},
            }
        )
    events.append(
        {
            "id": "compute-1",
            "meter": "compute_hours",
            "quantity": "2.5",
            "timestamp": (start + timedelta(hours=3)).isoformat(),
            "team": tenant.team_id,
        }
    )
    _record(live_server, tenant, events)


def test_the_chart_draws_the_numbers_the_api_returns(
    page: Any, live_server: LiveServer, factory: Factory, clock: FrozenClock, shots: Any
) -> None:
    clock.advance(days=10, hours=13)  # mid-day, so the range crosses days
    tenant = factory.tenant("Acme Labs", plan="starter")
    _seed(live_server, tenant, clock)
    today = clock.now().date()
    since = today - timedelta(days=3)
    sign_in(page, tenant.owner_email)
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Usage").click()
    page.get_by_label("From").fill(since.isoformat())
    page.get_by_label("To (included)").fill(today.isoformat())
    page.get_by_label("Group by").select_option("model")
    page.get_by_label("Per", exact=True).select_option("hour")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/usage?*granularity=hour*")
    page.get_by_label("Meter").select_option("llm_input_tokens")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**meter=llm_input_tokens*")
    drawn = page.evaluate(CHART_DATA)

    query = {
        "since": f"{since}T00:00:00Z",
        "until": f"{today + timedelta(days=1)}T00:00:00Z",
        "group_by": "model",
        "granularity": "hour",
    }
    with live_server.http() as api:
        answer = api.get(
            f"/api/v1/orgs/{tenant.org_id}/usage", headers=tenant.headers, params=query
        ).json()
    # Every hour of the range is on the chart: four days of 24.
    assert len(drawn["labels"]) == 4 * 24
    assert drawn["labels"][0] == f"{since} 00:00"
    expected: dict[str, dict[str, float]] = {}
    for row in answer["rows"]:
        if row["meter"] == "llm_input_tokens":
            label = row["bucket"][:13].replace("T", " ") + ":00"
            expected.setdefault(row["group"], {})[label] = float(row["quantity"])
    assert (
        {d["label"] for d in drawn["datasets"]}
        == set(expected)
        == {
            "gpt-4o",
            "claude-3",
            "llama-3",
        }
    )
    for dataset in drawn["datasets"]:
        points = dict(zip(drawn["labels"], dataset["data"], strict=True))
        shown = {label: value for label, value in points.items() if value}
        assert shown == expected[dataset["label"]], dataset["label"]
    # The totals are the API's, meter by meter.
    totals = {
        row.get_attribute("data-meter"): row.locator("td").nth(1).inner_text()
        for row in page.locator("#usage-totals tbody tr").all()
    }
    assert {k: Decimal(v.replace(",", "")) for k, v in totals.items()} == {
        k: Decimal(v) for k, v in answer["totals"].items()
    }
    check_accessibility(page, "usage")
    page.evaluate("window.scrollTo(0, 0)")  # the navigation where it sits
    page.screenshot(path=str(shots / "usage.png"), full_page=True)

    # The CSV holds the API's rows.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    assert [(r["meter"], r["group"], r["bucket"], Decimal(r["quantity"])) for r in rows] == [
        (r["meter"], r["group"], r["bucket"], Decimal(r["quantity"])) for r in answer["rows"]
    ]


def test_by_day_and_member_with_quotas_left(
    page: Any, live_server: LiveServer, factory: Factory, clock: FrozenClock
) -> None:
    clock.advance(days=10, hours=13)
    tenant = factory.tenant("Acme Labs", plan="starter")
    _seed(live_server, tenant, clock)
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/usage?group_by=member&meter=llm_input_tokens")
    drawn = page.evaluate(CHART_DATA)
    with live_server.http() as api:
        answer = api.get(
            f"/api/v1/orgs/{tenant.org_id}/usage",
            headers=tenant.headers,
            params={
                "since": f"{clock.now().date() - timedelta(days=29)}T00:00:00Z",
                "group_by": "member",
                "granularity": "day",
            },
        ).json()
        quotas = api.get(f"/api/v1/orgs/{tenant.org_id}/quotas", headers=tenant.headers).json()
    # The events name no member: one series, "(none)", one point per UTC day.
    assert [d["label"] for d in drawn["datasets"]] == ["(none)"]
    assert len(drawn["labels"]) == 30
    per_day = {
        r["bucket"][:10]: float(r["quantity"])
        for r in answer["rows"]
        if r["meter"] == "llm_input_tokens"
    }
    points = dict(zip(drawn["labels"], drawn["datasets"][0]["data"], strict=True))
    assert {k: v for k, v in points.items() if v} == per_day
    # Each quota with a limit says what is left, as the API's remaining.
    for quota in quotas["quotas"]:
        if quota["remaining"] is None:
            continue
        gauge = page.locator(f"li[data-quota='{quota['key']}'] .gauge-label").inner_text()
        left = re.search(r"([\d,.]+) left of", gauge)
        assert left is not None, gauge
        assert Decimal(left.group(1).replace(",", "")) == Decimal(quota["remaining"]), gauge


def test_a_bad_range_is_shown_beside_its_field(page: Any, factory: Factory) -> None:
    tenant = factory.tenant()
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/usage?since=2025-12-10&until=2025-12-01")
    expect(page.locator("#f-since-error")).to_have_text("since must be before until")
    page.goto(f"/orgs/{tenant.org_slug}/usage?since=2025-01-01&granularity=hour")
    expect(page.locator("#f-since-error")).to_have_text("Hourly summaries cover at most 35 days")
    page.goto(f"/orgs/{tenant.org_slug}/usage?group_by=colour")
    assert page.get_by_label("Group by").get_attribute("aria-invalid") == "true"
