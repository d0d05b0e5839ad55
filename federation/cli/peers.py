"""``hashfed peer``, ``grant``, ``revoke`` and ``keys``: who this node trusts, what each
peer may read or push, and this org's own signing keys."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hashfed.federation.cli._common import (
    CliError,
    _home,
    _load,
    _stamp,
)
from hashfed.federation.config import check_base_url
from hashfed.federation.home import add_key, remove_key
from hashfed.keys.encoding import decimal
from hashfed.keys.errors import ConfigError, HashfedError, ProtocolError
from hashfed.keys.names import check_collection, check_org, parse_log_id, show


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        return decimal(text, what="a port", max_value=65535)
    except ProtocolError as exc:
        raise argparse.ArgumentTypeError(f"{show(text)} is not a port (0 to 65535)") from exc


def _url_arg(text: str) -> str:
    """An argparse type: a plain http(s) base URL."""
    try:
        return check_base_url(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _peer_url(text: str) -> str:
    try:
        return check_base_url(text)
    except ConfigError as exc:
        raise CliError(f"--url: {exc}") from exc


def cmd_peer_add(args: argparse.Namespace) -> int:
    home = _load(args)
    org = check_org(args.org)
    if org == home.org:
        raise CliError("that is this node's own org")
    if args.url:
        _peer_url(args.url)
    # Check every argument before anything is stored: an error leaves the store unchanged.
    grants = [f"{home.org}/{check_collection(collection)}" for collection in args.grant or ()]
    with home.open_store() as store:
        if args.ca_file:
            from hashfed.federation.sync.transport import make_ssl_context

            try:
                make_ssl_context(args.ca_file)
            except HashfedError as exc:
                raise CliError(f"--ca-file: {exc}") from exc
        # Re-adding a known peer (to change its keys, say) keeps what is not given again.
        known = store.peers.get(org)
        store.peers.add(
            org,
            url=args.url or (known.url if known else None),
            vkeys=args.key,
            accept_push=args.accept_push or (known.accept_push if known else False),
            ca_file=(
                str(Path(args.ca_file).resolve())
                if args.ca_file
                else (known.ca_file if known else None)
            ),
            now=_stamp(),
        )
        for log_id in grants:
            store.peers.grant(org, log_id)
    what = [f"{len(args.key)} key(s)"]
    if args.url:
        what.append(f"pulls from {args.url}")
    if args.grant:
        what.append(f"may read {', '.join(args.grant)}")
    if args.accept_push:
        what.append("may push its logs here")
    print(f"peer {org}: {'; '.join(what)}")
    return 0


def cmd_peer_remove(args: argparse.Namespace) -> int:
    home = _load(args)
    with home.open_store() as store:
        store.peers.remove(args.org)
    print(f"peer {args.org} removed: its keys, grants and pushes are no longer accepted")
    return 0


def cmd_peer_list(args: argparse.Namespace) -> int:
    home = _load(args)
    with home.open_store() as store:
        peers = store.peers.all()
    for peer in peers:
        flags = []
        if peer.url:
            flags.append(peer.url)
        if peer.accept_push:
            flags.append("accepts push")
        if peer.readable:
            flags.append("reads " + ", ".join(peer.readable))
        print(f"{peer.org}: {'; '.join(flags) or 'keys only'}")
        for vkey in peer.vkeys:
            print(f"  {vkey}")
    return 0


def _log_arg(text: str) -> str:
    try:
        parse_log_id(text)
    except ProtocolError as exc:
        raise CliError(f"LOG must be org/collection: {exc}") from exc
    return text


def cmd_grant(args: argparse.Namespace) -> int:
    home = _load(args)
    log_id = _log_arg(args.log)
    with home.open_store() as store:
        if store.peers.trust_store(home.signers).get(check_org(args.reader)) is None:
            raise ConfigError(f"no peer {args.reader}; add it first with 'hashfed peer add'")
        store.peers.grant(args.reader, log_id)
    print(f"{args.reader} may now read {log_id}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    home = _load(args)
    log_id = _log_arg(args.log)
    with home.open_store() as store:
        store.peers.revoke(args.reader, log_id)
    print(f"{args.reader} may no longer read {log_id}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    home = _load(args)
    signer = add_key(home.path, home.org)
    print(signer.vkey())
    print(
        "new key added: checkpoints are now signed with every key; give peers the vkey above,"
        " then 'hashfed keys remove OLD_KEY_ID'",
        file=sys.stderr,
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    home = _load(args)
    for signer in home.signers:
        print(signer.vkey())
    return 0


def cmd_keys_remove(args: argparse.Namespace) -> int:
    remove_key(_home(args), args.key_id)
    print(f"key {args.key_id} removed; checkpoints are signed without it from now on")
    return 0
