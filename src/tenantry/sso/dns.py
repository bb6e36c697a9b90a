"""The DNS question of domain verification: the TXT records at a name, asked through a resolver
the app is given (the system's by default; tests point one at a DNS server on loopback)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

import dns.exception
import dns.resolver

LIFETIME_SECONDS: Final = 5.0


class TxtLookupFailed(Exception):
    """The resolver could not answer (timeout, server failure): not the same as no record."""


class TxtResolver(Protocol):
    def txt(self, name: str) -> list[str]: ...


class DnsTxtResolver:
    """dnspython's resolver; `nameservers` as `host` or `host:port`, none for the system's."""

    def __init__(self, nameservers: Sequence[str] = ()) -> None:
        if nameservers:
            self._resolver = dns.resolver.Resolver(configure=False)
            hosts, ports = [], set()
            for server in nameservers:
                host, _, port = (
                    server.rpartition(":") if server.count(":") == 1 else (server, "", "")
                )
                hosts.append(host)
                if port:
                    ports.add(int(port))
            self._resolver.nameservers = hosts
            if ports:
                self._resolver.port = ports.pop()
        else:
            self._resolver = dns.resolver.Resolver()
        self._resolver.lifetime = LIFETIME_SECONDS
        # No cache: a record just published is read as it is now.

    def txt(self, name: str) -> list[str]:
        try:
            answer = self._resolver.resolve(name, "TXT", raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise TxtLookupFailed(str(exc)) from None
        found = []
        for record in answer:
            strings = getattr(record, "strings", ())
            found.append(b"".join(strings).decode("utf-8", "replace"))
        return found
