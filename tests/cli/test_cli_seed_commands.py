"""The command lines of the user's documents work as written there (our names stay too):
`org create … --billing-plan P`, and `team add-member TEAM EMAIL --role R` for someone who is
not in the organization yet, who gets an invitation to it and to the team."""

from __future__ import annotations

from cli.test_cli import SERVER, Cli, one_error_line, people  # noqa: F401 - `people` is a fixture
from conftest import PASSWORD, Factory


def test_org_create_takes_billing_plan_as_the_plan(
    people: dict[str, Cli], factory: Factory
) -> None:
    acme = factory.tenant("Acme AI")
    owner = people["owner"]
    assert owner.login(acme.owner_email).exit_code == 0
    created = owner.json(
        "org", "create", "Acme Corp", "acme-corp", "--owner-email", "owner@acme.com",
        "--billing-plan", "professional",
    )  # fmt: skip
    assert (created["slug"], created["plan"]) == ("acme-corp", "professional")
    assert created["owner_invitation"]["email"] == "owner@acme.com"
    ours = owner.json("org", "create", "Labs", "--plan", "professional")
    assert ours["plan"] == "professional"
    unknown = owner.run("org", "create", "Nope", "--billing-plan", "no-such-plan")
    assert one_error_line(unknown).startswith("error: 422 invalid_plan")


def _signed_up(cli: Cli, email: str) -> None:
    cli.ok(
        "signup", "--server", SERVER, "--email", email, "--password-stdin", input=PASSWORD + "\n"
    )


def test_add_member_invites_someone_without_an_account_to_the_org_and_the_team(
    people: dict[str, Cli], factory: Factory
) -> None:
    acme = factory.tenant("Acme AI")
    owner = people["owner"]
    assert owner.login(acme.owner_email).exit_code == 0
    owner.ok("team", "create", "acme-ai", "ML Team")

    out = owner.ok("team", "add-member", "acme-ai/ml-team", "dev@acme.com", "--role", "developer")
    assert out.startswith(
        "dev@acme.com is not in the organization yet: invited to it and to team acme-ai/ml-team "
        "as editor. Send them this link (expires "
    )
    link = out.splitlines()[-1]
    assert link.startswith("http://testserver/invitations/tni_")
    pending = owner.json("invite", "list", "acme-ai")
    assert [(i["email"], i["role"], i["team_id"] is not None) for i in pending] == [
        ("dev@acme.com", "editor", True)
    ]

    dev = people["dev"]
    _signed_up(dev, "dev@acme.com")
    dev.ok("invite", "accept", link.rsplit("/", 1)[-1])
    me = dev.json("whoami")
    assert [(o["org_slug"], o["role"]) for o in me["organizations"]] == [("acme-ai", "member")]
    assert [(t["team_name"], t["role"]) for t in me["teams"]] == [("ML Team", "editor")]
    members = owner.json("team", "members", "acme-ai/ml-team")
    assert [(m["email"], m["role"]) for m in members] == [("dev@acme.com", "editor")]


def test_add_member_invites_an_existing_account_from_outside_the_org(
    people: dict[str, Cli], factory: Factory
) -> None:
    acme = factory.tenant("Acme AI")
    owner, viewer = people["owner"], people["viewer"]
    assert owner.login(acme.owner_email).exit_code == 0
    factory.user("viewer@example.com")
    invitation = owner.json(
        "team", "add-member", "acme-ai/default", "viewer@example.com", "--role", "viewer"
    )
    assert invitation["token"].startswith("tni_") and invitation["team_id"] == acme.team_id
    assert viewer.login("viewer@example.com").exit_code == 0
    viewer.ok("invite", "accept", invitation["token"])
    me = viewer.json("whoami")
    assert [(o["org_slug"], o["role"]) for o in me["organizations"]] == [("acme-ai", "member")]
    assert [(t["team_id"], t["role"]) for t in me["teams"]] == [(acme.team_id, "viewer")]

    # In the org now: adding them to another team is immediate, no invitation.
    owner.ok("team", "create", "acme-ai", "Research")
    added = owner.json(
        "team", "add-member", "acme-ai/research", "viewer@example.com", "--role", "viewer"
    )
    assert (added["email"], added["role"]) == ("viewer@example.com", "viewer")
    assert len(owner.json("invite", "list", "acme-ai")) == 0  # the accepted one is not pending


def test_add_member_by_user_id_or_with_a_role_one_cannot_give_invites_nobody(
    people: dict[str, Cli], factory: Factory
) -> None:
    acme = factory.tenant("Acme AI")
    outsider, _, _ = factory.user("outsider@example.com")
    owner = people["owner"]
    assert owner.login(acme.owner_email).exit_code == 0
    # A user id carries no email to send an invitation to: the API's answer stands.
    by_id = owner.run("team", "add-member", "acme-ai/default", outsider, "--role", "viewer")
    assert one_error_line(by_id).startswith("error: 422 not_an_org_member")
    bad_role = owner.run(
        "team", "add-member", "acme-ai/default", "x@example.com", "--role", "emperor"
    )
    assert one_error_line(bad_role).startswith("error: 422 invalid_role")
    assert owner.json("invite", "list", "acme-ai") == []
