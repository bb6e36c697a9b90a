"""`tenantry mfa ...`, signing in with a code, and `tenantry security-policy ...` against the
real app; TOTP codes at the time of the clock the tests move."""

from __future__ import annotations

import re

from cli.test_cli import SERVER, Cli, one_error_line, people  # noqa: F401 - the fixture
from conftest import PASSWORD, Factory
from support.mfa import code_at, secret_of
from tenantry.kit.clock import FrozenClock


def test_enable_sign_in_with_a_code_and_disable(
    people: dict[str, Cli], factory: Factory, clock: FrozenClock
) -> None:
    _, email, _ = factory.user()
    ada = people["ada"]
    assert ada.login(email).exit_code == 0
    assert "is off" in ada.ok("mfa", "status")
    started = ada.json("mfa", "enable")
    secret = secret_of(started["provisioning_uri"])
    assert started["secret"] == secret
    wrong = ada.run("mfa", "enable", "--code", "000000")
    assert one_error_line(wrong).startswith("error: 422 invalid_mfa_code")
    enabled = ada.ok("mfa", "enable", "--code", code_at(secret, clock.now()))
    codes = re.findall(r"^  (\w{5}-\w{5})$", enabled, re.M)
    assert "Two-factor sign-in is on." in enabled and len(codes) == 10
    assert "10 backup codes left" in ada.ok("mfa", "status")

    # A new sign-in asks for the second step.
    bob = people["bob"]
    login = ["login", "--server", SERVER, "--email", email, "--password-stdin"]
    refused = bob.run(*login, "--code", "123456", input=PASSWORD + "\n")
    assert one_error_line(refused).startswith("error: 401 invalid_mfa_code")
    clock.advance(seconds=30)
    signed_in = bob.run(*login, "--code", code_at(secret, clock.now()), input=PASSWORD + "\n")
    assert signed_in.exit_code == 0, signed_in.stderr
    assert bob.json("whoami")["user"]["email"] == email
    assert bob.run(*login, "--code", codes[0], input=PASSWORD + "\n").exit_code == 0

    printed = bob.ok("mfa", "backup-codes", "--code", codes[1])
    new_codes = re.findall(r"^  (\w{5}-\w{5})$", printed, re.M)
    assert len(new_codes) == 10 and codes[2] not in new_codes
    assert ada.ok("mfa", "disable", "--code", new_codes[0]).strip() == "Two-factor sign-in is off."
    assert people["carol"].login(email).exit_code == 0  # the password alone again


def test_security_policy_show_and_set(people: dict[str, Cli], factory: Factory) -> None:
    tenant = factory.tenant("Policy Co")
    owner = people["owner"]
    assert owner.login(tenant.owner_email).exit_code == 0
    assert "password   (no rule)" in owner.ok("security-policy", "show", tenant.org_slug)
    shown = owner.ok(
        "security-policy", "set", tenant.org_slug,
        "password.min_length=16", "password.require_symbol=true", "mfa.required=true",
        "mfa.grace_days=7", "sessions.idle_timeout_minutes=60",
    )  # fmt: skip
    assert "min_length=16, require_symbol=True" in shown
    assert "required=True, grace_days=7" in shown
    policy = owner.json("security-policy", "show", tenant.org_slug)
    assert policy["sessions"]["idle_timeout_minutes"] == 60
    assert policy["password"]["min_length"] == 16  # kept when another rule changes
    owner.ok("security-policy", "set", tenant.org_slug, "password.history=3")
    assert owner.json("security-policy", "show", tenant.org_slug)["password"]["min_length"] == 16
    bad = owner.run("security-policy", "set", tenant.org_slug, "password.min_length=3")
    assert one_error_line(bad).startswith("error: 422 validation_error")
    unknown = owner.run("security-policy", "set", tenant.org_slug, "color.blue=1")
    assert one_error_line(unknown).startswith("error: 'color.blue': not a rule")
