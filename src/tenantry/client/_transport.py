"""How the SDK's own `httpx` clients are set up (a client given `http=` is used as it is)."""

from __future__ import annotations

import ssl
from urllib.request import getproxies


def tls_verify(base_url: str) -> ssl.SSLContext | bool:
    """What the client checks server certificates against: httpx's default trust store (`True`),
    except where no request can use TLS at all. A client of an `http://` server sends every
    request to that server in plain HTTP (it follows no redirects), and with no proxy in the
    environment nothing else is reached; loading the trust store for it would cost some 20 ms
    at every start of the `tenantry` command. Its context then trusts no certificate: were TLS
    ever used, the handshake would fail rather than go unchecked."""
    if base_url.lower().startswith("http://") and not getproxies():
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, against an empty store
    return True
