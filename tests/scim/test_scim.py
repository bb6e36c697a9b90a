"""The SCIM service through its HTTP interface: tokens, isolation between orgs, filters,
sorting and pages, PATCH of group members placing people in teams, ETags, errors, and the
deprovisioning that ends a person's sessions and API keys at their next request."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from conftest import PASSWORD, Factory, Tenant, bearer, count_rows
from scim.conftest import SCIM_TYPE, Directory, directory_of, scim_token
from tenantry.kit.clock import FrozenClock
from tenantry.kit.db import Database

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def scim_user(user_name: str, **attributes: Any) -> dict[str, Any]:
    return {"schemas": [USER], "userName": user_name, **attributes}


def create_user(
    client: TestClient, d: Directory, user_name: str, **attributes: Any
) -> dict[str, Any]:
    resp = client.post("/scim/v2/Users", headers=d.headers, json=scim_user(user_name, **attributes))
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def create_group(
    client: TestClient, d: Directory, name: str, members: tuple[str, ...] = ()
) -> dict[str, Any]:
    body = {"schemas": [GROUP], "displayName": name, "members": [{"value": m} for m in members]}
    resp = client.post("/scim/v2/Groups", headers=d.headers, json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def patch(
    client: TestClient, d: Directory, url: str, *operations: dict[str, Any], **headers: str
) -> Any:
    body = {"schemas": [PATCH_OP], "Operations": list(operations)}
    return client.patch(url, headers={**d.headers, **headers}, json=body)


def assert_scim_error(resp: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(SCIM_TYPE)
    body = dict(resp.json())
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type
    return body


def user_names(listing: dict[str, Any]) -> list[str]:
    return [r["userName"] for r in listing["Resources"]]


def search(client: TestClient, d: Directory, **params: str) -> dict[str, Any]:
    resp = client.get("/scim/v2/Users", headers=d.headers, params=params)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def org_member_ids(client: TestClient, org: Tenant) -> set[str]:
    resp = client.get(f"/api/v1/orgs/{org.org_id}/members?limit=200", headers=org.headers)
    assert resp.status_code == 200, resp.text
    return {m["user_id"] for m in resp.json()["items"]}


def team_roles(client: TestClient, org: Tenant) -> dict[str, str]:
    resp = client.get(f"/api/v1/teams/{org.team_id}/members?limit=200", headers=org.headers)
    assert resp.status_code == 200, resp.text
    return {m["user_id"]: m["role"] for m in resp.json()["items"]}


def account_of(client: TestClient, org: Tenant, email: str) -> str:
    resp = client.get(f"/api/v1/orgs/{org.org_id}/members?limit=200", headers=org.headers)
    found = [m["user_id"] for m in resp.json()["items"] if m["email"] == email]
    assert len(found) == 1, resp.text
    return str(found[0])


# ---- tokens ----


def test_a_token_is_shown_once_listed_with_its_last_use_and_revocable(
    client: TestClient, org: Tenant, clock: FrozenClock
) -> None:
    issued = scim_token(client, org, "Entra ID")
    assert issued["secret"].startswith("scim_")
    assert issued["base_url"].endswith("/scim/v2")
    tokens_url = f"/api/v1/orgs/{org.org_id}/scim/tokens"
    listed = client.get(tokens_url, headers=org.headers).json()["items"]
    assert [t["id"] for t in listed] == [issued["id"]]
    assert "secret" not in listed[0] and listed[0]["last_used_at"] is None

    headers = bearer(issued["secret"])
    assert client.get("/scim/v2/Users", headers=headers).status_code == 200
    listed = client.get(tokens_url, headers=org.headers).json()["items"]
    assert listed[0]["last_used_at"] is not None

    revoked = client.delete(f"{tokens_url}/{issued['id']}", headers=org.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert_scim_error(client.get("/scim/v2/Users", headers=headers), 401)


def test_a_bad_or_missing_token_is_401_with_a_scim_error(
    client: TestClient, directory: Directory
) -> None:
    for headers in ({}, bearer("scim_not-a-token"), bearer("tnt_an-api-key-is-not-one")):
        resp = client.get("/scim/v2/Users", headers=headers)
        assert_scim_error(resp, 401)
        assert resp.headers["www-authenticate"].startswith("Bearer")
    # Credentials are checked before anything of the request is read.
    unread = client.post("/scim/v2/Users", headers=bearer("scim_nope"), content=b"{not json")
    assert_scim_error(unread, 401)


def test_an_access_token_or_api_key_of_the_org_is_not_a_scim_token(
    client: TestClient, org: Tenant, factory: Factory, directory: Directory
) -> None:
    key = factory.api_key(org)
    for headers in (org.headers, bearer(key["secret"])):
        assert_scim_error(client.get("/scim/v2/Users", headers=headers), 401)


def test_another_orgs_token_sees_nothing(
    client: TestClient, factory: Factory, directory: Directory
) -> None:
    user = create_user(client, directory, "ada@example.com")
    group = create_group(client, directory, "Engineering", (user["id"],))
    other = directory_of(client, factory.tenant(plan="enterprise"))
    for url in (f"/scim/v2/Users/{user['id']}", f"/scim/v2/Groups/{group['id']}"):
        assert_scim_error(client.get(url, headers=other.headers), 404)
        assert_scim_error(client.delete(url, headers=other.headers), 404)
        replaced = patch(client, other, url, {"op": "replace", "path": "externalId", "value": "x"})
        assert_scim_error(replaced, 404)
    assert search(client, other)["totalResults"] == 0
    groups = client.get("/scim/v2/Groups", headers=other.headers).json()
    assert groups["totalResults"] == 0
    # Another org's user cannot be made a member of this org's group either.
    mine = create_group(client, other, "Mine")
    added = patch(
        client,
        other,
        f"/scim/v2/Groups/{mine['id']}",
        {"op": "add", "path": "members", "value": [{"value": user["id"]}]},
    )
    assert_scim_error(added, 400, "invalidValue")
    # And the first org still has both.
    assert client.get(f"/scim/v2/Users/{user['id']}", headers=directory.headers).status_code == 200


# ---- queries ----


def test_filters_sorting_and_pages(
    client: TestClient, directory: Directory, clock: FrozenClock
) -> None:
    d = directory
    create_user(
        client,
        d,
        "ada@example.com",
        externalId="e-1",
        displayName="Ada Lovelace",
        emails=[{"value": "ada@example.com", "primary": True}],
    )
    clock.advance(minutes=5)
    middle = clock.now()
    clock.advance(minutes=5)
    create_user(
        client,
        d,
        "alan@example.org",
        externalId="e-2",
        displayName="Alan Turing",
        emails=[{"value": "alan.turing@example.org"}],
        active=False,
    )
    create_user(client, d, "grace", displayName="Grace Hopper")

    def names(expression: str) -> list[str]:
        return sorted(user_names(search(client, d, filter=expression)))

    assert names('userName eq "ADA@example.com"') == ["ada@example.com"]
    assert names('userName co "example"') == ["ada@example.com", "alan@example.org"]
    assert names('userName sw "a"') == ["ada@example.com", "alan@example.org"]
    assert names('emails.value co "turing"') == ["alan@example.org"]
    assert names('emails[value ew ".com"]') == ["ada@example.com"]
    assert names('externalId eq "e-2"') == ["alan@example.org"]
    assert names('displayName sw "Grace"') == ["grace"]
    assert names("active eq false") == ["alan@example.org"]
    assert names("externalId pr") == ["ada@example.com", "alan@example.org"]
    assert names('externalId pr and displayName co "Turing"') == ["alan@example.org"]
    assert names('userName eq "grace" or externalId eq "e-1"') == ["ada@example.com", "grace"]
    assert names('not (userName sw "a")') == ["grace"]
    stamp = middle.isoformat().replace("+00:00", "Z")
    assert names(f'meta.lastModified gt "{stamp}"') == ["alan@example.org", "grace"]

    ordered = search(client, d, sortBy="displayName", sortOrder="descending")
    assert user_names(ordered) == ["grace", "alan@example.org", "ada@example.com"]
    page = search(client, d, sortBy="userName", startIndex="2", count="1")
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (3, 2, 1)
    assert user_names(page) == ["alan@example.org"]
    counted = search(client, d, count="0")
    assert counted["totalResults"] == 3 and counted["Resources"] == []

    narrowed = search(client, d, filter='userName eq "grace"', attributes="userName")
    assert set(narrowed["Resources"][0]) == {"schemas", "id", "userName"}


def test_a_bad_filter_is_400_invalid_filter_and_writes_nothing(
    client: TestClient, directory: Directory, database: Database
) -> None:
    create_user(client, directory, "ada@example.com")
    before = count_rows(database)
    for expression in ("userName eq", 'userName zz "x"', '(userName eq "a"', 'nothing eq "x"'):
        resp = client.get(
            "/scim/v2/Users", headers=directory.headers, params={"filter": expression}
        )
        assert_scim_error(resp, 400, "invalidFilter")
    after = count_rows(database)
    assert {k: v for k, v in after.items() if k != "scim_tokens"} == {
        k: v for k, v in before.items() if k != "scim_tokens"
    }


# ---- writes ----


def test_bad_input_is_a_scim_error_and_writes_nothing(
    client: TestClient, directory: Directory, database: Database
) -> None:
    user = create_user(client, directory, "ada@example.com")
    before = count_rows(database)
    h = directory.headers
    assert_scim_error(
        client.post("/scim/v2/Users", headers=h, content=b"{not json"), 400, "invalidSyntax"
    )
    assert_scim_error(
        client.post("/scim/v2/Users", headers=h, json={"schemas": [USER]}), 400, "invalidValue"
    )
    taken = client.post("/scim/v2/Users", headers=h, json=scim_user("ADA@example.com"))
    assert_scim_error(taken, 409, "uniqueness")
    unknown = {"schemas": [GROUP], "displayName": "G", "members": [{"value": "scu_nobody"}]}
    assert_scim_error(client.post("/scim/v2/Groups", headers=h, json=unknown), 400, "invalidValue")
    read_only = patch(
        client,
        directory,
        f"/scim/v2/Users/{user['id']}",
        {"op": "replace", "path": "id", "value": "mine"},
    )
    assert read_only.status_code == 400, read_only.text
    assert_scim_error(client.put("/scim/v2/Users", headers=h, json={}), 405)
    assert_scim_error(client.get("/scim/v2/Nothing", headers=h), 404)
    after = count_rows(database)
    assert {k: v for k, v in after.items() if k != "scim_tokens"} == {
        k: v for k, v in before.items() if k != "scim_tokens"
    }


def test_etags_guard_writes(client: TestClient, directory: Directory) -> None:
    user = create_user(client, directory, "ada@example.com")
    url = f"/scim/v2/Users/{user['id']}"
    got = client.get(url, headers=directory.headers)
    etag = got.headers["etag"]
    assert etag == user["meta"]["version"] == 'W/"1"'
    stale = patch(
        client,
        directory,
        url,
        {"op": "replace", "path": "nickName", "value": "A"},
        **{"If-Match": 'W/"7"'},
    )
    assert_scim_error(stale, 412)
    fresh = patch(
        client,
        directory,
        url,
        {"op": "replace", "path": "nickName", "value": "A"},
        **{"If-Match": etag},
    )
    assert fresh.status_code == 200, fresh.text
    assert fresh.headers["etag"] == 'W/"2"' and fresh.json()["nickName"] == "A"
    gone = client.delete(url, headers={**directory.headers, "If-Match": etag})
    assert_scim_error(gone, 412)
    assert client.delete(url, headers={**directory.headers, "If-Match": 'W/"2"'}).status_code == 204
    assert_scim_error(client.get(url, headers=directory.headers), 404)


def test_put_replaces_the_user(client: TestClient, directory: Directory) -> None:
    user = create_user(client, directory, "ada@example.com", nickName="Ada", title="Countess")
    url = f"/scim/v2/Users/{user['id']}"
    body = scim_user("ada@example.com", nickName="Ada L.")
    replaced = client.put(url, headers=directory.headers, json=body)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["nickName"] == "Ada L." and "title" not in replaced.json()


# ---- groups and teams ----


def test_group_membership_places_people_in_teams(
    client: TestClient, org: Tenant, directory: Directory
) -> None:
    rules = {
        "rules": [
            {
                "when": {"group": "ML Engineers"},
                "org_role": "member",
                "teams": [{"team": org.team_id, "role": "editor"}],
            },
        ],
        "default": {"org_role": "member", "teams": []},
    }
    put = client.put(f"/api/v1/orgs/{org.org_id}/scim/mapping", headers=org.headers, json=rules)
    assert put.status_code == 200, put.text
    ada = create_user(client, directory, "ada@example.com")
    alan = create_user(client, directory, "alan@example.com")
    ada_id = account_of(client, org, "ada@example.com")
    alan_id = account_of(client, org, "alan@example.com")
    assert ada_id not in team_roles(client, org)

    group = create_group(client, directory, "ML Engineers")
    url = f"/scim/v2/Groups/{group['id']}"
    added = patch(
        client,
        directory,
        url,
        {"op": "add", "path": "members", "value": [{"value": ada["id"]}, {"value": alan["id"]}]},
    )
    assert added.status_code == 200, added.text
    assert {m["value"] for m in added.json()["members"]} == {ada["id"], alan["id"]}
    roles = team_roles(client, org)
    assert roles[ada_id] == "editor" and roles[alan_id] == "editor"
    user_view = client.get(f"/scim/v2/Users/{ada['id']}", headers=directory.headers).json()
    assert [g["display"] for g in user_view["groups"]] == ["ML Engineers"]

    # A path filter removes one member (RFC 7644 §3.5.2.2).
    removed = patch(
        client, directory, url, {"op": "remove", "path": f'members[value eq "{ada["id"]}"]'}
    )
    assert removed.status_code == 200, removed.text
    assert ada_id not in team_roles(client, org) and alan_id in team_roles(client, org)
    assert ada_id in org_member_ids(client, org)  # still in the org, by the default

    # Entra ID removes with the members in `value` and capitalises its operations.
    entra = patch(
        client,
        directory,
        url,
        {"op": "Remove", "path": "members", "value": [{"value": alan["id"]}]},
    )
    assert entra.status_code == 200, entra.text
    assert "members" not in entra.json()
    assert alan_id not in team_roles(client, org)

    # Okta replaces the whole list.
    okta = patch(
        client,
        directory,
        url,
        {"op": "replace", "path": "members", "value": [{"value": alan["id"]}]},
    )
    assert okta.status_code == 200, okta.text
    assert set(team_roles(client, org)) & {ada_id, alan_id} == {alan_id}

    # Deleting the group takes its members out of the teams it gave them.
    assert client.delete(url, headers=directory.headers).status_code == 204
    assert alan_id not in team_roles(client, org)


def test_required_groups_keep_people_out_until_they_are_in_them(
    client: TestClient, org: Tenant, directory: Directory
) -> None:
    rules = {"required_groups": ["Staff"], "default": {"org_role": "member"}}
    put = client.put(f"/api/v1/orgs/{org.org_id}/scim/mapping", headers=org.headers, json=rules)
    assert put.status_code == 200, put.text
    ada = create_user(client, directory, "ada@example.com")
    members = client.get(f"/api/v1/orgs/{org.org_id}/members?limit=200", headers=org.headers)
    assert "ada@example.com" not in {m["email"] for m in members.json()["items"]}
    create_group(client, directory, "Staff", (ada["id"],))
    assert account_of(client, org, "ada@example.com")


# ---- deprovisioning ----


def test_deactivation_ends_sessions_and_api_keys_at_the_next_request(
    client: TestClient, org: Tenant, factory: Factory, directory: Directory
) -> None:
    user_id, token = factory.member(org, org_role="admin")
    email = client.get("/api/v1/me", headers=bearer(token)).json()["user"]["email"]
    key = client.post(
        f"/api/v1/orgs/{org.org_id}/api-keys", headers=bearer(token), json={"name": "k"}
    )
    assert key.status_code == 201, key.text
    key_headers = bearer(key.json()["secret"])
    assert client.get(f"/api/v1/orgs/{org.org_id}", headers=key_headers).status_code == 200

    # The directory takes over the member it already has (same email).
    scim = create_user(client, directory, email)
    assert client.get(f"/api/v1/orgs/{org.org_id}", headers=bearer(token)).status_code == 200

    # Okta deactivates with a replace of `active` without a path.
    off = patch(
        client,
        directory,
        f"/scim/v2/Users/{scim['id']}",
        {"op": "replace", "value": {"active": False}},
    )
    assert off.status_code == 200 and off.json()["active"] is False, off.text
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert client.get(f"/api/v1/orgs/{org.org_id}", headers=key_headers).status_code == 401
    assert user_id not in org_member_ids(client, org)

    # An invitation cannot bring them back while the directory has them deactivated.
    invited = client.post(
        f"/api/v1/orgs/{org.org_id}/invitations",
        headers=org.headers,
        json={"email": email, "role": "member"},
    )
    assert invited.status_code == 201, invited.text
    relogin = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    # Their account is theirs: they may sign in, but not come back into this org.
    assert relogin.status_code == 200, relogin.text
    accepted = client.post(
        f"/api/v1/invitations/{invited.json()['token']}/accept",
        headers=bearer(relogin.json()["access_token"]),
    )
    assert accepted.status_code == 403 and accepted.json()["code"] == "scim_suspended"

    # Entra ID reactivates with a string boolean.
    on = patch(
        client,
        directory,
        f"/scim/v2/Users/{scim['id']}",
        {"op": "Replace", "path": "active", "value": "True"},
    )
    assert on.status_code == 200 and on.json()["active"] is True, on.text
    assert user_id in org_member_ids(client, org)
    # Revoked keys stay revoked; ended sessions stay ended.
    assert client.get(f"/api/v1/orgs/{org.org_id}", headers=key_headers).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_delete_deprovisions_and_audits_as_the_scim_token(
    client: TestClient, org: Tenant, factory: Factory, directory: Directory
) -> None:
    user_id, token = factory.member(org)
    email = client.get("/api/v1/me", headers=bearer(token)).json()["user"]["email"]
    scim = create_user(client, directory, email)
    assert (
        client.delete(f"/scim/v2/Users/{scim['id']}", headers=directory.headers).status_code == 204
    )
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert user_id not in org_member_ids(client, org)
    events = client.get(f"/api/v1/orgs/{org.org_id}/audit-events?limit=200", headers=org.headers)
    assert events.status_code == 200, events.text
    scim_events = [e for e in events.json()["items"] if e["action"].startswith("scim.user_")]
    assert {(e["action"], e["actor_type"], e["actor_id"]) for e in scim_events} == {
        ("scim.user_created", "scim", directory.token_id),
        ("scim.user_deleted", "scim", directory.token_id),
    }
    # The directory may create them again: the same account comes back into the org.
    again = create_user(client, directory, email)
    assert again["id"] != scim["id"] and user_id in org_member_ids(client, org)


def test_the_last_owner_cannot_be_deprovisioned(
    client: TestClient, org: Tenant, directory: Directory
) -> None:
    owner = create_user(client, directory, org.owner_email)
    off = patch(
        client,
        directory,
        f"/scim/v2/Users/{owner['id']}",
        {"op": "replace", "path": "active", "value": False},
    )
    assert_scim_error(off, 400, "mutability")
    assert client.get(f"/api/v1/orgs/{org.org_id}", headers=org.headers).status_code == 200


def test_an_outsiders_account_is_not_claimed_by_email(
    client: TestClient, factory: Factory, directory: Directory
) -> None:
    _, email, token = factory.user()
    taken = client.post("/scim/v2/Users", headers=directory.headers, json=scim_user(email))
    assert_scim_error(taken, 409, "uniqueness")
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200


def test_read_only_attributes_are_refused_as_mutability(
    client: TestClient, directory: Directory
) -> None:
    user = create_user(client, directory, "ada@example.com")
    group = create_group(client, directory, "Staff", (user["id"],))
    url = f"/scim/v2/Users/{user['id']}"
    for path, value in (("id", "mine"), ("groups", [{"value": group["id"]}])):
        resp = patch(client, directory, url, {"op": "replace", "path": path, "value": value})
        assert_scim_error(resp, 400, "mutability")
