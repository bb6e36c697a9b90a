"""A real DNS server on a loopback UDP port, in a thread of the test process (dnslib): it
answers TXT questions from the records a test publishes, NXDOMAIN for any other name."""

from __future__ import annotations

import threading
from typing import Any

from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import DNSLogger, DNSServer


class LocalDns:
    def __init__(self) -> None:
        self._records: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self.questions: list[str] = []
        quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-error,-data")
        self._server = DNSServer(self, address="127.0.0.1", port=0, logger=quiet)

    @property
    def address(self) -> str:
        host, port = self._server.server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> LocalDns:
        self._server.start_thread()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()

    def publish_txt(self, name: str, value: str) -> None:
        with self._lock:
            self._records.setdefault(name.lower().rstrip("."), []).append(value)

    def withdraw(self, name: str) -> None:
        with self._lock:
            self._records.pop(name.lower().rstrip("."), None)

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        self.questions.append(name)
        with self._lock:
            values = list(self._records.get(name, []))
        if not values:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if request.q.qtype == QTYPE.TXT:
            for value in values:
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(value), ttl=60))
        return reply


_shared: LocalDns | None = None


def shared_dns() -> LocalDns:
    """One server for a whole test process (the route-table suites share an app)."""
    global _shared
    if _shared is None:
        _shared = LocalDns().start()
    return _shared
