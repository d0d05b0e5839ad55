"""``hashfed token``: reader tokens for the TAXII 2.1 API (``http/taxii.py``), for
clients that cannot sign requests. A token reads exactly what its org may read on ``/v1/``.

``token add ORG`` prints the token once (it is stored only as a hash: ``store/tokens.py``);
``token list`` shows every token ever made, ``token revoke ID`` ends one for good.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import sys

from hashfed.federation.cli._common import CliError, _load, _stamp
from hashfed.federation.store.tokens import TOKEN_BYTES
from hashfed.keys.encoding import decimal
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import check_org, show

MAX_TOKEN_ID = 2**63 - 1  # an SQLite row id


def cmd_token_add(args: argparse.Namespace) -> int:
    home = _load(args)
    org = check_org(args.org)
    with home.open_store() as store:
        if store.peers.get(org) is None:
            raise CliError(f"{org} is not a peer of this node: add it first (hashfed peer add)")
        token = base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).rstrip(b"=").decode()
        made = store.tokens.add(org, token, now=_stamp())
    print(token)
    print(
        f"reader token {made.id} for {org}: shown once, stored only as a hash. TAXII 2.1 at"
        f" <this node's URL>/taxii2/ with HTTP Basic user {org} and this token as the password,"
        " or 'Authorization: Bearer <token>'.",
        file=sys.stderr,
    )
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    home = _load(args)
    with home.open_store() as store:
        tokens = store.tokens.all()
    for token in tokens:
        state = f"revoked {token.revoked_at}" if token.revoked_at else "active"
        print(
            f"{token.id}\t{token.org}\tcreated {token.created_at}"
            f"\tlast used {token.last_used or 'never'}\t{state}"
        )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    home = _load(args)
    with home.open_store() as store:
        revoked = store.tokens.revoke(args.id, now=_stamp())
    print(f"revoked reader token {revoked.id} of {revoked.org}")
    return 0


def _token_id(text: str) -> int:
    """An argparse type: a token's row id, ASCII digits only (``keys.encoding.decimal``)."""
    try:
        return decimal(text, what="a token id", max_value=MAX_TOKEN_ID)
    except ProtocolError as exc:
        raise argparse.ArgumentTypeError(f"{show(text)} is not a token id (see hashfed token list)") from exc


def add_token_parser(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    """``hashfed token add|list|revoke`` (called by ``build_parser``)."""
    token = sub.add_parser("token", help="reader tokens for the TAXII 2.1 API")
    token_sub = token.add_subparsers(dest="token_command", required=True, parser_class=parser_class)
    p = token_sub.add_parser("add", help="make a token for a peer org; prints it once")
    p.add_argument("org")
    p.set_defaults(func=cmd_token_add)
    token_sub.add_parser("list", help="id, org, created, last used, revoked").set_defaults(
        func=cmd_token_list
    )
    p = token_sub.add_parser("revoke", help="end a token for good")
    p.add_argument("id", type=_token_id)
    p.set_defaults(func=cmd_token_revoke)
