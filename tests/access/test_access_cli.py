"""Access control through the SDK and the `tenantry role|grant|access` commands, on the real app."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cli.test_cli import SERVER, Cli, one_error_line, people  # noqa: F401 - `people` is a fixture
from conftest import Factory, Tenant, bearer
from tenantry.cli.output import EXIT_DENIED
from tenantry.client import Client
from tenantry.client.errors import TenantryError
from tenantry.kit.ids import new_id

PLAN = "enterprise"


def test_the_sdk_covers_roles_grants_templates_and_questions(
    client: TestClient, factory: Factory
) -> None:
    acme = factory.tenant("Acme AI", plan=PLAN)
    analyst_id, analyst_token = factory.member(acme)
    with (
        Client(SERVER, acme.token, http=client) as api,
        Client(SERVER, analyst_token, http=client) as analyst,
    ):
        role = api.create_role(
            acme.org_slug, "analyst", permissions=["usage:read"], inherits=["viewer"]
        )
        assert "usage:read" in role.effective_permissions
        assert [r.name for r in api.iter_roles(acme.org_slug)] == ["analyst"]
        assert api.get_role(acme.org_slug, "viewer").builtin
        role = api.update_role(acme.org_slug, "analyst", description="Reads usage")
        assert role.description == "Reads usage"
        model = ("model", new_id("mdl"), acme.team_id)
        made = api.create_grant(
            acme.team_id, ("user", analyst_id), resource=model[:2], role="analyst"
        )
        assert made.role == role.id
        decision = analyst.check_access(acme.org_slug, "usage:read", resource=model)
        assert decision.allowed and decision.via == f"grant:{made.id}"
        explained = analyst.explain_access(acme.org_slug, "model:delete", resource=model)
        assert not explained.allowed and explained.missing == "model:delete"
        who = {w.subject.id for w in api.iter_who_can(acme.org_slug, "usage:read", resource=model)}
        assert analyst_id in who and acme.owner_id in who
        what = list(analyst.iter_what_can(acme.org_slug, "usage:read", resource_type="model"))
        assert [w.resource.id for w in what] == [model[1]]
        assert [g.id for g in api.iter_grants(acme.org_slug, subject=("user", analyst_id))] == [
            made.id
        ]
        template = api.create_grant_template(
            acme.org_slug, "visitors", role="viewer", duration_seconds=600
        )
        applied = api.apply_grant_template(acme.team_id, template.name, [("user", analyst_id)])
        assert applied.changed == 1 and applied.grants[0].expires_at is not None
        bulk = api.bulk_grants(acme.team_id, "revoke", [("user", analyst_id)])
        assert bulk.revoked == [applied.grants[0].id]
        api.revoke_grant(made.id)
        assert not analyst.check_access(acme.org_slug, "usage:read", resource=model).allowed
        try:
            api.delete_role(acme.org_slug, "viewer")
        except TenantryError as exc:
            assert (exc.status, exc.code) == (403, "builtin_role")
        else:
            raise AssertionError("a built-in role was deleted")
        api.delete_role(acme.org_slug, "analyst")
        assert list(api.iter_roles(acme.org_slug)) == []


def test_the_cli_manages_roles_and_grants_and_answers_questions(
    people: dict[str, Cli],
    factory: Factory,
) -> None:
    acme = factory.tenant("Acme AI", plan=PLAN)
    owner = people["owner"]
    assert owner.login(acme.owner_email).exit_code == 0
    analyst_id, _ = factory.member(acme)
    role = owner.json(
        "role",
        "create",
        "acme-ai",
        "analyst",
        "--permissions",
        "usage:read",
        "--inherits",
        "viewer",
    )
    assert "usage:read" in role["effective_permissions"]
    assert "analyst" in owner.ok("role", "list", "acme-ai")
    assert owner.json("role", "show", "acme-ai", "analyst")["id"] == role["id"]
    owner.ok("role", "update", "acme-ai", "analyst", "--description", "Reads usage")
    made = owner.json(
        "grant",
        "create",
        "acme-ai/default",
        f"user:{analyst_id}",
        "--role",
        "analyst",
        "--expires",
        "7d",
    )
    assert made["expires_at"] is not None
    listed = owner.json("grant", "list", "acme-ai", "--subject", analyst_id)
    assert [g["id"] for g in listed] == [made["id"]]
    out = owner.ok(
        "access",
        "check",
        "acme-ai",
        "usage:read",
        "--on",
        f"team:{acme.team_id}",
        "--subject",
        analyst_id,
    )
    assert out.startswith("allowed:") and f"grant:{made['id']}" in out
    out = owner.ok("access", "explain", "acme-ai", "billing:manage", "--subject", analyst_id)
    assert "not_granted" in out
    who = owner.json("access", "who-can", "acme-ai", "usage:read", "--on", f"team:{acme.team_id}")
    assert {w["subject"]["id"] for w in who} >= {analyst_id, acme.owner_id}
    what = owner.json("access", "what-can", "acme-ai", "usage:read", "--subject", analyst_id)
    assert [w["resource"]["id"] for w in what] == [acme.team_id]
    bulk = owner.json(
        "grant",
        "bulk",
        "acme-ai/default",
        "change_role",
        "--subjects",
        f"user:{analyst_id}",
        "--role",
        "viewer",
    )
    assert bulk["changed"] == 1
    error = one_error_line(owner.run("role", "delete", "acme-ai", "viewer"))
    assert "403 builtin_role" in error
    owner.ok("grant", "revoke", made["id"])
    denied = owner.run(
        "access",
        "check",
        "acme-ai",
        "usage:read",
        "--on",
        f"team:{acme.team_id}",
        "--subject",
        analyst_id,
    )
    # A "no" is an answer, printed, with its own exit code for scripts.
    assert denied.exit_code == EXIT_DENIED, denied.output
    assert denied.stdout.startswith("denied:")
    owner.ok("role", "delete", "acme-ai", "analyst")
    assert one_error_line(
        owner.run("access", "check", "acme-ai", "usage:read", "--subject", "nobody")
    )


def _email(client: TestClient, token: str) -> str:
    email: str = client.get("/api/v1/me", headers=bearer(token)).json()["user"]["email"]
    return email


def _signed_in_owner(clis: dict[str, Cli], factory: Factory) -> tuple[Tenant, Cli]:
    acme = factory.tenant("Acme AI", plan=PLAN)
    owner = clis["owner"]
    assert owner.login(acme.owner_email).exit_code == 0
    return acme, owner


def test_grant_list_finds_a_user_named_by_email(
    client: TestClient,
    people: dict[str, Cli],
    factory: Factory,
) -> None:
    acme, owner = _signed_in_owner(people, factory)
    analyst_id, token = factory.member(acme)
    email = _email(client, token)
    made = owner.json("grant", "create", "acme-ai/default", f"user:{email}", "--role", "viewer")
    assert made["subject_id"] == analyst_id
    listed = owner.json("grant", "list", "acme-ai", "--subject", f"user:{email}")
    assert [g["id"] for g in listed] == [made["id"]]
    error = one_error_line(
        owner.run("grant", "list", "acme-ai", "--subject", "user:nobody@example.com")
    )
    assert "404 subject_not_found" in error


def test_a_team_is_written_org_slash_slug_as_subject_and_resource(
    people: dict[str, Cli],
    factory: Factory,
) -> None:
    acme, owner = _signed_in_owner(people, factory)
    team_grant = owner.json(
        "grant", "create", "acme-ai/default", "team:acme-ai/default", "--role", "viewer"
    )
    assert (team_grant["subject_type"], team_grant["subject_id"]) == ("team", acme.team_id)
    out = owner.ok("access", "check", "acme-ai", "usage:read", "--on", "team:acme-ai/default")
    assert out.startswith("allowed:")
    checked = owner.json(
        "access",
        "check",
        "acme-ai",
        "team:read",
        "--on",
        "team:acme-ai/default",
        "--subject",
        "team:acme-ai/default",
    )
    assert checked["allowed"]
    error = one_error_line(
        owner.run("access", "check", "acme-ai", "team:read", "--on", "team:acme-ai/nope")
    )
    assert "no team 'nope'" in error


def test_a_team_admin_lists_the_teams_grants_with_team(
    client: TestClient,
    people: dict[str, Cli],
    factory: Factory,
) -> None:
    acme, owner = _signed_in_owner(people, factory)
    analyst_id, _ = factory.member(acme)
    made = owner.json(
        "grant", "create", "acme-ai/default", f"user:{analyst_id}", "--role", "viewer"
    )
    _, admin_token = factory.member(acme, team_role="admin")
    admin = people["admin"]
    assert admin.login(_email(client, admin_token)).exit_code == 0
    assert "403" in one_error_line(admin.run("grant", "list", "acme-ai"))
    mine = admin.json("grant", "list", "acme-ai", "--team", "acme-ai/default")
    assert made["id"] in {g["id"] for g in mine}
    only = admin.json(
        "grant", "list", "acme-ai", "--team", acme.team_id, "--subject", f"user:{analyst_id}"
    )
    assert [g["id"] for g in only] == [made["id"]]


def test_a_role_update_that_changes_nothing_is_refused(
    client: TestClient,
    people: dict[str, Cli],
    factory: Factory,
) -> None:
    acme, owner = _signed_in_owner(people, factory)
    owner.json("role", "create", "acme-ai", "analyst", "--permissions", "usage:read")
    error = one_error_line(owner.run("role", "update", "acme-ai", "analyst"))
    assert "nothing to change" in error
    with Client(SERVER, acme.token, http=client) as api:
        try:
            api.update_role(acme.org_slug, "analyst")
        except TenantryError as exc:
            assert (exc.status, exc.code) == (422, "nothing_to_update")
        else:
            raise AssertionError("an empty update was accepted")
