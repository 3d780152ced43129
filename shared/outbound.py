"""Outbound HTTP to URLs users gave us, behind an SSRF guard.

A user's URL must not reach into our own network: its host is resolved, every address it
resolves to must be public (not private, loopback, link-local, multicast, reserved or
unspecified) unless it lies in ``WEBHOOK_ALLOWED_NETWORKS``, and the request then connects to
the vetted address itself, so a second DNS answer cannot differ (DNS rebinding). The Host
header and TLS server name stay those of the URL. Webhooks follow no redirects; a TES task's
``http(s)://`` input (``download``) follows a few, each vetted the same way. Proxies from
the environment are not used. The gateway applies the same rule early to URLs whose host is
an IP literal.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

import httpx

from shared.errors import Invalid, Unavailable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class Refused(Invalid):
    """The URL leads to an address outbound requests may not reach."""


def address_allowed(address: IPAddress, networks: Iterable[Network]) -> bool:
    """Whether requests may go to ``address``: a public one, or one in the allowed ``networks``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in networks):
        return True
    special = (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )
    return address.is_global and not special


def literal_host_allowed(host: str, networks: Iterable[Network]) -> bool:
    """False for a host plainly not public (an IP literal outside ``networks``, or localhost); True otherwise."""
    networks = tuple(networks)
    host = host.strip("[]").lower().rstrip(".")
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return address_allowed(ipaddress.ip_address("127.0.0.1"), networks)
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return True  # a name: checked when it is resolved, at delivery
    return address_allowed(address, networks)


@dataclass(frozen=True)
class Outcome:
    """What one POST came to: the status code, or why there was none, and how long it took."""

    status_code: int | None
    error: str | None
    duration_ms: int


async def resolve(host: str, port: int, networks: tuple[Network, ...]) -> IPAddress:
    """The address to connect to for ``host``; Refused if any address it resolves to may not be reached."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise Refused(f"{host} does not resolve: {exc.strerror or exc}") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise Refused(f"{host} does not resolve")
    for address in addresses:
        if not address_allowed(address, networks):
            named = "" if host.strip("[]") == str(address) else f"{host} resolves to "
            raise Refused(f"{named}{address}: not a public address")
    return addresses[0]


async def _pinned(
    target: httpx.URL, headers: dict[str, str], networks: tuple[Network, ...]
) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """The URL to request (its host a vetted address), the headers naming the real host, and the TLS name."""
    host, port = target.host, target.port or (443 if target.scheme == "https" else 80)
    address = await resolve(host, port, networks)
    pinned = target.copy_with(host=str(address))
    default_port = target.port is None
    sent = headers | {"Host": host if default_port else f"{host}:{port}"}
    if ":" in host and "Host" in sent:  # an IPv6 literal is bracketed in the Host header
        sent["Host"] = f"[{host}]" if default_port else f"[{host}]:{port}"
    extensions = {"sni_hostname": host} if target.scheme == "https" else {}
    return pinned, sent, extensions


async def post(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float, networks: tuple[Network, ...]
) -> Outcome:
    """POST ``body`` to ``url`` through the guard; the answer's body is never read."""
    started = time.monotonic()

    def outcome(status_code: int | None = None, error: str | None = None) -> Outcome:
        return Outcome(status_code, error, int((time.monotonic() - started) * 1000))

    target = httpx.URL(url)
    try:
        pinned, sent, extensions = await _pinned(target, headers, networks)
    except Refused as exc:
        return outcome(error=exc.detail)
    try:
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout) as client:
            async with asyncio.timeout(timeout):
                request = client.build_request("POST", pinned, content=body, headers=sent, extensions=extensions)
                response = await client.send(request, stream=True)
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        return outcome(error=f"no answer within {timeout:g} seconds")
    except httpx.HTTPError as exc:
        return outcome(error=f"{type(exc).__name__}: {exc}"[:500])
    return outcome(status_code=response.status_code)


async def download(
    url: str, sink: BinaryIO, *, max_bytes: int, timeout: float, networks: tuple[Network, ...], redirects: int = 5
) -> int:
    """GET ``url`` into ``sink`` through the guard, following up to ``redirects`` redirects (each vetted); bytes.

    More than ``max_bytes`` is ``Invalid``, as is an answer other than 200; no answer (``timeout`` is per
    read, not in all), or a 5xx, is ``Unavailable``.
    """
    target = httpx.URL(url)
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout) as client:
        for _ in range(redirects + 1):
            if target.scheme not in ("http", "https"):
                raise Invalid(f"{url}: redirected to {target.scheme}://, which is not fetched")
            pinned, sent, extensions = await _pinned(target, {}, networks)
            request = client.build_request("GET", pinned, headers=sent, extensions=extensions)
            try:
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        target = target.join(response.headers["location"])
                        continue
                    if response.status_code >= 500:
                        raise Unavailable(f"{url}: the server answered {response.status_code}")
                    if response.status_code != 200:
                        raise Invalid(f"{url}: the server answered {response.status_code}")
                    size = 0
                    async for block in response.aiter_bytes():
                        size += len(block)
                        if size > max_bytes:
                            raise Invalid(f"{url}: larger than {max_bytes} bytes")
                        sink.write(block)
                    return size
                finally:
                    await response.aclose()
            except (TimeoutError, httpx.HTTPError) as exc:
                raise Unavailable(f"{url}: no whole answer ({type(exc).__name__})") from exc
    raise Invalid(f"{url}: more than {redirects} redirects")
