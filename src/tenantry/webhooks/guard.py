"""The SSRF guard: an endpoint's URL must be https and its host must resolve only to public
addresses, unless the operator allows private receivers (`TENANTRY_WEBHOOKS_ALLOW_PRIVATE_URLS`,
for on-premise receivers and tests).

Checked when an endpoint is saved and again before every attempt, where the request is then
sent to the very address that was checked (the host name still goes in `Host` and in TLS's SNI
and certificate check): a name that resolved to a public address when it was saved and to
127.0.0.1 now (DNS rebinding) is refused, and one that changes between the check and the
connection cannot slip past it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx

from tenantry.kit.errors import Unprocessable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedUrl(Exception):
    """The URL may not be sent to; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where an attempt goes: the URL to request and, when pinned, the host name it stands for."""

    url: str
    # Set when `url` names the checked address instead of the host: the host (for TLS's SNI and
    # certificate check) and the `Host` header (with the port, when not the scheme's own).
    host: str | None = None
    host_header: str | None = None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def parse(url: str, *, allow_private: bool) -> httpx.URL:
    """The URL's form alone: absolute, https (or http when private receivers are allowed), with a
    host and no credentials."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise RefusedUrl(f"not a valid URL ({exc})") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in allowed:
        raise RefusedUrl("the URL must use https")
    if not parsed.host:
        raise RefusedUrl("the URL has no host")
    if parsed.userinfo:
        raise RefusedUrl("the URL may not hold a user name or password")
    return parsed


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to (empty when it does not resolve)."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _refuse_private(host: str, addresses: list[IPAddress]) -> None:
    private = [a for a in addresses if not _is_public(a)]
    if private:
        raise RefusedUrl(
            f"{host} resolves to {private[0]}, a loopback, private, link-local or reserved "
            "address; set TENANTRY_WEBHOOKS_ALLOW_PRIVATE_URLS=true to allow such receivers"
        )


def check_saved_url(url: str, *, allow_private: bool) -> str:
    """The URL an endpoint may be saved with, or 422. A host that does not resolve now is
    accepted (its DNS may not be published yet); every attempt checks it again."""
    try:
        parsed = parse(url, allow_private=allow_private)
        if not allow_private:
            _refuse_private(parsed.host, resolve(parsed.host, _port(parsed)))
    except RefusedUrl as exc:
        raise Unprocessable(
            f"The webhook URL is refused: {exc}", code="webhook_url_refused"
        ) from None
    return str(parsed)


def target_of(url: str, *, allow_private: bool) -> Target:
    """Where to send an attempt now, or RefusedUrl."""
    parsed = parse(url, allow_private=allow_private)
    if allow_private:
        return Target(str(parsed))
    addresses = resolve(parsed.host, _port(parsed))
    if not addresses:
        raise RefusedUrl(f"{parsed.host} does not resolve")
    _refuse_private(parsed.host, addresses)
    if _literal(parsed.host) is not None:
        return Target(str(parsed))
    pinned = str(parsed.copy_with(host=str(addresses[0])))
    return Target(pinned, host=parsed.host, host_header=parsed.netloc.decode("ascii"))
