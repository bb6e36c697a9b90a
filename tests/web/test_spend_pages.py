"""AI spend in the browser: LLM calls recorded through the API, then the costs pages show the
API's exact figures (totals, each breakdown, members' emails, the forecast band, the budget
line on the chart), a budget is made through its form (a refused one writes nothing), its
alert appears and is acknowledged, a team's analytics shows the API's savings recommendations,
and an anomaly raised by the worker is listed, filtered and acknowledged. Each change writes
the API's audit event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from playwright.sync_api import expect

from conftest import Factory, Tenant, bearer, count_rows
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from tenantry.worker import run_once
from web.conftest import LiveServer, check_accessibility, sign_in
from web.test_page_roles import browser_session

CHART_DATA = """(id) => {
  const chart = Chart.getChart(id);
  return {
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })),
  };
}"""
DRAWN = "(id) => Boolean(window.Chart && Chart.getChart(id))"
NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)


def _call(call_id: str, team: str, *, day: str = "2026-03-10", **kw: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "team": team,
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 1000,
        "output_tokens": 200,
        "timestamp": f"{day}T12:00:00Z",
        **kw,
    }


def _record(api: Any, headers: dict[str, str], calls: list[dict[str, Any]]) -> None:
    resp = api.post("/api/v1/llm-calls", headers=headers, json={"calls": calls})
    assert resp.status_code == 200 and resp.json()["accepted"] == len(calls), resp.text


def _seed_calls(client: TestClient, factory: Factory, tenant: Tenant) -> str:
    """Calls of two members on two providers and three models (one priced from the table);
    returns the member's email."""
    _, member_token = factory.member(tenant, team_role="editor")
    email = client.get("/api/v1/me", headers=bearer(member_token)).json()["user"]["email"]
    _record(
        client,
        tenant.headers,
        [
            _call("a1", tenant.team_id, cost="1.25"),
            _call("a2", tenant.team_id, cost="0.75", day="2026-03-12"),
            _call("a3", tenant.team_id, model="gpt-4o-mini", cost="0.105"),
            _call("a4", tenant.team_id, provider="anthropic", model="claude-3-5-haiku"),
        ],
    )
    _record(
        client,
        bearer(member_token),
        [_call("b1", tenant.team_id, provider="anthropic", model="claude-3-5-haiku", cost="3")],
    )
    return email


def _rows(page: Any, table: str) -> list[list[str]]:
    cells = page.locator(f"{table} tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))"
    )
    return [list(r) for r in cells]


