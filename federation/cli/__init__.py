"""The ``hashfed`` command line: a few lines over the library per command.

Errors are one line on stderr and a non-zero exit (2; ``lookup`` of an unknown hash is 1),
never a traceback. ``HASHFED_HOME`` may stand in for ``--home``.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from typing import NoReturn

from hashfed.federation.cli import admin
from hashfed.federation.cli import media as media_commands
from hashfed.federation.cli._common import EXIT_ERROR, CliError
from hashfed.federation.cli.net import cmd_pull, cmd_push, cmd_serve
from hashfed.federation.cli.own import (
    FORMATS,
    cmd_add,
    cmd_import,
    cmd_init,
    cmd_opinion,
    cmd_publish,
    cmd_remove,
)
from hashfed.federation.cli.peers import (
    _port,
    _url_arg,
    cmd_grant,
    cmd_keys_list,
    cmd_keys_remove,
    cmd_keys_rotate,
    cmd_peer_add,
    cmd_peer_list,
    cmd_peer_remove,
    cmd_revoke,
)
from hashfed.federation.cli.show import cmd_export, cmd_lookup, cmd_status
from hashfed.federation.cli.tokens import add_token_parser
from hashfed.federation.events import FORMATS as LOG_FORMATS
from hashfed.federation.events import LEVELS
from hashfed.federation.store.connection import is_disk_full
from hashfed.keys.errors import HashfedError
from hashfed.keys.names import inert
from hashfed.protocol.hashtypes import PDQ_MATCH_DISTANCE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # main() prints "hashfed: error: "; name the subcommand, not the program twice
        command = self.prog.removeprefix("hashfed").strip()
        raise CliError(f"{command}: {message}" if command else message)



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

    p = sub.add_parser(
        "import",
        help="stage a hash list: CSV type,value[,labels], one hash a line, JSON lines, a STIX "
        "2.1 bundle or a MISP event (- for stdin); all or nothing unless --skip-bad",
    )
    p.add_argument("file")
    p.add_argument("--collection")
    p.add_argument("--format", choices=FORMATS, help="default: by the file's name and content")
    p.add_argument("--type", help="the hash type of every line (one hash a line, or CSV without a type column)")
    p.add_argument("--columns", help="CSV header names: type=HashType,value=Hash,labels=Tags")
    p.add_argument("--skip-bad", action="store_true", help="import the good lines, count the bad")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("publish", help="staged entries -> batches -> signed checkpoint")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("serve", help="serve the node's logs and pull peers on a schedule")
    p.add_argument("--host")
    p.add_argument("--port", type=_port)
    p.add_argument("--public-url", action="append", type=_url_arg)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument(
        "--local-port", type=_port, help="lookup API, web console and /metrics (loopback)"
    )
    p.add_argument("--log-format", choices=sorted(LOG_FORMATS), default="text")
    p.add_argument("--log-level", choices=LEVELS, default="info", type=str.lower)
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

    add_token_parser(sub, _Parser)

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
        metavar="BITS",
        help=f"pdq only: every record within this many bits (PDQ's usual threshold is {PDQ_MATCH_DISTANCE})",
    )
    p.set_defaults(func=cmd_lookup)

    p = sub.add_parser("export", help="the active merged list")
    p.add_argument("--format", choices=["csv", "json", "jsonl", "stix", "misp"], default="csv")
    p.add_argument("dest", nargs="?", metavar="DIR", help="with --format misp: the feed folder")
    p.set_defaults(func=cmd_export)

    media_commands.add_parsers(sub)
    admin.add_parsers(sub)

    p = sub.add_parser("demo", help="three nodes on this machine, end to end")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (CliError, HashfedError) as exc:
        message = inert(" ".join(str(exc).split()), 2000)  # an error may quote a peer
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
        what = "the disk holding the store is full" if is_disk_full(exc) else "the store"
        print(f"hashfed: error: {what}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
