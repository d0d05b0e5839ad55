"""The ``hashfed`` command line: a few lines over the library per command.

Errors are one line on stderr and a non-zero exit (2; ``lookup`` of an unknown hash is 1),
never a traceback. ``HASHFED_HOME`` may stand in for ``--home``.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from hashfed.federation.cli._common import (
    EXIT_ERROR,
    CliError,
    _collection,
    _hash_type,
    _home,
    _load,
    _now,
    _stamp,
)
from hashfed.federation.cli.net import cmd_pull, cmd_push, cmd_serve
from hashfed.federation.cli.progress import count_lines, progress_bar
from hashfed.federation.cli.show import cmd_export, cmd_lookup, cmd_status
from hashfed.federation.config import check_base_url
from hashfed.federation.home import Home, add_key, init_home, remove_key
from hashfed.federation.publish import publish
from hashfed.keys.errors import ConfigError, HashfedError, ProtocolError
from hashfed.keys.names import check_collection, check_org, parse_log_id
from hashfed.protocol.entries import Entry, normalise_labels
from hashfed.protocol.hashtypes import PDQ_MATCH_DISTANCE, normalise


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # main() prints "hashfed: error: "; name the subcommand, not the program twice
        command = self.prog.removeprefix("hashfed").strip()
        raise CliError(f"{command}: {message}" if command else message)


# -- identity and local list ----------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    signer = init_home(_home(args), check_org(args.org))
    print(signer.vkey())
    return 0


def _stage(home: Home, collection: str, entries: Sequence[Entry]) -> None:
    with home.open_store() as store, store.transaction():
        store.staging.stage(collection, entries)


def cmd_add(args: argparse.Namespace) -> int:
    home = _load(args)
    entry = Entry.add(_hash_type(args.type), args.value, args.label or ())
    _stage(home, _collection(args, home), [entry])
    print(f"staged add {entry.type} {entry.value}; run 'hashfed publish' to sign it")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    home = _load(args)
    entry = Entry.remove(_hash_type(args.type), args.value)
    _stage(home, _collection(args, home), [entry])
    print(f"staged remove {entry.type} {entry.value}; run 'hashfed publish' to sign it")
    return 0


def cmd_opinion(args: argparse.Namespace) -> int:
    home = _load(args)
    entry = Entry.opine(_hash_type(args.type), args.value, args.opinion)
    _stage(home, _collection(args, home), [entry])
    print(f"staged {entry.opinion} opinion on {entry.type} {entry.value}")
    return 0


def read_import(lines: Iterator[str], name: str) -> Iterator[Entry]:
    """CSV lines ``type,value[,label;label]``; blank lines and ``#`` comments skipped, and
    a first line ``type,value[,labels]`` taken as a header. ProtocolError names the line."""
    reader = csv.reader(lines, strict=True)
    label_sets: dict[str, tuple[str, ...]] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ProtocolError(f"{name}:{reader.line_num}: not CSV: {exc}") from exc
        number = reader.line_num  # the line the row ends on: a quoted field may span lines
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if number == 1 and [c.strip().lower() for c in row[:2]] == ["type", "value"]:
            continue
        if len(row) not in (2, 3):
            raise ProtocolError(f"{name}:{number}: expected type,value[,labels], got {len(row)} fields")
        try:
            field = row[2] if len(row) == 3 else ""
            labels = label_sets.get(field)
            if labels is None:  # label fields repeat across a file: parse each once
                labels = normalise_labels(x.strip() for x in field.split(";") if x.strip())
                label_sets[field] = labels
            type_ = row[0].strip()
            yield Entry("add", type_, normalise(type_, row[1]), labels, None)
        except ProtocolError as exc:
            raise ProtocolError(f"{name}:{number}: {exc}") from exc


def cmd_import(args: argparse.Namespace) -> int:
    home = _load(args)
    collection = _collection(args, home)
    if args.file == "-":
        # Spooled to a temporary file first: the store's write lock is then held only
        # while lines are parsed, never while waiting on whoever feeds the pipe.
        source: io.TextIOBase = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # type: ignore[assignment]
        try:
            shutil.copyfileobj(sys.stdin, source)
        except UnicodeDecodeError as exc:
            source.close()
            raise ProtocolError(f"<stdin>: not UTF-8 text ({exc.reason})") from exc
        source.seek(0)
        name = "<stdin>"
    else:
        try:
            source = open(args.file, encoding="utf-8", newline="")
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror}") from exc
        name = args.file
    count = 0
    total = count_lines(args.file) if args.file != "-" and sys.stderr.isatty() else None
    with source, home.open_store() as store, progress_bar(
        "import", unit="entries", total=total
    ) as bar:
        try:
            with store.transaction():  # all lines or none
                chunk: list[Entry] = []
                for entry in read_import(iter(source), name):
                    chunk.append(entry)
                    if len(chunk) == 10_000:
                        count += store.staging.stage(collection, chunk)
                        bar(len(chunk))
                        chunk = []
                count += store.staging.stage(collection, chunk)
                bar(len(chunk))
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"{name}: not UTF-8 text ({exc.reason})") from exc
    print(f"staged {count} entries for {home.org}/{collection}; run 'hashfed publish'")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    home = _load(args)
    with home.open_store() as store:
        staged = sum(n for _c, n in store.staging.collections())
        with progress_bar("publish", unit="entries", total=staged) as bar:
            done = publish(store, home.signers, now=_now(), progress=bar)
    if not done:
        print("nothing to publish")
    for item in done:
        print(
            f"{item.log_id}: size {item.size} "
            f"(+{item.new_batches} batches, {item.new_entries} entries), checkpoint signed"
        )
    return 0


# -- peers, grants, keys --------------------------------------------------------------


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


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


# -- network --------------------------------------------------------------------------


# -- status ---------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from hashfed.federation.demo import run_demo

    return run_demo()




# -- the parser ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hashfed", description="Hash-sharing federation node.")
    parser.add_argument("--home", help="the node's folder (default: $HASHFED_HOME)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("init", help="make a node: folder, config, key; prints the vkey")
    p.add_argument("--org", required=True)
    p.set_defaults(func=cmd_init)

    for name, func, help_ in (
        ("add", cmd_add, "stage a hash this org vouches for"),
        ("remove", cmd_remove, "stage the retraction of an earlier add"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("type")
        p.add_argument("value")
        if name == "add":
            p.add_argument("--label", action="append")
        p.add_argument("--collection")
        p.set_defaults(func=func)

    p = sub.add_parser("opinion", help="stage this org's opinion on a hash")
    p.add_argument("type")
    p.add_argument("value")
    p.add_argument("opinion", choices=["true_positive", "false_positive"])
    p.add_argument("--collection")
    p.set_defaults(func=cmd_opinion)

    p = sub.add_parser("import", help="stage CSV lines type,value[,label;label] (- for stdin)")
    p.add_argument("file")
    p.add_argument("--collection")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("publish", help="staged entries -> batches -> signed checkpoint")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("serve", help="serve the node's logs and pull peers on a schedule")
    p.add_argument("--host")
    p.add_argument("--port", type=_port)
    p.add_argument("--public-url", action="append", type=_url_arg)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--local-port", type=_port, help="lookup API for your own pipeline")
    p.set_defaults(func=cmd_serve)

    peer = sub.add_parser("peer", help="trusted orgs: keys, URL, grants")
    peer_sub = peer.add_subparsers(dest="peer_command", required=True, parser_class=_Parser)
    p = peer_sub.add_parser(
        "add", help="add or update a peer (keys are replaced; a URL, --accept-push and"
        " --ca-file given before are kept)"
    )
    p.add_argument("org")
    p.add_argument("--url")
    p.add_argument("--key", action="append", required=True, help="a vkey; repeat for several")
    p.add_argument("--grant", action="append", help="an own collection it may read")
    p.add_argument("--accept-push", action="store_true", help="hold logs it pushes here")
    p.add_argument("--ca-file", help="CA certificates to verify its https URL with")
    p.set_defaults(func=cmd_peer_add)
    p = peer_sub.add_parser("remove")
    p.add_argument("org")
    p.set_defaults(func=cmd_peer_remove)
    p = peer_sub.add_parser("list")
    p.set_defaults(func=cmd_peer_list)

    for name, func in (("grant", cmd_grant), ("revoke", cmd_revoke)):
        p = sub.add_parser(name, help=f"{name} a reader's access to a log (org/collection)")
        p.add_argument("reader")
        p.add_argument("log")
        p.set_defaults(func=func)

    keys = sub.add_parser("keys", help="this org's signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, parser_class=_Parser)
    keys_sub.add_parser("rotate", help="add a new key; prints its vkey").set_defaults(func=cmd_keys_rotate)
    keys_sub.add_parser("list").set_defaults(func=cmd_keys_list)
    p = keys_sub.add_parser("remove")
    p.add_argument("key_id")
    p.set_defaults(func=cmd_keys_remove)

    p = sub.add_parser("pull", help="pull every log a peer lets us read")
    p.add_argument("org", nargs="?")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("push", help="upload this org's logs to a host that accepts them")
    p.add_argument("--to", required=True)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("status", help="logs, sizes, peers, evidence")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("lookup", help="one hash in the merged list (exit 1 if unknown)")
    p.add_argument("type")
    p.add_argument("value")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--distance",
        type=int,
        help=f"pdq only: every record within this many bits (PDQ's usual threshold is {PDQ_MATCH_DISTANCE})",
    )
    p.set_defaults(func=cmd_lookup)

    p = sub.add_parser("export", help="the active merged list")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="three nodes on this machine, end to end")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (CliError, HashfedError) as exc:
        message = " ".join(str(exc).split())
        print(f"hashfed: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("hashfed: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a path that is a file, a folder we may not write, a full disk
        where = f"{exc.filename}: " if exc.filename else ""
        message = " ".join(str(exc.strerror or exc).split())
        print(f"hashfed: error: {where}{message}", file=sys.stderr)
        return EXIT_ERROR
    except sqlite3.Error as exc:  # busy past the timeout, a damaged file
        print(f"hashfed: error: the store: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
