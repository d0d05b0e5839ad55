"""``hashfed check`` and ``backup``: the operator's care of the store, both safe on a live
node (read-only, one read transaction; a WAL reader never blocks the writer)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from hashfed.federation.cli._common import _home, _load
from hashfed.federation.home import DB_FILE
from hashfed.federation.store.backup import backup_store
from hashfed.keys.names import inert

if TYPE_CHECKING:
    from hashfed.federation.store.check import CheckReport

EXIT_PROBLEMS = 1


def cmd_check(args: argparse.Namespace) -> int:
    from hashfed.federation.store.check import check_store  # numpy: not every command's cost

    home = _load(args)
    own = {home.org: [signer.verifier() for signer in home.signers]}
    path = Path(args.db) if args.db else home.db_path
    report = check_store(path, own_keys=own)
    if args.json:
        print(json.dumps(report.to_json_obj(), indent=2))
    else:
        _print_report(report)
    return 0 if report.ok else EXIT_PROBLEMS


def _print_report(report: CheckReport) -> None:
    print(f"store {report.path}")
    for result in report.results.values():
        state = "ok" if result.ok else f"{len(result.problems) + result.unlisted} PROBLEMS"
        print(f"{result.name:<11} {state} ({result.checked} checked)")
        for problem in result.problems:
            print(f"  - {inert(problem, 500)}")
        if result.unlisted:
            print(f"  - ... and {result.unlisted} more")
        for warning in result.warnings:
            print(f"  warning: {inert(warning, 500)}")
    print("all checks passed" if report.ok else "the store is NOT consistent")


def cmd_backup(args: argparse.Namespace) -> int:
    source = _home(args) / DB_FILE
    size = backup_store(source, Path(args.file), force=args.force)
    print(f"backed up {source} to {args.file} ({size} bytes)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "check", help="verify the store: leaves, roots, signatures, merged list, PDQ index"
        " (read-only; exit 1 when something is wrong)"
    )
    p.add_argument("--db", metavar="FILE", help="check this store file (a backup) instead")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("backup", help="a consistent copy of the store, safe while serve runs")
    p.add_argument("file")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")
    p.set_defaults(func=cmd_backup)