def test_costs_pages_show_the_apis_figures(
    page: Any, client: TestClient, factory: Factory, clock: FrozenClock, shots: Any
) -> None:
    clock.set(NOW)
    tenant = factory.tenant("Acme Labs")
    email = _seed_calls(client, factory, tenant)
    resp = client.post(
        f"/api/v1/teams/{tenant.team_id}/budgets",
        headers=tenant.headers,
        json={"amount": "20", "thresholds": [90]},
    )
    assert resp.status_code == 201, resp.text
    org_view = client.get(f"/api/v1/orgs/{tenant.org_id}/costs", headers=tenant.headers).json()
    team_view = client.get(f"/api/v1/teams/{tenant.team_id}/billing", headers=tenant.headers)
    team_view = team_view.json()
    bp = org_view["billing_period"]
    assert bp["total_requests"] == 5  # the calls are there, so the page has something to show

    sign_in(page, tenant.owner_email)
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="AI spend").click()
    expect(page.locator("#total-cost")).to_have_attribute("data-value", bp["total_cost"])
    expect(page.locator("#total-requests")).to_have_text("5")
    for key in ("provider", "model"):
        shown = _rows(page, f"#by-{key}")
        wanted = [
            [name, e["cost"], str(e["requests"])] for name, e in bp[f"breakdown_by_{key}"].items()
        ]
        assert shown == wanted, key
    # Members by email (the owner may see members), in the API's order and figures.
    members = bp["breakdown_by_member"]
    assert _rows(page, "#by-member") == [
        [e["email"], e["cost"], str(e["requests"])] for e in members.values()
    ]
    assert email in {e["email"] for e in members.values()}
    forecast = org_view["forecast"]
    expect(page.locator("#projected")).to_have_attribute(
        "data-value", forecast["projected_total_cost"]
    )
    band = forecast["confidence_interval"]
    expect(page.locator("#forecast-band")).to_contain_text(f"${band['lower']} to ${band['upper']}")
    page.wait_for_function(DRAWN, arg="breakdown-chart")
    chart = page.evaluate(CHART_DATA, "breakdown-chart")
    assert chart["labels"] == list(bp["breakdown_by_provider"])
    assert chart["datasets"][0]["data"] == [
        float(e["cost"]) for e in bp["breakdown_by_provider"].values()
    ]
    check_accessibility(page, "the org's costs")

    # The team's page: its own view, with its budget as a line on the forecast chart.
    page.get_by_role("link", name="costs", exact=True).click()
    page.wait_for_url(f"**/teams/{tenant.team_id}/costs")
    tbp = team_view["billing_period"]
    expect(page.locator("#total-cost")).to_have_attribute("data-value", tbp["total_cost"])
    expect(page.locator("#budget-amount")).to_have_attribute(
        "data-value", team_view["budget"]["amount"]
    )
    page.wait_for_function(DRAWN, arg="forecast-chart")
    drawn = {d["label"]: d["data"] for d in page.evaluate(CHART_DATA, "forecast-chart")["datasets"]}
    spent = float(tbp["total_cost"])
    tband = team_view["forecast"]["confidence_interval"]
    assert drawn["Spent"] == [0, spent, None]
    assert drawn["Projected"][2] == float(team_view["forecast"]["projected_total_cost"])
    assert (drawn["Forecast low"][2], drawn["Forecast high"][2]) == (
        float(tband["lower"]),
        float(tband["upper"]),
    )
    assert drawn["Budget"] == [float(team_view["budget"]["amount"])] * 3
    page.screenshot(path=str(shots / "costs.png"), full_page=True)
    check_accessibility(page, "a team's costs")

    # The period chooser: last month had nothing.
    page.get_by_label("Period", exact=True).select_option("previous")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#total-cost")).to_have_attribute("data-value", "0")
    previous = client.get(
        f"/api/v1/teams/{tenant.team_id}/billing?period=previous", headers=tenant.headers
    ).json()
    assert previous["billing_period"]["total_cost"] == "0"
    # A period the API refuses is refused beside the field, as the API words it.
    page.goto(f"/orgs/{tenant.org_slug}/costs?period=someday")
    expect(page.locator("#f-period-error")).to_contain_text("period is current, previous")


