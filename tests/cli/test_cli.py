"""The `tenantry` CLI through Typer's runner, talking to the real app through the SDK.

The CLI's seam `tenantry.cli.connection.http_override` points every command at the in-process
TestClient; each simulated person gets a config directory of their own.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from conftest import PASSWORD, Factory
from tenantry.cli import connection
from tenantry.cli.main import app
from tenantry.client import Client, Unauthenticated
from tenantry.kit.clock import FrozenClock

SERVER = "http://testserver"


class Cli:
    """Runs `tenantry ...` as one person, whose login lives in `config_dir`."""

    def __init__(self, runner: CliRunner, config_dir: Path) -> None:
        self.runner = runner
        self.config_dir = config_dir

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.json"

    def stored(self) -> dict[str, Any]:
        return dict(json.loads(self.config_file.read_text()))

    def run(self, *args: str, input: str | None = None, **env: str) -> Result:
        result = self.runner.invoke(
            app,
            list(args),
            input=input,
            env={"TENANTRY_CONFIG_DIR": str(self.config_dir), **env},
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def ok(self, *args: str, input: str | None = None, **env: str) -> str:
        result = self.run(*args, input=input, **env)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result.stdout

    def json(self, *args: str, **env: str) -> Any:
        return json.loads(self.ok(*args, "--json", **env))

    def login(self, email: str) -> Result:
        return self.run(
            "login", "--server", SERVER, "--email", email, "--password-stdin", input=PASSWORD + "\n"
        )


@pytest.fixture
def people(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Cli]]:
    """`people["name"]` is the CLI as that person (created on first use)."""
    monkeypatch.setattr(connection, "http_override", client)
    # The person running the tests may have these set; the tests must not see them.
    for name in ("TENANTRY_SERVER", "TENANTRY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    class People(dict[str, Cli]):
        def __missing__(self, name: str) -> Cli:
            self[name] = Cli(runner, tmp_path / f"config-{name}")
            return self[name]

    yield People()


def one_error_line(result: Result) -> str:
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_login_from_stdin_keeps_tokens_in_a_private_file(
    people: dict[str, Cli], factory: Factory
) -> None:
    acme = factory.tenant("Acme AI")
    me = people["owner"]
    result = me.login(acme.owner_email)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"Signed in to {SERVER} as {acme.owner_email}\n"
    assert stat.S_IMODE(os.stat(me.config_file).st_mode) == 0o600
    stored = me.stored()
    assert stored["server"] == SERVER and stored["email"] == acme.owner_email
    assert stored["access_token"] and stored["refresh_token"]
    assert PASSWORD not in me.config_file.read_text()
    whoami = me.json("whoami")
    assert whoami["user"]["email"] == acme.owner_email
    assert [o["org_slug"] for o in whoami["organizations"]] == ["acme-ai"]
    assert acme.owner_email in me.ok("whoami")


def test_signup_creates_the_account_and_signs_in_so_an_invitation_can_be_accepted(
    people: dict[str, Cli], factory: Factory
) -> None:
    acme = factory.tenant("Acme AI")
    owner = people["owner"]
    assert owner.login(acme.owner_email).exit_code == 0
    invited = owner.json("invite", "create", "acme-ai", "newcomer@example.com", "--role", "member")
    newcomer = people["newcomer"]
    out = newcomer.ok(
        "signup",
        "--server",
        SERVER,
        "--email",
        "newcomer@example.com",
        "--name",
        "New Comer",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert out == f"Signed in to {SERVER} as newcomer@example.com\n"
    assert stat.S_IMODE(os.stat(newcomer.config_file).st_mode) == 0o600
    newcomer.ok("invite", "accept", invited["token"])
    me = newcomer.json("whoami")
    assert me["user"]["full_name"] == "New Comer"
    assert [(o["org_slug"], o["role"]) for o in me["organizations"]] == [("acme-ai", "member")]
    taken = newcomer.run(
        "signup", "--email", "newcomer@example.com", "--password-stdin", input=PASSWORD + "\n"
    )
    assert one_error_line(taken).startswith("error: 409 email_taken")


def test_login_prompts_for_the_password_without_echoing_it(
    people: dict[str, Cli], factory: Factory
) -> None:
    acme = factory.tenant()
    result = people["owner"].run(
        "login", "--server", SERVER, "--email", acme.owner_email, input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.stderr
    assert PASSWORD not in result.output
    assert people["owner"].json("whoami")["user"]["id"] == acme.owner_id


def test_tour_org_team_invite_member_key_audit(
    people: dict[str, Cli], factory: Factory, client: TestClient
) -> None:
    acme = factory.tenant("Acme AI")
    owner, bob = people["owner"], people["bob"]
    assert owner.login(acme.owner_email).exit_code == 0

    # An organization whose second owner has no account yet: the link is printed.
    created = owner.ok(
        "org", "create", "Labs", "labs", "--owner-email", "newbie@example.com", "--plan",
        "professional", "--billing-email", "bills@example.com",
    )  # fmt: skip
    assert "newbie@example.com has no account yet" in created
    # Links use the address the request came in on while TENANTRY_BASE_URL is unset.
    assert "http://testserver/invitations/tni_" in created
    org = owner.json("org", "show", "labs")
    assert (org["plan"], org["billing_email"]) == ("professional", "bills@example.com")
    assert {o["slug"] for o in owner.json("org", "list")} == {"acme-ai", "labs"}
    assert owner.json("org", "update", "labs", "--name", "Labs Inc")["name"] == "Labs Inc"

    team = owner.json("team", "create", "labs", "Research", "--description", "Big models")
    sub = owner.json("team", "create", "labs", "Vision", "--parent", "labs/research")
    assert sub["parent_team_id"] == team["id"]
    assert [t["slug"] for t in owner.json("team", "list", "labs")] == ["research", "vision"]
    assert owner.json("team", "show", team["id"])["description"] == "Big models"

    # Bob signs up, gets invited, accepts with his own login.
    factory.user("bob@example.com")
    invitation = owner.json("invite", "create", "labs", "bob@example.com", "--role", "member")
    assert invitation["token"].startswith("tni_")
    pending = owner.json("invite", "list", "labs")
    assert [i["email"] for i in pending] == ["newbie@example.com", "bob@example.com"]
    assert bob.login("bob@example.com").exit_code == 0
    accepted = bob.ok("invite", "accept", invitation["token"])
    assert accepted.startswith("Accepted the invitation")

    added = owner.json(
        "team", "add-member", "labs/research", "bob@example.com", "--role", "developer"
    )
    assert (added["email"], added["role"]) == ("bob@example.com", "editor")
    assert "bob@example.com" in owner.ok("team", "members", "labs/research")
    assert {m["email"] for m in owner.json("org", "members", "labs")} >= {"bob@example.com"}

    # An API key, limited to the team, usable as TENANTRY_TOKEN, dead once revoked.
    before = datetime.now(UTC)
    key = owner.json(
        "apikey", "create", "labs", "--name", "ci", "--team", "labs/research",
        "--permissions", "team:read,member:read", "--expires", "30d",
    )  # fmt: skip
    assert key["secret"].startswith("tnt_") and key["team_id"] == team["id"]
    assert sorted(key["permissions"]) == ["member:read", "team:read"]
    expires = datetime.fromisoformat(key["expires_at"])
    assert before + timedelta(days=30) <= expires <= datetime.now(UTC) + timedelta(days=30)
    as_key = owner.json("whoami", TENANTRY_TOKEN=key["secret"])
    assert (as_key["principal_type"], as_key["api_key_id"]) == ("api_key", key["id"])
    assert [k["id"] for k in owner.json("apikey", "list", "labs")] == [key["id"]]
    assert "ci" in owner.ok("apikey", "list", "labs")
    assert owner.json("apikey", "revoke", key["id"])["revoked_at"] is not None
    refused = owner.run("whoami", TENANTRY_TOKEN=key["secret"])
    assert refused.exit_code == 3
    assert one_error_line(refused).startswith("error: 401 invalid_api_key: ")

    # The audit trail of all of the above, with filters.
    actions = [e["action"] for e in owner.json("audit", "list", "labs")]
    assert actions == [
        "organization.created",
        "organization.updated",
        "team.created",
        "team.created",
        "invitation.created",
        "invitation.accepted",
        "team.member.added",
        "api_key.created",
        "api_key.revoked",
    ]
    teams_only = owner.json("audit", "list", "labs", "--action", "team.")
    assert [e["action"] for e in teams_only] == [
        "team.created",
        "team.created",
        "team.member.added",
    ]
    by_bob = owner.json("audit", "list", "labs", "--actor", "bob@example.com")
    assert [e["action"] for e in by_bob] == ["invitation.accepted"]
    assert owner.json("audit", "list", "labs", "--since", "2999-01-01") == []
    assert owner.json("audit", "list", "labs", "--until", "1d", "--limit", "2") != []
    assert "team.member.added" in owner.ok("audit", "list", "labs")

    # Winding down: remove, transfer, revoke, delete.
    assert owner.json("team", "remove-member", "labs/research", "bob@example.com")["removed"]
    transfer = owner.json("org", "transfer", "labs", "bob@example.com")
    assert transfer["role"] == "owner"
    late = owner.json("invite", "create", "labs", "carol@example.com", "--role", "member")
    assert owner.json("invite", "revoke", late["id"])["status"] == "revoked"
    assert bob.ok("team", "delete", "labs/vision", "--confirm", "vision").startswith("Deleted")
    assert bob.json("org", "delete", "labs", "--confirm", "labs") == {
        "deleted": "organization",
        "org": "labs",
    }
    gone = Client(SERVER, http=client)
    gone.login("bob@example.com", PASSWORD)
    assert [o.slug for o in gone.iter_orgs()] == []


def test_every_command_prints_parseable_json(people: dict[str, Cli], factory: Factory) -> None:
    acme = factory.tenant("Acme AI")
    owner = people["owner"]
    owner.login(acme.owner_email)
    slug = acme.org_slug
    team = owner.json("team", "create", slug, "Research")
    outputs = [
        owner.json("whoami"),
        owner.json("org", "list"),
        owner.json("org", "show", slug),
        owner.json("org", "members", slug),
        owner.json("team", "list", slug),
        owner.json("team", "show", f"{slug}/research"),
        owner.json("team", "members", team["id"]),
        owner.json("invite", "create", slug, "x@example.com", "--role", "admin"),
        owner.json("invite", "list", slug, "--status", "all"),
        owner.json("apikey", "create", slug),
        owner.json("apikey", "list", slug),
        owner.json("audit", "list", slug),
        owner.json("logout"),
    ]
    assert all(isinstance(out, dict | list) for out in outputs)
    assert outputs[-1] == {"signed_out": True}


@pytest.mark.parametrize(
    ("args", "exit_code", "line"),
    [
        (["org", "show", "no-such-org"], 1, "error: 404 not_found: Organization not found"),
        (["team", "show", "acme-ai/nope"], 1, "error: no team 'nope' in organization 'acme-ai'"),
        (
            ["org", "create", "Again", "acme-ai"],
            1,
            "error: 409 slug_taken: The slug 'acme-ai' is taken",
        ),
        (
            ["org", "delete", "acme-ai", "--confirm", "acme"],
            1,
            "error: 422 confirmation_mismatch: Type the organization's slug in `confirm` to "
            "delete it",
        ),
        (
            ["apikey", "create", "acme-ai", "--expires", "soon"],
            2,
            "error: --expires: expected a duration like 30d, 12h or 90m, not 'soon'",
        ),
        (
            ["org", "update", "acme-ai"],
            2,
            "error: nothing to change: give --name or --billing-email",
        ),
        (
            ["audit", "list", "acme-ai", "--since", "last tuesday"],
            2,
            "error: --since: expected an ISO time like 2026-01-31T09:00 or a duration like 7d, "
            "not 'last tuesday'",
        ),
    ],
)
def test_errors_are_one_line_on_stderr(
    people: dict[str, Cli], factory: Factory, args: list[str], exit_code: int, line: str
) -> None:
    acme = factory.tenant("Acme AI")
    people["owner"].login(acme.owner_email)
    result = people["owner"].run(*args)
    assert result.exit_code == exit_code
    assert one_error_line(result) == line


def test_forbidden_for_a_weak_role(people: dict[str, Cli], factory: Factory) -> None:
    acme = factory.tenant("Acme AI")
    factory.member(acme)  # makes sure the org has more than its owner
    _, email, _ = factory.user()
    owner, member = people["owner"], people["member"]
    owner.login(acme.owner_email)
    token = owner.json("invite", "create", acme.org_slug, email, "--role", "member")["token"]
    member.login(email)
    member.ok("invite", "accept", token)
    result = member.run("org", "update", acme.org_slug, "--name", "Mine")
    assert result.exit_code == 1
    assert one_error_line(result).startswith("error: 403 ")
    assert "org:update" in result.stderr


def test_not_signed_in_bad_password_and_unreachable_server(
    people: dict[str, Cli], factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = factory.tenant()
    nobody = people["nobody"]
    result = nobody.run("org", "list")
    assert result.exit_code == 3
    assert one_error_line(result) == (
        "error: not signed in; run `tenantry login --server URL --email EMAIL`"
    )

    wrong = nobody.run(
        "login", "--server", SERVER, "--email", acme.owner_email, "--password-stdin",
        input="not the password\n",
    )  # fmt: skip
    assert wrong.exit_code == 3
    assert one_error_line(wrong).startswith("error: 401 invalid_credentials: ")
    assert not nobody.config_file.exists()

    empty = nobody.run("login", "--email", acme.owner_email, "--password-stdin", input="")
    assert empty.exit_code == 2
    assert one_error_line(empty) == "error: --password-stdin: nothing was read from standard input"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setattr(
        connection, "http_override", httpx.Client(transport=httpx.MockTransport(refuse))
    )
    down = nobody.run(
        "login", "--server", "http://down.example", "--email", "a@example.com",
        "--password-stdin", input="whatever\n",
    )  # fmt: skip
    assert down.exit_code == 4
    assert one_error_line(down) == "error: cannot reach http://down.example: connection refused"


def test_expired_access_token_is_refreshed_and_saved(
    people: dict[str, Cli], factory: Factory, clock: FrozenClock
) -> None:
    acme = factory.tenant("Acme AI")
    owner = people["owner"]
    owner.login(acme.owner_email)
    first = owner.stored()

    clock.advance(seconds=901)  # past the 900 s access-token lifetime
    assert owner.json("org", "show", acme.org_slug)["id"] == acme.org_id
    second = owner.stored()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert stat.S_IMODE(os.stat(owner.config_file).st_mode) == 0o600

    # Only the saved, rotated refresh token can work now (the first one is spent).
    clock.advance(seconds=901)
    assert owner.json("whoami")["user"]["id"] == acme.owner_id
    assert owner.stored()["refresh_token"] != second["refresh_token"]


def test_logout_ends_the_session_and_forgets_it(
    people: dict[str, Cli], factory: Factory, client: TestClient
) -> None:
    acme = factory.tenant()
    owner = people["owner"]
    owner.login(acme.owner_email)
    access = owner.stored()["access_token"]
    assert owner.ok("logout") == f"Signed out of {SERVER}\n"
    assert set(owner.stored()) == {"server", "email"}
    with pytest.raises(Unauthenticated):
        Client(SERVER, access, http=client).me()
    assert owner.run("whoami").exit_code == 3
    assert owner.ok("logout") == "Not signed in.\n"


def test_environment_overrides_server_and_token(
    people: dict[str, Cli], factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = factory.tenant()
    owner = people["owner"]
    owner.login(acme.owner_email)
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"code": "invalid_token", "detail": "Nope"})

    monkeypatch.setattr(
        connection, "http_override", httpx.Client(transport=httpx.MockTransport(record))
    )
    result = owner.run("whoami", TENANTRY_SERVER="http://other.example", TENANTRY_TOKEN="tok")
    assert result.exit_code == 3
    assert [(r.url.host, r.headers["authorization"]) for r in seen] == [
        ("other.example", "Bearer tok")
    ]
