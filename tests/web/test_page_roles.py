"""Every org page answers each role as the API's route it shows does: 200, 403 with the
missing permission, or 404 outside the person's orgs. (No browser: the statuses only.)"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from conftest import PASSWORD, Factory, Tenant, bearer

# A page, and the API route whose answer it must give: {org}, {org_id}, {team} are filled in.
PAGES = [
    ("/orgs/{org}", "/api/v1/orgs/{org_id}"),
    ("/orgs/{org}/teams", "/api/v1/orgs/{org_id}/teams"),
    ("/orgs/{org}/teams/{team}", "/api/v1/teams/{team}"),
    ("/orgs/{org}/members", "/api/v1/orgs/{org_id}/members"),
    ("/orgs/{org}/api-keys", "/api/v1/orgs/{org_id}/api-keys"),
    ("/orgs/{org}/sso", "/api/v1/orgs/{org_id}/sso/connections"),
    ("/orgs/{org}/sso/nothing-by-this-name", "/api/v1/orgs/{org_id}/sso/connections/nothing"),
    ("/orgs/{org}/teams/{team}/models", "/api/v1/teams/{team}/models"),
    ("/orgs/{org}/teams/{team}/experiments", "/api/v1/teams/{team}/experiments"),
    ("/orgs/{org}/security", "/api/v1/orgs/{org_id}/security-policy"),
    ("/orgs/{org}/governance/classification", "/api/v1/orgs/{org_id}/governance/classification"),
    ("/orgs/{org}/costs", "/api/v1/orgs/{org_id}/costs"),
    ("/orgs/{org}/teams/{team}/costs", "/api/v1/teams/{team}/billing"),
    ("/orgs/{org}/teams/{team}/analytics", "/api/v1/teams/{team}/analytics"),
    ("/orgs/{org}/budgets", "/api/v1/orgs/{org_id}/budgets"),
    ("/orgs/{org}/anomalies", "/api/v1/orgs/{org_id}/anomalies"),
    ("/orgs/{org}/webhooks", "/api/v1/orgs/{org_id}/webhooks"),
    ("/orgs/{org}/webhooks/whk_nothing", "/api/v1/orgs/{org_id}/webhooks/whk_nothing"),
    ("/orgs/{org}/governance/policies", "/api/v1/orgs/{org_id}/policies"),
    ("/orgs/{org}/governance/policies/pol_nothing", "/api/v1/policies/pol_nothing"),
    ("/orgs/{org}/governance/violations", "/api/v1/orgs/{org_id}/violations"),
    # The inbox is every member's: their own requests, and those they may decide.
    ("/orgs/{org}/governance/approvals", "/api/v1/orgs/{org_id}"),
    ("/orgs/{org}/model-access", "/api/v1/orgs/{org_id}/model-access"),
    ("/orgs/{org}/compliance", "/api/v1/orgs/{org_id}/compliance/reports"),
]
ROLES = ["owner", "admin", "member", "team viewer", "stranger"]


def browser_session(client: TestClient, email: str) -> TestClient:
    """`client` signed in through the sign-in form (its cookies are the browser's)."""
    form = client.get("/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/sign-in",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)},
        headers={"Origin": str(client.base_url)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return client


def _person(factory: Factory, tenant: Tenant, role: str) -> tuple[str, str]:
    if role == "owner":
        return tenant.owner_email, tenant.token
    if role == "stranger":
        _, email, token = factory.user()
        return email, token
    org_role = "admin" if role == "admin" else "member"
    user_id, token = factory.member(
        tenant, org_role=org_role, team_role="viewer" if role == "team viewer" else None
    )
    me = factory.client.get("/api/v1/me", headers=bearer(token)).json()
    assert me["user"]["id"] == user_id
    return me["user"]["email"], token


@pytest.mark.parametrize("role", ROLES)
def test_pages_answer_each_role_as_the_api_does(
    app: object, client: TestClient, factory: Factory, role: str
) -> None:
    tenant = factory.tenant()
    email, token = _person(factory, tenant, role)
    with TestClient(app, raise_server_exceptions=False) as browser:  # type: ignore[arg-type]
        browser_session(browser, email)
        for page, route in PAGES:
            values = {"org": tenant.org_slug, "org_id": tenant.org_id, "team": tenant.team_id}
            api = client.get(route.format(**values), headers=bearer(token)).status_code
            shown = browser.get(page.format(**values), follow_redirects=False)
            assert shown.status_code == api, (role, page, shown.status_code, api)
            assert shown.headers["content-type"].startswith("text/html"), page