def test_a_budget_made_in_its_form_raises_an_alert_that_is_acknowledged(
    page: Any,
    client: TestClient,
    factory: Factory,
    clock: FrozenClock,
    database: Database,
    live_server: LiveServer,
    shots: Any,
) -> None:
    clock.set(NOW)
    tenant = factory.tenant("Acme Labs")
    api_budgets = f"/api/v1/orgs/{tenant.org_id}/budgets"
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/budgets")
    expect(page.locator("#budgets-h + .empty .empty-title")).to_have_text("No budgets yet")

    # Refused as the API refuses it, beside its field; nothing written.
    before = count_rows(database)
    page.get_by_label("Scope").select_option("team")
    page.get_by_label("Team", exact=True).select_option(tenant.team_id)
    page.get_by_label("Amount (USD)").fill("-5")
    page.get_by_role("button", name="Create budget").click()
    expect(page.locator("#f-amount-error")).to_be_visible()
    api_says = client.post(
        api_budgets, headers=tenant.headers, json={"scope": "team", "team": tenant.team_id,
                                                    "amount": "-5"}
    )  # fmt: skip
    assert api_says.status_code == 422
    assert count_rows(database) == before
    # A team budget without its team: the service's refusal, beside the team.
    page.get_by_label("Team", exact=True).select_option("")
    page.get_by_label("Amount (USD)").fill("2")
    page.get_by_role("button", name="Create budget").click()
    expect(page.locator("#f-team-error")).to_have_text("A team budget names its team")
    assert count_rows(database) == before

    page.get_by_label("Team", exact=True).select_option(tenant.team_id)
    page.get_by_label("Name", exact=True).fill("Research monthly")
    page.get_by_label("Amount (USD)").fill("2")
    page.get_by_label("Alert at (% of the amount)").fill("50, 80")
    page.get_by_role("button", name="Create budget").click()
    expect(page.locator(".notice")).to_have_text("Budget “Research monthly” created.")
    [made] = client.get(api_budgets, headers=tenant.headers).json()["budgets"]
    assert (made["scope"], made["team_id"], made["amount"]) == ("team", tenant.team_id, "2")
    assert made["thresholds"] == [50, 80] and made["exceeded_action"] == "notify"
    row = page.locator(f"tr[data-budget='{made['id']}']")
    expect(row.locator("[data-cell=amount]")).to_have_text("2")

    # Calls through the API pass 50 % and 80 % of it: two alerts.
    with live_server.http() as api:
        _record(api, tenant.headers, [_call("c1", tenant.team_id, cost="1.7")])
    page.reload()
    shown = client.get(f"{api_budgets}/../budget-alerts", headers=tenant.headers).json()
    alerts = shown["alerts"]
    assert sorted(a["threshold"] for a in alerts) == [50, 80]
    expect(row.locator("[data-cell=spent]")).to_contain_text("1.7")
    for alert in alerts:
        expect(page.locator(f"tr[data-alert='{alert['id']}']")).to_contain_text(alert["message"])
    page.screenshot(path=str(shots / "budgets.png"), full_page=True)
    check_accessibility(page, "budgets and alerts")

    first = alerts[0]["id"]
    page.locator(f"tr[data-alert='{first}']").get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".notice")).to_have_text("Alert acknowledged.")
    expect(page.locator(f"tr[data-alert='{first}']")).to_contain_text("acknowledged")
    after = client.get(f"/api/v1/orgs/{tenant.org_id}/budget-alerts", headers=tenant.headers)
    acked = {a["id"]: a["acknowledged"] for a in after.json()["alerts"]}
    assert acked == {first: True, alerts[1]["id"]: False}

    # Edited: a bad amount is refused and changes nothing; a good one is saved.
    row.get_by_text("Edit").click()
    row.get_by_label("Amount (USD)").fill("lots")
    row.get_by_role("button", name="Save").click()
    expect(page.locator(f"#e-{made['id']}-amount-error")).to_be_visible()
    assert (
        client.get(f"/api/v1/budgets/{made['id']}", headers=tenant.headers).json()["amount"] == "2"
    )
    row.get_by_label("Amount (USD)").fill("10")
    row.get_by_role("button", name="Save").click()
    expect(page.locator(".notice")).to_have_text("Budget “Research monthly” saved.")
    shown_budget = client.get(f"/api/v1/budgets/{made['id']}", headers=tenant.headers).json()
    assert shown_budget["amount"] == "10" and shown_budget["percent_used"] == "17"
    expect(row.locator("[data-cell=amount]")).to_have_text("10")

    row.get_by_text("Edit").click()
    row.get_by_role("button", name="Delete").click()
    expect(page.locator(".notice")).to_have_text("Budget “Research monthly” deleted.")
    assert client.get(f"/api/v1/budgets/{made['id']}", headers=tenant.headers).status_code == 404

    events = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events",
        headers=tenant.headers,
        params={"actor": tenant.owner_id, "limit": 100},
    ).json()["items"]
    actions = [e["action"] for e in events]
    for action in ("budget.created", "budget_alert.acknowledged", "budget.updated",
                   "budget.deleted"):  # fmt: skip
        assert actions.count(action) == 1, (action, actions)


