"""``hashfed token add|list|revoke``: a token for a known peer only, printed once and stored
as a hash; revoke ends it; errors are one line, exit 2, nothing stored."""

from __future__ import annotations

import hashlib

import pytest

from hashfed.keys import Signer
from tests.helpers import Cli

READER = "b.example"


@pytest.fixture
def peer(cli: Cli) -> Cli:
    cli.ok("peer", "add", READER, "--key", Signer.from_seed(READER, bytes(32)).vkey())
    return cli


def test_add_list_revoke(peer: Cli) -> None:
    code, out, err = peer("token", "add", READER)
    assert code == 0 and "shown once" in err
    token = out.strip()
    assert len(token) == 43
    from hashfed.federation.home import open_home

    with open_home(peer.home).open_store() as store:
        (row,) = store.tokens.all()
        digest = store.conn.execute("SELECT digest FROM reader_tokens").fetchone()[0]
        assert store.tokens.check(token).org == READER
    assert digest == hashlib.sha256(token.encode()).digest()
    listed = peer.ok("token", "list")
    assert listed.startswith(f"{row.id}\t{READER}\tcreated ") and "last used never\tactive" in listed
    assert peer.ok("token", "revoke", str(row.id)) == f"revoked reader token {row.id} of {READER}\n"
    assert "\trevoked " in peer.ok("token", "list")
    with open_home(peer.home).open_store() as store:
        assert store.tokens.check(token) is None


ERRORS = {
    "unknown org": (("token", "add", "nobody.example"), "nobody.example is not a peer"),
    "bad org": (("token", "add", "Not An Org"), "org"),
    "unknown id": (("token", "revoke", "9"), "no reader token 9"),
    "bad id": (("token", "revoke", "x"), "not a token id"),
    "superscript id": (("token", "revoke", "\u00b2"), "not a token id"),
    "arabic-indic id": (("token", "revoke", "\u0663"), "not a token id"),
    "id past sqlite": (("token", "revoke", str(2**63)), "not a token id"),
}


@pytest.mark.parametrize("name", list(ERRORS), ids=list(ERRORS))
def test_errors(peer: Cli, name: str) -> None:
    argv, message = ERRORS[name]
    code, out, err = peer(*argv)
    assert code == 2 and out == "" and message in err
    assert peer.ok("token", "list") == ""
