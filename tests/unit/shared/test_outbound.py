"""The SSRF guard of outbound requests, against a real receiver on loopback."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from shared.outbound import address_allowed, literal_host_allowed, post
from tests.helpers.receiver import receiver

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


NOT_PUBLIC = [
    *("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1"),
    *("::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::", "240.0.0.1"),
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_private_loopback_and_special_addresses_are_refused(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address), ())


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address), ())


def test_an_allowed_network_lets_its_addresses_through() -> None:
    assert address_allowed(ipaddress.ip_address("127.0.0.1"), LOOPBACK)
    assert not address_allowed(ipaddress.ip_address("10.0.0.1"), LOOPBACK)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost", "127.0.0.1", "[::1]", "10.0.0.7"])
def test_plainly_private_hosts_are_refused_early(host: str) -> None:
    assert not literal_host_allowed(host, ())


def test_names_are_left_to_the_check_at_delivery() -> None:
    assert literal_host_allowed("hooks.example.com", ())


def test_a_loopback_url_is_refused_and_nothing_reaches_it_unless_allowed() -> None:
    with receiver() as hook:
        outcome = asyncio.run(post(hook.url, b"{}", {}, timeout=2, networks=()))
        assert outcome.status_code is None and "not a public address" in (outcome.error or "")
        assert hook.received == []


def test_a_name_resolving_to_loopback_is_refused() -> None:
    with receiver() as hook:
        url = hook.url.replace("127.0.0.1", "localhost")
        outcome = asyncio.run(post(url, b"{}", {}, timeout=2, networks=()))
        assert outcome.error is not None and "localhost resolves to" in outcome.error
        assert hook.received == []


def test_an_allowed_loopback_url_gets_the_body_with_the_urls_host_header() -> None:
    with receiver(204) as hook:
        url = hook.url.replace("127.0.0.1", "localhost")
        outcome = asyncio.run(post(url, b'{"a":1}', {"X-Test": "yes"}, timeout=2, networks=LOOPBACK))
        (request,) = hook.received
    assert outcome.status_code == 204 and outcome.error is None
    assert request.body == b'{"a":1}' and request.headers["X-Test"] == "yes"
    assert request.headers["Host"] == f"localhost:{url.split(':')[2].split('/')[0]}"


def test_a_receiver_slower_than_the_timeout_is_an_error_without_status() -> None:
    with receiver(("sleep", 1.0, 200)) as hook:
        outcome = asyncio.run(post(hook.url, b"{}", {}, timeout=0.3, networks=LOOPBACK))
    assert outcome.status_code is None and outcome.error == "no answer within 0.3 seconds"


def test_redirects_are_not_followed() -> None:
    with receiver(302) as hook:
        outcome = asyncio.run(post(hook.url, b"{}", {}, timeout=2, networks=LOOPBACK))
        assert outcome.status_code == 302 and len(hook.received) == 1
