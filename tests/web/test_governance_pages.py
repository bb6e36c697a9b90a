"""Governance in the browser: seed 001's "High Cost Request Approval" policy made with the
condition builder (a refused value shown on its row, nothing written), listed, dry-run over
recorded calls with the API's counts, activated; an admission sent for approval is approved in
the approver's inbox and seen by its requester; its violation is listed and leads to its
policy. Without script the builder's rows are added and removed by posting the form. Every
step is checked against the API's answer."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from playwright.sync_api import expect
from sqlalchemy import select

from conftest import Factory, Tenant, bearer
from tenantry.audit.models import AuditEvent
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database
from web.conftest import check_accessibility, sign_in, text_of
from web.test_page_roles import browser_session

SEED_RULES = {
    "conditions": [{"field": "daily_cost_per_user", "operator": "greater_than", "value": 100}],
    "actions": [
        {
            "type": "require_approval",
            "parameters": {
                "approvers": ["team-lead@company.com"],
                "roles": [],
                "timeout_hours": 4,
            },
        }
    ],
}


def join(client: TestClient, factory: Factory, tenant: Tenant, email: str,
         team_role: str | None = "editor") -> tuple[str, dict[str, str]]:  # fmt: skip
    """A member of the org (and of its team, with `team_role`) who signs in as `email`."""
    user_id, email, token = factory.user(email)
    invited = client.post(
        f"/api/v1/orgs/{tenant.org_id}/invitations",
        headers=tenant.headers,
        json={"email": email, "role": "member"},
    )
    assert invited.status_code == 201, invited.text
    accepted = client.post(
        f"/api/v1/invitations/{invited.json()['token']}/accept", headers=bearer(token)
    )
    assert accepted.status_code == 200, accepted.text
    if team_role:
        added = client.post(
            f"/api/v1/teams/{tenant.team_id}/members",
            headers=tenant.headers,
            json={"user": user_id, "role": team_role},
        )
        assert added.status_code == 201, added.text
    return user_id, bearer(token)


def record_calls(client: TestClient, headers: dict[str, str], team: str, cost: str, n: int,
                 prefix: str, at: Any, model: str = "gpt-4o") -> None:  # fmt: skip
    calls = [
        {"id": f"{prefix}{i}", "team": team, "provider": "openai", "model": model,
         "input_tokens": 10, "output_tokens": 10, "cost": cost, "timestamp": at.isoformat()}
        for i in range(n)
    ]  # fmt: skip
    resp = client.post("/api/v1/llm-calls", headers=headers, json={"calls": calls})
    assert resp.status_code == 200 and resp.json()["accepted"] == n, resp.text


def test_the_seed_policy_is_built_dry_run_approved_and_its_violation_listed(
    new_context: Any, client: TestClient, factory: Factory, clock: FrozenClock,
    database: Database, shots: Any,
) -> None:  # fmt: skip
    acme = factory.tenant("Acme", plan="professional")
    lead_id, _ = join(client, factory, acme, "team-lead@company.com", team_role=None)
    dev_id, dev = join(client, factory, acme, "dev@company.com")
    # A known history: day one the member spends 60 + 60 (the second passes $100); day two
    # 30 four times (the fourth passes); the owner's $150 is excepted by role.
    now = clock.now()
    day_one, day_two = now - timedelta(days=2), now - timedelta(days=1)
    record_calls(client, dev, acme.team_id, "60", 2, "d1-", day_one)
    record_calls(client, acme.headers, acme.team_id, "150", 1, "o1-", day_one, "gpt-4o-mini")
    record_calls(client, dev, acme.team_id, "30", 4, "d2-", day_two)
    policies_url = f"/api/v1/orgs/{acme.org_id}/policies"

    owner = new_context().new_page()
    sign_in(owner, acme.owner_email)
    nav = owner.get_by_role("navigation", name="Organization")
    nav.get_by_role("link", name="Policies").click()
    expect(owner.locator(".empty-title")).to_have_text("No policies yet")
    owner.get_by_role("link", name="New policy").click()

    # The builder: rows added and removed in place; a number field takes number operators.
    owner.get_by_label("Name", exact=True).fill("High Cost Request Approval")
    owner.get_by_label("Description").fill(
        "Require approval for requests exceeding $100/day per user"
    )
    owner.get_by_label("Type").select_option("cost_control")
    owner.get_by_label("Applies to").select_option(acme.team_id)
    owner.get_by_label("Field 1").select_option("daily_cost_per_user")
    contains = owner.get_by_label("Operator 1").locator("option[value='contains']")
    expect(contains).to_be_disabled()
    owner.get_by_label("Operator 1").select_option("greater_than")
    owner.get_by_label("Value 1").fill("a hundred")
    owner.get_by_role("button", name="Add a condition").click()
    owner.get_by_label("Field 2").select_option("model")
    owner.get_by_label("Value 2").fill("gpt-4o")
    owner.get_by_role("button", name="Remove condition 2").click()
    expect(owner.get_by_label("Field 2")).to_have_count(0)
    owner.get_by_label("Require approval").check()
    owner.get_by_label("Approvers", exact=True).fill("team-lead@company.com")
    owner.get_by_label("Expires after (hours)").fill("4")
    owner.get_by_label("Roles", exact=True).fill("owner, admin")
    check_accessibility(owner, "the condition builder")
    owner.get_by_role("button", name="Create policy").click()

    # The service's refusal is shown on the row at fault; nothing was written.
    expect(owner.locator("#cond-error-1")).to_contain_text("is a number")
    assert client.get(policies_url, headers=acme.headers).json()["policies"] == []
    expect(owner.get_by_label("Approvers", exact=True)).to_have_value("team-lead@company.com")
    owner.get_by_label("Value 1").fill("100")
    owner.get_by_role("button", name="Create policy").click()
    owner.wait_for_url("**/governance/policies/pol_*")

    [made] = client.get(policies_url, headers=acme.headers).json()["policies"]
    assert made["name"] == "High Cost Request Approval"
    assert made["team_id"] == acme.team_id and made["status"] == "draft"
    assert made["rules"] == SEED_RULES
    assert made["exceptions"]["roles"] == ["owner", "admin"]
    expect(owner.locator("#policy-conditions")).to_have_text(
        "daily_cost_per_user is greater than 100"
    )
    expect(owner.locator("#policy-actions")).to_contain_text(
        "Require approval by team-lead@company.com (expires after 4 h)"
    )
    expect(owner.locator("#versions li")).to_have_count(1)

    # The dry run: the same counts as the API's.
    owner.get_by_label("Days").fill("7")
    owner.get_by_role("button", name="Run dry run").click()
    expect(owner.locator("#dry-run-summary")).to_contain_text("7 calls")
    api_run = client.post(
        f"/api/v1/policies/{made['id']}/dry-run", headers=acme.headers, json={"days": 7}
    ).json()
    assert api_run["would"]["require_approval"] == {"count": 2, "cost": "90"}
    needs = owner.locator("#dry-run-totals tr[data-outcome='require_approval']")
    expect(needs.locator("[data-count]")).to_have_text("2")
    expect(needs.locator("[data-cost]")).to_have_text("$90.00")
    member_row = owner.locator(f"#dry-run-by_member tr[data-key='{dev_id}']")
    expect(member_row.locator("[data-name]")).to_have_text("dev@company.com")
    expect(member_row.locator("[data-outcome='require_approval']")).to_have_text("2 · $90.00")
    expect(
        owner.locator("#dry-run-by_model tr[data-key='gpt-4o'] [data-outcome='require_approval']")
    ).to_have_text("2 · $90.00")
    for day, cost in ((day_one, "$60.00"), (day_two, "$30.00")):
        cell = owner.locator(
            f"#dry-run-by_day tr[data-key='{day.date().isoformat()}'] "
            "[data-outcome='require_approval']"
        )
        expect(cell).to_have_text(f"1 · {cost}")
    check_accessibility(owner, "a policy with its dry run")
    owner.screenshot(path=str(shots / "governance-policy.png"), full_page=True)

    # Activated: a new version, seen in the list.
    owner.get_by_role("button", name="Activate").click()
    expect(owner.locator(".notice")).to_have_text("Policy activated.")
    shown = client.get(f"/api/v1/policies/{made['id']}", headers=acme.headers).json()
    assert shown["status"] == "active" and shown["version"] == 2
    expect(owner.locator("#versions li")).to_have_count(2)
    expect(owner.locator("#versions li[data-version='2']")).to_contain_text("active")
    nav.get_by_role("link", name="Policies").click()
    row = owner.locator(f"#policies tr[data-policy='{made['id']}']")
    expect(row.locator("[data-status]")).to_have_text("active")
    expect(row.locator("[data-version]")).to_have_text("2")

    # The API's admission sends the member's costly request for approval.
    asked = client.post(
        "/api/v1/admission", headers=dev,
        json={"team": acme.team_id, "action": "llm.generate", "provider": "openai",
              "model": "gpt-4o", "estimate": {"llm_cost_usd": "101"}},
    ).json()  # fmt: skip
    assert asked["decision"] == "deny", asked
    approval_id = asked["approval_id"]

    # The requester sees it pending; nobody decides their own request, and only those who
    # may list every request see them all.
    requester = new_context().new_page()
    sign_in(requester, "dev@company.com")
    requester.goto(f"/orgs/{acme.org_slug}/governance/approvals")
    expect(
        requester.locator(f"#mine tr[data-approval='{approval_id}'] [data-status]")
    ).to_contain_text("pending")
    expect(requester.locator("#waiting-h + .empty .empty-title")).to_have_text("Nothing to decide")
    expect(requester.locator("#all-approvals")).to_have_count(0)
    # The owner, no approver this policy names, sees it among every request, undecidable.
    owner.goto(f"/orgs/{acme.org_slug}/governance/approvals?status=pending")
    expect(owner.locator(f"#all-approvals tr[data-approval='{approval_id}']")).to_have_count(1)
    expect(owner.locator("#waiting")).to_have_count(0)

    # The approver decides in the inbox.
    lead = new_context().new_page()
    sign_in(lead, "team-lead@company.com")
    lead.get_by_role("navigation", name="Organization").get_by_role(
        "link", name="Approvals"
    ).click()
    waiting = lead.locator(f"#waiting tr[data-approval='{approval_id}']")
    expect(waiting).to_contain_text("dev@company.com")
    expect(waiting).to_contain_text("$101.00")
    check_accessibility(lead, "the approvals inbox")
    waiting.get_by_label("Reason").fill("demo day")
    waiting.get_by_role("button", name="Approve").click()
    expect(lead.locator(".notice")).to_have_text("Request approved.")
    expect(lead.locator("#waiting")).to_have_count(0)
    decided = client.get(f"/api/v1/approvals/{approval_id}", headers=dev).json()
    assert decided["status"] == "approved" and decided["decided_by"] == lead_id
    assert decided["reason"] == "demo day"
    with database.session(write=False) as s:
        approved = s.scalars(
            select(AuditEvent).where(
                AuditEvent.org_id == acme.org_id, AuditEvent.action == "approval.approved"
            )
        ).all()
    assert [(e.actor_id, e.target_id) for e in approved] == [(lead_id, approval_id)]

    # The requester sees their request's status; the owner, every request.
    requester.reload()
    expect(
        requester.locator(f"#mine tr[data-approval='{approval_id}'] [data-status]")
    ).to_contain_text("approved")
    owner.goto(f"/orgs/{acme.org_slug}/governance/approvals?status=approved")
    expect(owner.locator(f"#all-approvals tr[data-approval='{approval_id}']")).to_contain_text(
        "by team-lead@company.com: demo day"
    )

    # The violation, filtered by policy and member, leads to its policy.
    nav.get_by_role("link", name="Violations").click()
    owner.get_by_label("Policy").select_option(made["id"])
    owner.get_by_label("Member").fill("dev@company.com")
    owner.get_by_role("button", name="Filter").click()
    listed = client.get(
        f"/api/v1/orgs/{acme.org_id}/violations", headers=acme.headers,
        params={"policy": made["id"], "member": dev_id},
    ).json()["violations"]  # fmt: skip
    assert [v["kind"] for v in listed] == ["require_approval"]
    shown_row = owner.locator(f"#violations tr[data-violation='{listed[0]['id']}']")
    expect(shown_row.locator("[data-kind]")).to_contain_text("approval")
    expect(shown_row).to_contain_text("dev@company.com")
    expect(shown_row).to_contain_text("daily_cost_per_user = 101")
    check_accessibility(owner, "violations")
    owner.screenshot(path=str(shots / "governance-violations.png"), full_page=True)
    shown_row.get_by_role("link", name="High Cost Request Approval").click()
    owner.wait_for_url(f"**/governance/policies/{made['id']}")
    # A time range that ends before it leaves it out.
    earlier = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    owner.goto(f"/orgs/{acme.org_slug}/governance/violations?until={earlier}")
    expect(owner.locator(".empty-title")).to_have_text("No violations")


def test_the_builder_works_without_script_and_an_undecided_request_expires(
    new_context: Any, client: TestClient, factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme", plan="professional")
    join(client, factory, acme, "team-lead@company.com", team_role=None)
    _, dev = join(client, factory, acme, "dev@company.com")
    owner = new_context(java_script_enabled=False).new_page()
    sign_in(owner, acme.owner_email)
    owner.goto(f"/orgs/{acme.org_slug}/governance/new-policy")
    owner.get_by_label("Name", exact=True).fill("Big or odd models")
    owner.get_by_label("Match").select_option("any")
    owner.get_by_label("Field 1").select_option("estimated_cost")
    owner.get_by_label("Operator 1").select_option("greater_than")
    owner.get_by_label("Value 1").fill("50")
    # Without script "Add a condition" posts the rows and comes back with one more.
    owner.get_by_role("button", name="Add a condition").click()
    expect(owner.get_by_label("Value 1")).to_have_value("50")
    owner.get_by_label("Field 2").select_option("model")
    owner.get_by_label("Operator 2").select_option("in")
    owner.get_by_label("Value 2").fill("o1, o3")
    owner.get_by_role("button", name="Add a condition").click()
    owner.get_by_label("Field 3").select_option("region")
    owner.get_by_label("Value 3").fill("eu")
    owner.get_by_role("button", name="Remove condition 3").click()
    expect(owner.get_by_label("Value 3")).to_have_value("")
    owner.get_by_label("Require approval").check()
    owner.get_by_label("Approvers", exact=True).fill("team-lead@company.com")
    owner.get_by_label("Expires after (hours)").fill("2")
    owner.get_by_label("Log a violation").check()
    owner.get_by_label("Status").select_option("active")
    owner.get_by_role("button", name="Create policy").click()
    owner.wait_for_url("**/governance/policies/pol_*")
    [made] = client.get(f"/api/v1/orgs/{acme.org_id}/policies", headers=acme.headers).json()[
        "policies"
    ]
    assert made["team_id"] is None and made["status"] == "active"
    assert made["rules"]["conditions"] == [
        {
            "any": [
                {"field": "estimated_cost", "operator": "greater_than", "value": 50},
                {"field": "model", "operator": "in", "value": ["o1", "o3"]},
            ]
        }
    ]
    assert [a["type"] for a in made["rules"]["actions"]] == ["require_approval", "log"]
    expect(owner.locator("#policy-conditions")).to_have_text(
        "any of (estimated_cost is greater than 50; model is one of o1, o3)"
    )

    # A change through the form: the rows come back as saved; a new version with its diff.
    owner.get_by_role("link", name="Change").click()
    expect(owner.get_by_label("Match")).to_have_value("any")
    expect(owner.get_by_label("Value 2")).to_have_value("o1, o3")
    owner.get_by_label("Value 1").fill("60")
    owner.get_by_role("button", name="Save changes").click()
    owner.wait_for_url(f"**/governance/policies/{made['id']}")
    changed = client.get(f"/api/v1/policies/{made['id']}", headers=acme.headers).json()
    assert changed["version"] == 2
    assert changed["rules"]["conditions"][0]["any"][0]["value"] == 60
    expect(owner.locator("#versions li[data-version='2']")).to_contain_text("rules")

    # Nobody decides in time: past the two hours the request shows as expired.
    asked = client.post(
        "/api/v1/admission", headers=dev,
        json={"team": acme.team_id, "action": "llm.generate", "provider": "openai",
              "model": "o1", "estimate": {"llm_cost_usd": "1"}},
    ).json()  # fmt: skip
    approval_id = asked["approval_id"]
    lead = new_context(java_script_enabled=False).new_page()
    sign_in(lead, "team-lead@company.com")
    lead.goto(f"/orgs/{acme.org_slug}/governance/approvals")
    expect(lead.locator(f"#waiting tr[data-approval='{approval_id}']")).to_have_count(1)
    clock.advance(hours=2, seconds=1)
    lead.get_by_role("button", name="Deny").click()
    expect(lead.locator(".notice.bad")).to_contain_text("expired")
    requester = new_context(java_script_enabled=False).new_page()
    sign_in(requester, "dev@company.com")
    requester.goto(f"/orgs/{acme.org_slug}/governance/approvals")
    expect(
        requester.locator(f"#mine tr[data-approval='{approval_id}'] [data-status]")
    ).to_contain_text("expired")
    assert text_of(requester, "h1") == "Approvals"


def _csrf(page_html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    assert found is not None
    return found.group(1)


def test_forced_changes_are_refused_as_the_api_refuses_them_and_write_nothing(
    app: Any, client: TestClient, factory: Factory, database: Database
) -> None:
    acme, other = factory.tenant("Acme", plan="professional"), factory.tenant("Other")
    made = client.post(
        f"/api/v1/teams/{acme.team_id}/governance/policies", headers=acme.headers,
        json={"action": "create_policy",
              "policy": {"name": "Costly", "rules": SEED_RULES, "type": "cost_control"}},
    ).json()  # fmt: skip
    viewer_id, _ = factory.member(acme, team_role="viewer")
    viewer_email = client.get(f"/api/v1/orgs/{acme.org_id}/members", headers=acme.headers).json()
    email = next(m["email"] for m in viewer_email["items"] if m["user_id"] == viewer_id)
    page = f"/orgs/{acme.org_slug}/governance/policies/{made['id']}"
    origin = {"Origin": "http://testserver"}
    with TestClient(app, raise_server_exceptions=False) as browser:
        browser_session(browser, email)
        # A team viewer reads the team's policy, as the API lets them, and changes nothing.
        shown = browser.get(page)
        assert shown.status_code == 200 and "Costly" in shown.text
        assert "Run dry run" not in shown.text and "Activate" not in shown.text
        token = _csrf(shown.text)
        assert browser.get(f"{page}/edit").status_code == 403
        for path, form in (
            (f"{page}/status", {"status": "active"}),
            (f"{page}/dry-run", {"days": "7"}),
            (page, {"name": "Taken over", "field": "model", "operator": "equals", "value": "x"}),
            (f"/orgs/{acme.org_slug}/governance/policies",
             {"name": "Mine", "scope": acme.team_id, "deny": "on"}),
        ):  # fmt: skip
            answer = browser.post(path, data={**form, "csrf_token": token}, headers=origin)
            assert answer.status_code == 403, (path, answer.status_code)
    with TestClient(app, raise_server_exceptions=False) as browser:
        browser_session(browser, other.owner_email)
        token = _csrf(browser.get(f"/orgs/{other.org_slug}/governance/policies").text)
        # Another org's policy is not found, through either org's pages.
        for path in (page, f"/orgs/{other.org_slug}/governance/policies/{made['id']}"):
            assert browser.get(path).status_code == 404, path
            answer = browser.post(
                f"{path}/status", data={"status": "active", "csrf_token": token}, headers=origin
            )
            assert answer.status_code == 404, path
    after = client.get(f"/api/v1/policies/{made['id']}", headers=acme.headers).json()
    assert (after["status"], after["version"], after["name"]) == ("draft", 1, "Costly")
    assert len(client.get(f"/api/v1/orgs/{acme.org_id}/policies", headers=acme.headers).json()[
        "policies"
    ]) == 1  # fmt: skip

    # The owner's change through the page writes the API's one audit event, with the diff.
    with TestClient(app, raise_server_exceptions=False) as browser:
        browser_session(browser, acme.owner_email)
        token = _csrf(browser.get(page).text)
        answer = browser.post(
            f"{page}/status", data={"status": "active", "csrf_token": token}, headers=origin,
            follow_redirects=False,
        )  # fmt: skip
        assert answer.status_code == 303, answer.text
        bad = browser.post(
            f"{page}/dry-run", data={"days": "0", "csrf_token": token}, headers=origin
        )
        assert bad.status_code == 422 and "days" in bad.text
    with database.session(write=False) as s:
        events = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.org_id == acme.org_id, AuditEvent.target_id == made["id"])
            # The chain's order: rows come back in any order without one (PostgreSQL did).
            .order_by(AuditEvent.seq)
        ).all()
    assert [e.action for e in events] == ["policy.created", "policy.updated"]
    assert events[1].summary["diff"] == {"status": {"from": "draft", "to": "active"}}

    # Another org's approval request is not found through an org's inbox; nothing is decided.
    client.post(
        f"/api/v1/orgs/{acme.org_id}/policies", headers=acme.headers,
        json={"name": "Gate", "status": "active", "rules": {
            "conditions": [{"field": "estimated_cost", "operator": "greater_than", "value": 10}],
            "actions": [{"type": "require_approval", "parameters": {"roles": ["owner"]}}]}},
    ).raise_for_status()  # fmt: skip
    _, member_token = factory.member(acme, team_role="editor")
    asked = client.post(
        "/api/v1/admission", headers=bearer(member_token),
        json={"team": acme.team_id, "action": "llm.generate", "provider": "openai",
              "model": "gpt-4o", "estimate": {"llm_cost_usd": "11"}},
    ).json()  # fmt: skip
    approval_id = asked["approval_id"]
    with TestClient(app, raise_server_exceptions=False) as browser:
        browser_session(browser, other.owner_email)
        token = _csrf(browser.get(f"/orgs/{other.org_slug}/governance/approvals").text)
        for org in (other.org_slug, acme.org_slug):
            answer = browser.post(
                f"/orgs/{org}/governance/approvals/{approval_id}/approve",
                data={"csrf_token": token}, headers=origin,
            )  # fmt: skip
            assert answer.status_code == 404, org
    pending = client.get(f"/api/v1/approvals/{approval_id}", headers=acme.headers).json()
    assert pending["status"] == "pending"
