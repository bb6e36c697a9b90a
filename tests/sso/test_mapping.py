"""Just-in-time provisioning and mapping rules: groups and claims decide the org role, teams and
team roles (first match, explicit default or deny); required groups refuse; a change of the
rules applies at the next sign-in; test mode shows all this and creates nobody."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Factory, Tenant, assert_problem, bearer, count_rows
from support.oidc_provider import OidcProvider
from support.sso import (
    connections_url,
    create_oidc,
    enable,
    oidc_sign_in,
    query_of,
    run_test,
    set_mapping,
    start_sign_in,
    through_provider,
)
from tenantry.kit.db import Database
from tenantry.sso.mapping import MappingRules, Profile, evaluate


def team(client: TestClient, tenant: Tenant, name: str) -> dict[str, Any]:
    resp = client.post(
        f"/api/v1/orgs/{tenant.org_id}/teams", headers=tenant.headers, json={"name": name}
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def ready(client: TestClient, factory: Factory, provider: OidcProvider) -> tuple[Tenant, str]:
    tenant = factory.tenant()
    conn = create_oidc(client, tenant, provider)
    provider.person("admin-test", "it-admin@example.com")
    assert run_test(client, tenant, conn["id"])["tested"] is True
    enable(client, tenant, conn["id"])
    return tenant, str(conn["id"])


def place(client: TestClient, token: str) -> tuple[list[str], dict[str, str]]:
    me = client.get("/api/v1/me", headers=bearer(token)).json()
    return [o["role"] for o in me["organizations"]], {
        t["team_name"]: t["role"] for t in me["teams"]
    }


def test_rules_place_people_and_a_change_applies_at_the_next_sign_in(
    client: TestClient, factory: Factory, provider: OidcProvider
) -> None:
    tenant, conn_id = ready(client, factory, provider)
    research, infra = team(client, tenant, "Research"), team(client, tenant, "Infra")
    rules = {
        "rules": [
            {
                "when": {"group": "ml-leads"},
                "org_role": "admin",
                "teams": [{"team": research["slug"], "role": "admin"}],
            },
            {
                "when": {"claim": "department", "equals": "infra"},
                "teams": [{"team": infra["id"], "role": "editor"}],
            },
        ],
        "default": {"org_role": "member", "teams": [{"team": research["slug"], "role": "viewer"}]},
    }
    set_mapping(client, tenant, conn_id, rules)

    provider.person("okta|lead", "lead@example.com", groups=["ml-leads"], department="infra")
    lead = oidc_sign_in(client, conn_id).json()["access_token"]
    assert place(client, lead) == (["admin"], {"Research": "admin"})  # the first match only

    provider.person("okta|ops", "ops@example.com", groups=[], department="infra")
    ops = oidc_sign_in(client, conn_id).json()["access_token"]
    assert place(client, ops) == (["member"], {"Infra": "editor"})

    provider.person("okta|new", "new@example.com", groups=["others"])
    anyone = oidc_sign_in(client, conn_id).json()["access_token"]
    assert place(client, anyone) == (["member"], {"Research": "viewer"})

    # The lead leaves the group: at his next sign-in the rules take back what they gave.
    provider.person("okta|lead", "lead@example.com", groups=[], department="infra")
    lead = oidc_sign_in(client, conn_id).json()["access_token"]
    assert place(client, lead) == (["member"], {"Infra": "editor"})

    # A team outside the rules keeps whatever people arranged there.
    other = team(client, tenant, "Other")
    me = client.get("/api/v1/me", headers=bearer(lead)).json()
    added = client.post(
        f"/api/v1/teams/{other['id']}/members",
        headers=tenant.headers,
        json={"user": me["user"]["id"], "role": "viewer"},
    )
    assert added.status_code == 201, added.text
    lead = oidc_sign_in(client, conn_id).json()["access_token"]
    assert place(client, lead)[1] == {"Infra": "editor", "Other": "viewer"}


def test_required_groups_and_an_explicit_deny_refuse_sign_in(
    client: TestClient, factory: Factory, provider: OidcProvider, database: Database
) -> None:
    tenant, conn_id = ready(client, factory, provider)
    set_mapping(
        client,
        tenant,
        conn_id,
        {"rules": [{"when": {"group": "eng"}}], "default": None, "required_groups": ["staff"]},
    )
    users = count_rows(database)["users"]
    for groups in (["eng"], ["staff"]):  # no required group; no rule matches and no default
        provider.person(f"okta|{groups[0]}", f"{groups[0]}@example.com", groups=groups)
        started = start_sign_in(client, connection_id=conn_id)
        resp = through_provider(client, started["redirect_url"])
        assert query_of(resp)["sso_error"] == "sso_access_denied"
    assert count_rows(database)["users"] == users
    provider.person("okta|ok", "ok@example.com", groups=["eng", "staff"])
    assert oidc_sign_in(client, conn_id).status_code == 200


def test_rules_give_nothing_above_their_author_and_name_real_teams(
    client: TestClient, factory: Factory, provider: OidcProvider
) -> None:
    tenant, conn_id = ready(client, factory, provider)
    _, admin_token = factory.member(tenant, org_role="admin")
    url = connections_url(tenant, f"/{conn_id}/mapping")
    owner_rule = {"rules": [{"when": {"group": "x"}, "org_role": "owner"}]}
    resp = client.put(url, headers=bearer(admin_token), json=owner_rule)
    assert_problem(resp, 403, "role_above_own")
    resp = client.put(
        url, headers=tenant.headers, json={"default": {"teams": [{"team": "no-such-team"}]}}
    )
    assert_problem(resp, 422, "unknown_team")
    resp = client.put(url, headers=tenant.headers, json={"rules": [{"when": {"claim": "x"}}]})
    assert_problem(resp, 422, "validation_error")


def test_test_mode_shows_claims_and_the_outcome_and_creates_nobody(
    client: TestClient, factory: Factory, provider: OidcProvider, database: Database
) -> None:
    tenant = factory.tenant()
    conn = create_oidc(client, tenant, provider)
    research = team(client, tenant, "Research")
    set_mapping(
        client,
        tenant,
        conn["id"],
        {"rules": [{"when": {"group": "ml"}, "teams": [{"team": research["slug"]}]}]},
    )
    # Enabling needs a successful test.
    resp = client.post(connections_url(tenant, f"/{conn['id']}/enable"), headers=tenant.headers)
    assert_problem(resp, 409, "sso_test_required")
    before = count_rows(database)
    provider.person("okta|t", "tester@example.com", name="Tess", groups=["ml"])
    shown = run_test(client, tenant, conn["id"])
    after = count_rows(database)
    assert (after["users"], after["org_memberships"]) == (
        before["users"],
        before["org_memberships"],
    )
    result = shown["result"]
    assert result["ok"] is True
    assert result["received"]["email"] == "tester@example.com"
    assert result["profile"] == {"email": "tester@example.com", "name": "Tess", "groups": ["ml"]}
    assert result["account"] == "create"
    assert result["mapping"] == {
        "allowed": True,
        "rule": 0,
        "org_role": "member",
        "teams": [{"team": research["slug"], "role": "viewer"}],
    }
    assert result["changes"]["joins_org"] is True
    assert result["changes"]["teams"] == {research["id"]: [None, "viewer"]}
    enable(client, tenant, conn["id"])
    # A change of its protocol settings puts it back in test mode.
    resp = client.patch(
        connections_url(tenant, f"/{conn['id']}"),
        headers=tenant.headers,
        json={"client_secret": "rotated-secret"},
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["enabled"], resp.json()["tested"]) == (False, False)


def test_a_failed_test_is_shown_with_its_reason(
    client: TestClient, factory: Factory, provider: OidcProvider
) -> None:
    tenant = factory.tenant()
    conn = create_oidc(client, tenant, provider)
    provider.person("okta|t", "t@example.com")
    provider.misbehave.audience = "another-client"
    shown = run_test(client, tenant, conn["id"])
    assert shown["tested"] is False
    assert shown["result"]["ok"] is False
    assert shown["result"]["error"]["code"] == "sso_invalid_id_token"


@pytest.mark.parametrize(
    ("groups", "claims", "expected"),
    [
        ({"a"}, {}, 0),
        ({"b"}, {"dept": ["x", "y"]}, 1),
        (set(), {"dept": "z"}, None),
    ],
)
def test_first_matching_rule_wins(
    groups: set[str], claims: dict[str, Any], expected: int | None
) -> None:
    rules = MappingRules.model_validate(
        {
            "rules": [
                {"when": {"group": "a"}, "org_role": "admin"},
                {"when": {"claim": "dept", "equals": "y"}},
                {"when": {"group": "a", "claim": "dept", "equals": "y"}, "org_role": "owner"},
            ],
            "default": None,
        }
    )
    outcome = evaluate(rules, Profile("p@example.com", groups=frozenset(groups), claims=claims))
    assert outcome.rule == expected
    assert outcome.allowed is (expected is not None)


def test_a_full_plan_refuses_a_new_member_and_says_so(
    client: TestClient, factory: Factory, provider: OidcProvider, database: Database
) -> None:
    _tenant, conn_id = ready(client, factory, provider)  # Free: five members
    for n in range(4):
        provider.person(f"okta|m{n}", f"m{n}@example.com")
        assert oidc_sign_in(client, conn_id).status_code == 200
    users = count_rows(database)["users"]
    provider.person("okta|sixth", "sixth@example.com")
    started = start_sign_in(client, connection_id=conn_id)
    resp = through_provider(client, started["redirect_url"])
    assert query_of(resp)["sso_error"] == "quota_exceeded"
    assert count_rows(database)["users"] == users  # nobody half-created