def test_analytics_shows_the_apis_savings_recommendations(
    page: Any, client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    clock.set(NOW)
    tenant = factory.tenant("Acme Labs")
    # A month of gpt-4o calls: a cheaper model of its class is recommended.
    calls = [
        _call(f"d{day}-{k}", tenant.team_id, day=f"2026-03-{day:02d}", input_tokens=20_000,
              output_tokens=1_000)
        for day in range(1, 15)
        for k in range(3)
    ]  # fmt: skip
    _record(client, tenant.headers, calls)
    api = client.get(
        f"/api/v1/teams/{tenant.team_id}/analytics?days=30", headers=tenant.headers
    ).json()
    savings = api["insights"]["cost_optimization_opportunities"]
    assert savings["recommendations"], savings  # there is something to show

    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/teams/{tenant.team_id}/analytics")
    expect(page.locator("#potential-savings")).to_have_text(f"${savings['potential_savings']}")
    shown = _rows(page, "#recommendations")
    assert [(r[0], r[-1]) for r in shown] == [
        (r["title"], r["estimated_monthly_savings"]) for r in savings["recommendations"]
    ]
    expect(page.locator("#usage-requests")).to_have_text(str(api["usage"]["total_requests"]))
    expect(page.locator("#usage-cost")).to_have_text(f"${api['usage']['total_cost']}")
    expect(page.locator("#efficiency-score")).to_have_text(str(api["insights"]["efficiency_score"]))
    check_accessibility(page, "a team's analytics")
    # Days the API refuses are refused beside the field.
    page.goto(f"/orgs/{tenant.org_slug}/teams/{tenant.team_id}/analytics?days=0")
    expect(page.locator("#f-days-error")).to_be_visible()


def test_an_anomaly_is_listed_filtered_and_acknowledged(
    app: object,
    page: Any,
    client: TestClient,
    factory: Factory,
    clock: FrozenClock,
    settings: Settings,
    database: Database,
) -> None:
    clock.set(datetime(2026, 3, 2, 6, tzinfo=UTC))
    tenant = factory.tenant("Acme Labs")
    usual = [10, 11, 9, 10, 12, 10, 9, 11, 10, 10, 11, 9, 10, 10]
    calls = [
        _call(f"o{k}", tenant.team_id, day=f"2026-02-{15 + k}", cost=str(cost))
        for k, cost in enumerate(usual)
    ]
    _record(client, tenant.headers, [*calls, _call("spike", tenant.team_id, day="2026-03-01",
                                                    cost="60")])  # fmt: skip
    assert run_once(settings, clock=clock, database=database).anomalies.raised == 3
    listed = client.get(f"/api/v1/orgs/{tenant.org_id}/anomalies", headers=tenant.headers)
    found = {a["dimension"]: a for a in listed.json()["anomalies"]}

    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/anomalies")
    for anomaly in found.values():
        expect(page.locator(f"tr[data-anomaly='{anomaly['id']}']")).to_contain_text(
            anomaly["value"]
        )
    # The member's anomaly names the member by email.
    member = page.locator(f"tr[data-anomaly='{found['member']['id']}']")
    expect(member).to_contain_text(tenant.owner_email)
    page.get_by_label("Of").select_option("model")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#anomalies tbody tr")).to_have_count(1)
    expect(page.locator("#anomalies tbody tr")).to_contain_text("gpt-4o")
    check_accessibility(page, "anomalies")

    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".notice")).to_have_text("Anomaly acknowledged.")
    open_ones = client.get(
        f"/api/v1/orgs/{tenant.org_id}/anomalies?open=true", headers=tenant.headers
    ).json()["anomalies"]
    assert {a["dimension"] for a in open_ones} == {"team", "member"}
    page.goto(f"/orgs/{tenant.org_slug}/anomalies?open=on")
    expect(page.locator("#anomalies tbody tr")).to_have_count(2)

    # Acknowledged already: the API's 409, as a page; another org's anomaly: 404.
    with TestClient(app, raise_server_exceptions=False) as browser:  # type: ignore[arg-type]
        browser_session(browser, tenant.owner_email)
        origin = {"Origin": str(browser.base_url)}
        token = (
            browser.get(f"/orgs/{tenant.org_slug}/anomalies")
            .text.split('name="csrf_token" value="')[1]
            .split('"')[0]
        )
        again = browser.post(
            f"/orgs/{tenant.org_slug}/anomalies/{found['model']['id']}/acknowledge",
            data={"csrf_token": token},
            headers=origin,
            follow_redirects=False,
        )
        assert again.status_code == 409 and "already acknowledged" in again.text
        other = factory.tenant("Other")
        elsewhere = browser.post(
            f"/orgs/{tenant.org_slug}/anomalies/{found['team']['id']}x/acknowledge",
            data={"csrf_token": token},
            headers=origin,
            follow_redirects=False,
        )
        assert elsewhere.status_code == 404
        assert other.org_id != tenant.org_id


