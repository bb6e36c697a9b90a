"""Fixtures of the SSO tests: a real OpenID provider, a SAML IdP and a DNS server, each on
loopback in this process, on the app's movable clock where they issue anything timed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.test_cli import people  # noqa: F401 - the CLI tests' fixture: the CLI as each person
from support.dns_server import LocalDns
from support.oidc_provider import OidcProvider
from support.saml_idp import SamlIdp
from tenantry.config import Settings
from tenantry.kit.clock import FrozenClock


@pytest.fixture
def provider(clock: FrozenClock) -> Iterator[OidcProvider]:
    found = OidcProvider(clock).start()
    yield found
    found.stop()


@pytest.fixture
def saml_idp(tmp_path: Path) -> SamlIdp:
    return SamlIdp(tmp_path)


@pytest.fixture
def dns() -> Iterator[LocalDns]:
    server = LocalDns().start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, dns: LocalDns) -> Settings:
    """The suite's settings, with domain verification asking the DNS server on loopback."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-" + "x" * 40,
        password_time_cost=1,
        password_memory_cost_kib=1024,
        dns_nameservers=[dns.address],
    )
