"""The model registry and experiment tracking in the browser: the numbers on each page are the
API's answers, the runs table sorts and filters on the server, a run's charts draw the metric
history the API returns (read back from Chart.js), runs compare side by side, and a viewer sees
no write controls and is refused a forced one, as on the API."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from conftest import Factory, Tenant, bearer
from web.conftest import LiveServer, check_accessibility, sign_in
from web.test_page_roles import browser_session

# What Chart.js holds for a canvas: the numbers it draws.
CHART_DATA = """(id) => {
  const chart = Chart.getChart(id);
  return {
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((d) => ({ label: d.label, data: d.data })),
  };
}"""

# Whether charts.js has drawn the canvas (its scripts are deferred).
DRAWN = "(id) => Boolean(window.Chart && Chart.getChart(id))"
# Three runs of one experiment: (name, hyperparameters, loss at steps 0-4, final status).
RUNS = [
    ("baseline", {"optimizer": "sgd", "lr": 0.1}, [2.0, 1.5, 1.25, 1.0, 0.9], "finished"),
    ("adam-small", {"optimizer": "adam", "lr": 0.01}, [1.8, 1.0, 0.625, 0.5, 0.375], "finished"),
    ("adam-large", {"optimizer": "adam", "lr": 0.001}, [1.9, 1.2, 0.8], None),
]
WEIGHTS = b"\x00weights of the baseline\x01" * 40


def _ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else None


def _seed(live_server: LiveServer, tenant: Tenant) -> dict[str, Any]:
    """An experiment with three runs (params, loss and accuracy at steps, a file), and a
    registered model with two versions from the first two runs, an alias and a stage."""
    team, h = tenant.team_id, tenant.headers
    seeded: dict[str, Any] = {"runs": {}}
    with live_server.http() as api:
        exp = _ok(
            api.post(f"/api/v1/teams/{team}/experiments", headers=h, json={"name": "digits"}), 201
        )
        seeded["experiment"] = exp["id"]
        runs_url = f"/api/v1/teams/{team}/experiments/{exp['id']}/runs"
        for name, params, losses, status in RUNS:
            run = _ok(
                api.post(
                    runs_url,
                    headers=h,
                    json={"name": name, "hyperparameters": params, "tags": {"dataset": "mnist"}},
                ),
                201,
            )
            for step, loss in enumerate(losses):
                metrics = {"loss": loss, "accuracy": round(1 - loss / 4, 4)}
                _ok(
                    api.post(
                        f"{runs_url}/{run['id']}/metrics",
                        headers=h,
                        json={"metrics": metrics, "step": step * 10},
                    ),
                    204,
                )
            if status:
                _ok(api.patch(f"{runs_url}/{run['id']}", headers=h, json={"status": status}))
            seeded["runs"][name] = run["id"]
        first = seeded["runs"]["baseline"]
        _ok(
            api.put(
                f"{runs_url}/{first}/artifact",
                params={"path": "model/weights.bin"},
                headers=h,
                content=WEIGHTS,
            ),
            201,
        )
        model = _ok(
            api.post(
                f"/api/v1/teams/{team}/models",
                headers=h,
                json={"name": "digits-classifier", "metadata": {"task": "classification"}},
            ),
            201,
        )
        seeded["model"] = model["id"]
        versions = f"/api/v1/teams/{team}/models/{model['id']}/versions"
        # Version 1 names its run and holds a file uploaded to it; version 2 is the run's model.
        baseline, small = seeded["runs"]["baseline"], seeded["runs"]["adam-small"]
        _ok(api.post(versions, headers=h, json={"run_id": baseline}), 201)
        _ok(
            api.put(
                f"{versions}/1/file", params={"path": "weights.bin"}, headers=h, content=WEIGHTS
            ),
            201,
        )
        _ok(
            api.post(versions, headers=h, json={"run_id": small, "source": f"runs:/{small}/model"}),
            201,
        )
        _ok(
            api.put(
                f"/api/v1/teams/{team}/models/{model['id']}/aliases/champion",
                headers=h,
                json={"version": 2},
            )
        )
        _ok(api.patch(f"{versions}/2", headers=h, json={"stage": "production"}))
        # A download of version 1's file, through the API: the history's first entry.
        got = api.get(
            f"/api/v1/teams/{team}/models/{model['id']}/versions/1/file",
            params={"path": "weights.bin"},
            headers=h,
        )
        assert got.status_code == 200 and got.content == WEIGHTS, got.text
    return seeded


def _api(live_server: LiveServer, tenant: Tenant, path: str, **params: Any) -> Any:
    with live_server.http() as api:
        return _ok(
            api.get(f"/api/v1/teams/{tenant.team_id}{path}", headers=tenant.headers, params=params)
        )


def test_models_versions_and_lineage_show_the_apis_numbers(
    page: Any, live_server: LiveServer, factory: Factory, shots: Any
) -> None:
    tenant = factory.tenant("Acme Labs")
    seeded = _seed(live_server, tenant)
    model_id = seeded["model"]
    sign_in(page, tenant.owner_email)

    page.get_by_role("navigation", name="Organization").get_by_role(
        "link", name="Models and experiments"
    ).click()
    check_accessibility(page, "models and experiments")
    page.get_by_role("link", name=re.compile(r"^Models of")).first.click()
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    listed = _api(live_server, tenant, "/models")["items"]
    assert len(listed) == 1
    row = page.locator('tr[data-model="digits-classifier"]')
    expect(row.locator("[data-latest]")).to_have_text(str(listed[0]["latest_version"]))
    expect(row.locator("[data-aliases]")).to_have_text("champion → v2")
    expect(row).to_contain_text("Production")
    check_accessibility(page, "models")
    page.screenshot(path=str(shots / "models.png"), full_page=True)

    row.get_by_role("link", name="digits-classifier").click()
    expect(page.get_by_role("heading", name="digits-classifier")).to_be_visible()
    versions = _api(live_server, tenant, f"/models/{model_id}/versions")
    for v in versions:
        shown = page.locator(f'#versions tr[data-version="{v["version"]}"]')
        expect(shown.locator("[data-stage]")).to_have_text(v["stage"])
        expect(shown.locator("[data-downloads]")).to_have_text(str(v["downloads"]))
        expect(shown.locator("[data-views]")).to_have_text(str(v["views"]))
    assert [v["downloads"] for v in versions] == [1, 0]
    check_accessibility(page, "a model")

    # Version 1: its run, and who downloaded it (the owner, through the API).
    page.get_by_role("link", name="Version 1", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("version 1"))).to_be_visible()
    reads = _api(live_server, tenant, f"/models/{model_id}/versions/1/reads")
    downloads = [r for r in reads if r["kind"] == "download"]
    assert len(downloads) == 1 and downloads[0]["actor_id"] == tenant.owner_id
    history = page.locator("#reads tr[data-kind=download]")
    expect(history).to_have_count(1)
    expect(history).to_contain_text(tenant.owner_email)
    expect(page.locator("#version-meta [data-downloads]")).to_have_text("1")
    check_accessibility(page, "a model version")
    page.locator("#lineage").get_by_role("link", name="baseline").click()
    expect(page).to_have_url(re.compile(f"/runs/{seeded['runs']['baseline']}$"))

    # Writes a person would expect: the stage, an alias (each what the API then answers).
    page.go_back()
    page.get_by_label("Stage").select_option("Staging")
    page.get_by_role("button", name="Set stage").click()
    expect(page.locator("#version-meta [data-stage]")).to_have_text("Staging")
    assert _api(live_server, tenant, f"/models/{model_id}/versions/1")["stage"] == "Staging"
    page.get_by_role("link", name="digits-classifier").click()
    page.get_by_role("textbox", name="Alias").fill("challenger")
    page.get_by_label("Version", exact=True).select_option("1")
    page.get_by_role("button", name="Set alias").click()
    expect(page.locator('#aliases [data-alias="challenger"]')).to_contain_text("version 1")
    assert _api(live_server, tenant, f"/models/{model_id}")["aliases"] == {
        "champion": 2,
        "challenger": 1,
    }


def _table(page: Any) -> list[dict[str, str]]:
    rows = []
    for row in page.locator("#runs-table tbody tr").all():
        cells = {"id": row.get_attribute("data-run") or ""}
        for cell in row.locator("td[data-param], td[data-metric]").all():
            name = cell.get_attribute("data-param") or cell.get_attribute("data-metric")
            cells[str(name)] = cell.inner_text().strip()
        rows.append(cells)
    return rows


def test_the_runs_table_sorts_and_filters_as_the_api_orders(
    page: Any, live_server: LiveServer, factory: Factory, shots: Any
) -> None:
    tenant = factory.tenant("Acme Labs")
    seeded = _seed(live_server, tenant)
    exp = seeded["experiment"]
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/teams/{tenant.team_id}")
    page.get_by_role("link", name="Experiments and runs").click()
    page.get_by_role("link", name="digits").click()

    api_runs = _api(live_server, tenant, f"/experiments/{exp}/runs")["items"]
    shown = {r["id"]: r for r in _table(page)}
    assert set(shown) == {r["id"] for r in api_runs}
    for run in api_runs:
        cells = shown[run["id"]]
        for key, value in run["hyperparameters"].items():
            assert cells[key] == str(value), (key, cells)
        for key, point in run["metrics"].items():
            assert float(cells[key]) == point["value"], (key, cells)
    check_accessibility(page, "runs table")

    # Sorted by the loss on the server (htmx swaps the table in): the API's order each way.
    page.locator('[data-sort="metrics.loss"]').click()
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("loss")
    by_loss = _api(live_server, tenant, f"/experiments/{exp}/runs", order_by="metrics.loss DESC")
    order = [r["id"] for r in by_loss["items"]]
    assert [r["id"] for r in _table(page)] == order
    page.locator('[data-sort="metrics.loss"]').click()
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("loss")
    assert [r["id"] for r in _table(page)] == order[::-1]
    assert "sort=metrics.loss" in page.url and "order=asc" in page.url

    # Filtered by status: the running run alone.
    page.get_by_label("Status").select_option("running")
    expect(page.locator("#runs-table tbody tr")).to_have_count(1)
    assert _table(page)[0]["id"] == seeded["runs"]["adam-large"]
    expect(page.locator("#run-count")).to_have_text("(1 of 3)")
    page.get_by_label("Status").select_option("")
    expect(page.locator("#runs-table tbody tr")).to_have_count(3)
    page.screenshot(path=str(shots / "runs.png"), full_page=True)


def test_a_runs_charts_draw_the_apis_metric_history_and_its_files_download(
    page: Any, live_server: LiveServer, factory: Factory
) -> None:
    tenant = factory.tenant("Acme Labs")
    seeded = _seed(live_server, tenant)
    exp, run = seeded["experiment"], seeded["runs"]["baseline"]
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/teams/{tenant.team_id}/experiments/{exp}/runs/{run}")
    expect(page.get_by_role("heading", name="baseline")).to_be_visible()
    shown = _api(live_server, tenant, f"/experiments/{exp}/runs/{run}")
    for key, value in shown["hyperparameters"].items():
        expect(page.locator(f'#params tr[data-param="{key}"] td').nth(1)).to_have_text(value)
    expect(page.locator('#tags tr[data-tag="dataset"] td').nth(1)).to_have_text("mnist")

    for key in ("accuracy", "loss"):
        canvas = page.locator(f'canvas[data-metric="{key}"]')
        expect(canvas).to_be_visible()
        points = _api(live_server, tenant, f"/experiments/{exp}/runs/{run}/metrics/{key}")["points"]
        page.wait_for_function(DRAWN, arg=canvas.get_attribute("id"))
        drawn = page.evaluate(CHART_DATA, canvas.get_attribute("id"))
        assert drawn["labels"] == [p["step"] for p in points]
        assert drawn["datasets"] == [{"label": key, "data": [p["value"] for p in points]}]
    assert drawn["datasets"][0]["data"] == RUNS[0][2]  # the loss as logged
    check_accessibility(page, "a run")

    with page.expect_download() as download:
        page.get_by_role("link", name="model/weights.bin").click()
    with open(download.value.path(), "rb") as got:
        assert got.read() == WEIGHTS


def test_runs_compare_side_by_side_with_one_metric_over_steps(
    page: Any, live_server: LiveServer, factory: Factory
) -> None:
    tenant = factory.tenant("Acme Labs")
    seeded = _seed(live_server, tenant)
    exp = seeded["experiment"]
    picked = [seeded["runs"]["baseline"], seeded["runs"]["adam-large"]]
    sign_in(page, tenant.owner_email)
    page.goto(f"/orgs/{tenant.org_slug}/teams/{tenant.team_id}/experiments/{exp}")
    for run in picked:
        page.locator(f"#pick-{run}").check()
    page.get_by_role("button", name="Compare selected runs").click()
    expect(page.get_by_role("heading", name="Compare runs")).to_be_visible()

    # The columns in the table's order (the newest run first), as the API's compare gives them.
    order = [th.get_attribute("data-run") for th in page.locator("#compare th[data-run]").all()]
    assert sorted(order) == sorted(picked)  # type: ignore[type-var]
    compared = _api(live_server, tenant, f"/experiments/{exp}/compare", run=order)
    for column, run in enumerate(compared["runs"], start=2):
        for key in compared["hyperparameters"]:
            cell = page.locator(f'#compare tr[data-param="{key}"] td').nth(column - 2)
            expect(cell).to_have_text(run["hyperparameters"][key])
        for key in compared["metrics"]:
            cell = page.locator(f'#compare tr[data-metric="{key}"] td').nth(column - 2)
            assert float(cell.inner_text()) == run["metrics"][key]["value"]

    # The chart: accuracy first (by name); then the loss, a line per run with a gap where a
    # run logged nothing at a step.
    page.get_by_label("Metric").select_option("loss")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="loss over steps")).to_be_visible()
    page.wait_for_function(DRAWN, arg="compare-chart")
    drawn = page.evaluate(CHART_DATA, "compare-chart")
    assert drawn["labels"] == [0, 10, 20, 30, 40]
    expected = {
        seeded["runs"]["baseline"]: {"label": "baseline", "data": RUNS[0][2]},
        seeded["runs"]["adam-large"]: {"label": "adam-large", "data": [*RUNS[2][2], None, None]},
    }
    assert drawn["datasets"] == [expected[run] for run in order]
    check_accessibility(page, "compare runs")


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_a_viewer_sees_no_write_controls_and_a_forced_write_is_refused(
    app: object, client: TestClient, factory: Factory, live_server: LiveServer
) -> None:
    tenant = factory.tenant("Acme Labs")
    seeded = _seed(live_server, tenant)
    _, token = factory.member(tenant, team_role="viewer")
    email = client.get("/api/v1/me", headers=bearer(token)).json()["user"]["email"]
    base = f"/orgs/{tenant.org_slug}/teams/{tenant.team_id}"
    model = f"{base}/models/{seeded['model']}"
    run = f"{base}/experiments/{seeded['experiment']}/runs/{seeded['runs']['baseline']}"
    with TestClient(app, raise_server_exceptions=False) as browser:  # type: ignore[arg-type]
        browser_session(browser, email)
        origin = {"Origin": str(browser.base_url)}
        for page in (model, f"{model}/versions/1", run):
            shown = browser.get(page)
            assert shown.status_code == 200, (page, shown.text)
            assert "Set stage" not in shown.text and "Set alias" not in shown.text
            assert "Delete" not in shown.text, page
        token_ = _csrf(browser.get(model).text)
        for action, data in [
            (f"{model}/versions/1/stage", {"stage": "Archived"}),
            (f"{model}/aliases", {"alias": "mine", "version": "1"}),
            (f"{model}/aliases/champion/delete", {}),
            (f"{model}/versions/2/delete", {}),
            (f"{model}/delete", {"confirm": "digits-classifier"}),
            (f"{run}/delete", {}),
        ]:
            refused = browser.post(
                action, data={"csrf_token": token_, **data}, headers=origin, follow_redirects=False
            )
            assert refused.status_code == 403, (action, refused.status_code)
    after = client.get(
        f"/api/v1/teams/{tenant.team_id}/models/{seeded['model']}/versions", headers=tenant.headers
    ).json()
    assert [(v["version"], v["stage"], v["aliases"]) for v in after] == [
        (1, "None", []),
        (2, "Production", ["champion"]),
    ]


def test_another_tenants_models_and_runs_are_not_found(
    app: object, client: TestClient, factory: Factory, live_server: LiveServer
) -> None:
    tenant = factory.tenant("Acme Labs")
    seeded = _seed(live_server, tenant)
    other = factory.tenant("Globex")
    base = f"/orgs/{other.org_slug}/teams/{other.team_id}"
    exp, run = seeded["experiment"], seeded["runs"]["baseline"]
    with TestClient(app, raise_server_exceptions=False) as browser:  # type: ignore[arg-type]
        browser_session(browser, other.owner_email)
        origin = {"Origin": str(browser.base_url)}
        token = _csrf(browser.get(f"{base}/models").text)
        # Their own team's address with the first tenant's ids, and the first tenant's team.
        for page in (
            f"{base}/models/{seeded['model']}",
            f"{base}/models/{seeded['model']}/versions/1",
            f"{base}/experiments/{exp}",
            f"{base}/experiments/{exp}/runs/{run}",
            f"{base}/experiments/{exp}/runs/{run}/artifact?path=model/weights.bin",
            f"/orgs/{tenant.org_slug}/teams/{tenant.team_id}/models",
        ):
            assert browser.get(page).status_code == 404, page
        refused = browser.post(
            f"{base}/models/{seeded['model']}/versions/1/stage",
            data={"csrf_token": token, "stage": "Archived"},
            headers=origin,
        )
        assert refused.status_code == 404


def test_deleting_asks_for_the_name_and_writes_the_apis_audit_events(
    app: object, client: TestClient, factory: Factory, live_server: LiveServer
) -> None:
    tenant = factory.tenant("Acme Labs")
    seeded = _seed(live_server, tenant)
    base = f"/orgs/{tenant.org_slug}/teams/{tenant.team_id}"
    model = f"{base}/models/{seeded['model']}"
    api_model = f"/api/v1/teams/{tenant.team_id}/models/{seeded['model']}"
    with TestClient(app, raise_server_exceptions=False) as browser:  # type: ignore[arg-type]
        browser_session(browser, tenant.owner_email)
        origin = {"Origin": str(browser.base_url)}
        token = _csrf(browser.get(model).text)

        def post(action: str, **data: str) -> Any:
            return browser.post(
                action, data={"csrf_token": token, **data}, headers=origin, follow_redirects=False
            )

        gone = post(f"{model}/versions/2/delete")
        assert gone.status_code == 303 and gone.headers["location"] == model
        assert client.get(f"{api_model}/versions/2", headers=tenant.headers).status_code == 404
        wrong = post(f"{model}/delete", confirm="digits")
        assert wrong.status_code == 422 and "to confirm" in wrong.text
        assert client.get(api_model, headers=tenant.headers).status_code == 200
        done = post(f"{model}/delete", confirm="digits-classifier")
        assert done.status_code == 303 and done.headers["location"] == f"{base}/models"
        assert client.get(api_model, headers=tenant.headers).status_code == 404
        run = seeded["runs"]["adam-small"]
        done = post(f"{base}/experiments/{seeded['experiment']}/runs/{run}/delete")
        assert done.status_code == 303
    events = client.get(
        f"/api/v1/orgs/{tenant.org_id}/audit-events",
        headers=tenant.headers,
        params={"actor": tenant.owner_id, "limit": 100},
    ).json()["items"]
    actions = [e["action"] for e in events]
    for action in ("model_version.deleted", "model.deleted", "run.deleted"):
        assert actions.count(action) == 1, (action, actions)
    # The run is gone from the API's answers too.
    runs = client.get(
        f"/api/v1/teams/{tenant.team_id}/experiments/{seeded['experiment']}/runs",
        headers=tenant.headers,
    ).json()["items"]
    assert run not in {r["id"] for r in runs}
