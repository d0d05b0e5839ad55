"""``serve`` over TLS with a certificate made at test time (a test CA, and a server
certificate for 127.0.0.1 and localhost): a peer given the CA (``--ca-file``) pulls over
https; one without it fails with a TransportError and stores nothing; request signatures
work over TLS, with https's default port dropped from ``@authority`` (RFC 9421 §2.2.3).
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from bench.pki import make_ca, make_pki
from hashfed.federation.cli import main as cli
from hashfed.federation.home import Home
from hashfed.federation.sync.transport import HttpPeer, make_ssl_context
from hashfed.keys.errors import TransportError
from hashfed.protocol.entries import Entry
from tests.helpers import (
    assert_problem,
    configure,
    connect,
    md5,
    merged_list,
    send,
    sign_for,
    snapshot,
    stage_and_publish,
)

A, B = "a.example", "b.example"
CHECKPOINT = f"/v1/logs/{A}/default/checkpoint"


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:  # type: ignore[no-untyped-def]
    """A test CA, a server certificate for localhost and 127.0.0.1 signed by it
    (``bench.pki``), and another CA that signed nothing here."""
    root = tmp_path_factory.mktemp("pki")
    made = make_pki(root)
    _, other = make_ca("some other CA")
    (root / "other-ca.pem").write_bytes(other.public_bytes(serialization.Encoding.PEM))
    return Pki(made.ca, made.cert, made.key, root / "other-ca.pem")


@pytest.fixture
def homes(make_home) -> tuple[Home, Home]:  # type: ignore[no-untyped-def]
    a, b = make_home(A), make_home(B)
    stage_and_publish(a, [Entry.add("md5", md5(1), ["x:1"]), Entry.add("md5", md5(2))])
    stage_and_publish(a, [Entry.add("md5", md5(3))])
    return a, b


def _cli(home: Home, *args: str) -> int:
    return cli(["--home", str(home.path), *args])


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
async def test_pull_over_https_with_the_ca_file(pki: Pki, homes, start_node, capsys, name: str) -> None:  # type: ignore[no-untyped-def]
    a, b = homes
    service = await start_node(a, tls_cert=str(pki.cert), tls_key=str(pki.key))
    url = f"https://{name}:{service.bound_port}"
    assert service.url.startswith("https://")
    connect(b, a)  # a trusts b and grants it; b trusts a's key
    vkey = a.signers[0].vkey()
    assert _cli(b, "peer", "add", A, "--url", url, "--key", vkey, "--ca-file", str(pki.ca)) == 0
    capsys.readouterr()

    assert await asyncio.to_thread(_cli, b, "pull") == 0
    assert capsys.readouterr().out == f"{A}: {A}/default: updated 0 -> 2 (3 entries)\n"
    assert merged_list(b) == merged_list(a)


async def test_tls_files_in_config_are_relative_to_the_home(pki: Pki, homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, b = homes
    shutil.copy(pki.cert, a.path / "cert.pem")
    shutil.copy(pki.key, a.path / "key.pem")
    a = configure(a, server={"tls_cert": "cert.pem", "tls_key": "key.pem"})
    service = await start_node(a)
    connect(b, a)
    async with aiohttp.ClientSession() as session:
        peer = HttpPeer(session, service.url, b.signers[0], clock=service.node.clock, ca_file=str(pki.ca))
        assert [x["size"] for x in await peer.list_logs()] == [2]


@pytest.mark.parametrize("ca", [None, "other"], ids=["system-store", "another-ca"])
async def test_peer_without_the_ca_fails_and_stores_nothing(pki: Pki, homes, start_node, capsys, ca) -> None:  # type: ignore[no-untyped-def]
    a, b = homes
    service = await start_node(a, tls_cert=str(pki.cert), tls_key=str(pki.key))
    connect(b, a, url=service.url)
    ca_file = str(pki.other_ca) if ca else None
    before = snapshot(b)
    async with aiohttp.ClientSession() as session:
        peer = HttpPeer(session, service.url, b.signers[0], clock=service.node.clock, ca_file=ca_file)
        with pytest.raises(TransportError, match="certificate verify failed") as failed:
            await peer.list_logs()
    assert isinstance(failed.value.__cause__, aiohttp.ClientConnectorCertificateError)
    assert failed.value.status is None

    # The CLI says so in one line, exits non-zero, and stores nothing of a.
    if ca is None:
        assert await asyncio.to_thread(_cli, b, "pull") == 2
        err = capsys.readouterr().err
        assert err.startswith(f"{A}: pull failed: ") and "certificate verify failed" in err
    assert snapshot(b) == before


async def test_stalled_tls_handshake_is_cut_off(pki: Pki, homes, start_node) -> None:  # type: ignore[no-untyped-def]
    a, _ = homes
    a = configure(a, limits={"header_timeout_s": 1.0})
    service = await start_node(a, tls_cert=str(pki.cert), tls_key=str(pki.key))
    reader, writer = await asyncio.open_connection("127.0.0.1", service.bound_port)
    started = time.monotonic()
    try:
        writer.write(b"\x16\x03\x01")  # the first bytes of a ClientHello, and no more
        try:
            assert await asyncio.wait_for(reader.read(), 5) == b""
        except ConnectionResetError:
            pass
    finally:
        writer.close()
    assert 0.9 <= time.monotonic() - started <= 3.0


def test_unreadable_ca_file_is_a_transport_error(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="cannot load CA file"):
        make_ssl_context(str(tmp_path / "missing.pem"))


# -- @authority over TLS ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tls", "signed_for", "host", "status", "slug"),
    [
        (True, "https://hashfed.test", "hashfed.test", 200, None),
        (True, "https://hashfed.test", "hashfed.test:443", 200, None),
        (True, "https://hashfed.test", "HashFed.Test:443", 200, None),
        (True, "https://hashfed.test:443", "hashfed.test", 200, None),
        (True, "https://hashfed.test", "hashfed.test:80", 401, "bad-signature"),
        (True, "https://hashfed.test:80", "hashfed.test:80", 401, "wrong-authority"),
        (True, "https://other.test", "other.test:443", 401, "wrong-authority"),
        (False, "http://hashfed.test", "hashfed.test:80", 200, None),
        (False, "http://hashfed.test", "hashfed.test:443", 401, "bad-signature"),
        (False, "http://hashfed.test:443", "hashfed.test:443", 401, "wrong-authority"),
    ],
    ids=[
        "https-no-port",
        "https-default-port-dropped",
        "https-host-case-folded",
        "https-signed-with-default-port",
        "https-port-80-is-not-default",
        "https-port-80-foreign",
        "https-foreign-name",
        "http-default-port-dropped",
        "http-port-443-is-not-default",
        "http-port-443-foreign",
    ],
)
async def test_authority_default_port_rule(pki: Pki, homes, start_node, tls, signed_for, host, status, slug) -> None:  # type: ignore[no-untyped-def]
    a, b = homes
    connect(b, a)
    scheme = "https" if tls else "http"
    kwargs = {"tls_cert": str(pki.cert), "tls_key": str(pki.key)} if tls else {}
    service = await start_node(a, public_urls=(f"{scheme}://hashfed.test",), **kwargs)
    headers = sign_for(signed_for, b.signers[0], "GET", CHECKPOINT)
    ssl = make_ssl_context(str(pki.ca)) if tls else True
    async with aiohttp.ClientSession() as session:
        reply = await send(session, service.url, "GET", CHECKPOINT, headers={**headers, "Host": host}, ssl=ssl)
    if slug is None:
        assert reply.status == 200, reply
    else:
        assert_problem(reply, status, slug)
