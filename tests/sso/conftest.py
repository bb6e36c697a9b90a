"""Fixtures of the SSO tests: a real OpenID provider, a SAML IdP and a DNS server, each on
loopback in this process, on the app's movable clock where they issue anything timed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.oidc_provider import OidcProvider
from support.saml_idp import SamlIdp
from tenantry.kit.clock import FrozenClock


@pytest.fixture
def provider(clock: FrozenClock) -> Iterator[OidcProvider]:
    found = OidcProvider(clock).start()
    yield found
    found.stop()


@pytest.fixture
def saml_idp(tmp_path: Path) -> SamlIdp:
    return SamlIdp(tmp_path)
