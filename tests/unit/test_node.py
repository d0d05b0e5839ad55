"""A node's request guards as it builds them (federation.node): which @authority values it
answers to (PROTOCOL §6), and the start time its nonce cache refuses older requests from.

No sockets: ``listening_on`` is told what a listener bound, as ``NodeService`` does.
"""

from __future__ import annotations

import pytest

from hashfed.federation.http.node import Node
from tests.helpers import FakeClock, configure

ORG = "a.example"
PORT = 8470
PUBLIC = "https://hashfed.a.example"

# (public URLs, listener host, TLS) → the authorities a signed request may name
AUTHORITIES = {
    "loopback": ((), "127.0.0.1", False, {"127.0.0.1:8470", "localhost:8470"}),
    "localhost": ((), "localhost", False, {"127.0.0.1:8470", "localhost:8470"}),
    "ipv6-loopback": ((), "::1", False, {"[::1]:8470", "127.0.0.1:8470", "localhost:8470"}),
    # A wildcard is no name a client can send in Host: loopback names only.
    "ipv4-wildcard": ((), "0.0.0.0", False, {"127.0.0.1:8470", "localhost:8470"}),
    "ipv6-wildcard": ((), "::", False, {"127.0.0.1:8470", "localhost:8470"}),
    "empty-host-is-a-wildcard": ((), "", False, {"127.0.0.1:8470", "localhost:8470"}),
    "named-host": ((), "Node.A.Example", False, {"node.a.example:8470"}),
    "interface-address": ((), "192.0.2.7", True, {"192.0.2.7:8470"}),
    # Once a public URL is configured, it alone is accepted.
    "public-url-loopback-listener": ((PUBLIC,), "127.0.0.1", False, {"hashfed.a.example"}),
    "public-url-wildcard-listener": ((PUBLIC,), "0.0.0.0", True, {"hashfed.a.example"}),
    "public-urls-two": (
        (PUBLIC, "http://hashfed.a.example:8080"),
        "::",
        False,
        {"hashfed.a.example", "hashfed.a.example:8080"},
    ),
}


@pytest.mark.parametrize(
    ("public_urls", "host", "tls", "expected"), list(AUTHORITIES.values()), ids=list(AUTHORITIES)
)
@pytest.mark.parametrize("source", ["config", "serve-flag"])
def test_authorities(make_home, source, public_urls, host, tls, expected) -> None:  # type: ignore[no-untyped-def]
    home = make_home(ORG)
    if source == "config":
        home = configure(home, server={"public_urls": list(public_urls)})
    node = Node(home)
    try:
        if source == "serve-flag":  # as NodeService does with ``serve --public-url``
            node.add_public_urls(public_urls)
        node.listening_on(host, PORT, tls=tls)
        assert node.authorities == expected
    finally:
        node.close()


def test_a_public_url_added_after_the_listener_still_replaces_it(make_home) -> None:  # type: ignore[no-untyped-def]
    node = Node(make_home(ORG))
    try:
        node.listening_on("127.0.0.1", PORT, tls=False)
        assert node.authorities == {"127.0.0.1:8470", "localhost:8470"}
        node.add_public_urls([PUBLIC])
        assert node.authorities == {"hashfed.a.example"}
    finally:
        node.close()


def test_default_https_port_is_dropped(make_home) -> None:  # type: ignore[no-untyped-def]
    node = Node(make_home(ORG))
    try:
        node.listening_on("127.0.0.1", 443, tls=True)
        assert node.authorities == {"127.0.0.1", "localhost"}
    finally:
        node.close()


@pytest.mark.parametrize("now", [1_800_000_000.0, 1_800_000_000.999], ids=["whole", "fraction"])
def test_nonce_cache_refuses_requests_dated_before_the_start(make_home, now: float) -> None:  # type: ignore[no-untyped-def]
    node = Node(make_home(ORG), clock=FakeClock(now))
    try:
        assert node.nonces.not_before == node.started_s == 1_800_000_000
        assert node.nonces.window_s == node.config.limits.signature_window_s
    finally:
        node.close()