def test_a_team_viewer_sees_the_teams_figures_and_is_refused_a_forced_form(
    app: object,
    page: Any,
    client: TestClient,
    factory: Factory,
    clock: FrozenClock,
    database: Database,
) -> None:
    clock.set(NOW)
    tenant = factory.tenant("Acme Labs")
    _seed_calls(client, factory, tenant)
    _, token = factory.member(tenant, team_role="viewer")
    email = client.get("/api/v1/me", headers=bearer(token)).json()["user"]["email"]
    team_view = client.get(f"/api/v1/teams/{tenant.team_id}/billing", headers=bearer(token))
    assert team_view.status_code == 200
    sign_in(page, email)
    page.goto(f"/orgs/{tenant.org_slug}/teams/{tenant.team_id}/costs")
    expect(page.locator("#total-cost")).to_have_attribute(
        "data-value", team_view.json()["billing_period"]["total_cost"]
    )
    # The org's spend is not theirs to read: no link to it.
    nav = page.get_by_role("navigation", name="Organization")
    expect(nav.get_by_role("link", name="AI spend")).to_have_count(0)

    def spend_rows() -> dict[str, int]:
        return {k: v for k, v in count_rows(database).items() if k.startswith("spend_")}

    before = spend_rows()
    with TestClient(app, raise_server_exceptions=False) as browser:  # type: ignore[arg-type]
        browser_session(browser, email)
        text = browser.get(f"/orgs/{tenant.org_slug}/teams/{tenant.team_id}/costs").text
        token_value = text.split('name="csrf_token" value="')[1].split('"')[0]
        forced = browser.post(
            f"/orgs/{tenant.org_slug}/budgets",
            data={"csrf_token": token_value, "scope": "org", "amount": "5"},
            headers={"Origin": str(browser.base_url)},
            follow_redirects=False,
        )
    assert forced.status_code == 403 and "spend:manage" in forced.text
    assert spend_rows() == before


def test_the_budget_form_works_without_scripts(
    app: object, client: TestClient, factory: Factory, database: Database
) -> None:
    tenant = factory.tenant("Acme Labs")
    page = f"/orgs/{tenant.org_slug}/budgets"
    with TestClient(app, raise_server_exceptions=False) as browser:  # type: ignore[arg-type]
        browser_session(browser, tenant.owner_email)
        token = browser.get(page).text.split('name="csrf_token" value="')[1].split('"')[0]
        origin = {"Origin": str(browser.base_url)}
        form = {"csrf_token": token, "scope": "org", "amount": "12.5", "period": "week",
                "thresholds": "50, 90", "exceeded_action": "restrict"}  # fmt: skip
        before = count_rows(database)["spend_budgets"]
        bad = browser.post(page, data={**form, "thresholds": "50, lots"}, headers=origin)
        assert bad.status_code == 422 and 'id="f-thresholds-error"' in bad.text
        assert "<html" in bad.text  # the whole page again, with the values kept
        assert count_rows(database)["spend_budgets"] == before
        made = browser.post(page, data=form, headers=origin, follow_redirects=False)
        assert made.status_code == 303 and made.headers["location"] == page
    [budget] = client.get(f"/api/v1/orgs/{tenant.org_id}/budgets", headers=tenant.headers).json()[
        "budgets"
    ]
    assert (budget["scope"], budget["amount"], budget["period"]) == ("org", "12.5", "week")
    assert budget["thresholds"] == [50, 90] and budget["exceeded_action"] == "restrict"
