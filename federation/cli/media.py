"""``hashfed hash`` and ``hashfed match``: hash images and videos (the media extra), and
match them against the merged list.

``hash`` prints CSV that ``hashfed import`` reads as it is (``type,value,labels``; each
hash once per run, however many files share it), or with ``--json`` one object a file.
``match`` prints, per file, every record it matched (``hashfed.federation.merged.matching``
decides what a match is), or one JSON object a file. Both hash on every core, draw a
progress bar on a terminal only, print one line on stderr per file that could not be
hashed and carry on, and exit 2 at the end if any file failed (``match``: else 0 when some
file matched an active record, 1 when none did).

The media extra is imported when a command runs, never when the CLI loads: without it,
these two commands say so in one line and every other command works.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from hashfed.federation.cli._common import EXIT_ERROR, EXIT_NOT_FOUND, CliError, _load
from hashfed.federation.cli.progress import progress_bar
from hashfed.federation.merged.matching import FileMatch, Match, match_files
from hashfed.keys.encoding import decimal
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import inert, show
from hashfed.protocol.entries import normalise_labels
from hashfed.protocol.hashtypes import PDQ_MATCH_DISTANCE, PDQ_MAX_DISTANCE

if TYPE_CHECKING:
    from hashfed.media import HashOptions, HashResult, MediaHash

MEDIA_EXTRA_MISSING = "hashing images and videos needs the media extra: pip install 'hashfed[media]'"
# Files matched per batch of lookups: one near_pdq_many call each, output kept flowing.
MATCH_BATCH_FILES = 256


def _media():  # type: ignore[no-untyped-def]
    try:
        import hashfed.media as media
    except ImportError as exc:
        raise CliError(f"{MEDIA_EXTRA_MISSING} ({exc.name or 'a package'} is missing)") from exc
    return media


def _hashed(args: argparse.Namespace, options: HashOptions) -> Iterator[HashResult]:
    """Every input's result in input order, a bar drawn meanwhile; failures and warnings
    printed on stderr as they come, one line each."""
    media = _media()
    stdin = sys.stdin if "-" in args.paths else None
    with progress_bar("hashing", unit="file") as bar:
        seen = 0

        def progress(done: int, total: int) -> None:
            nonlocal seen
            bar.expect(total)
            bar.advance(done - seen)
            seen = done

        results = media.hash_paths(
            args.paths, options=options, workers=args.workers, stdin_lines=stdin, progress=progress
        )
        for result in results:
            if not result.ok:
                _warn(str(result))
            else:
                for warning in result.warnings:
                    _warn(f"{result.path}: warning: {warning}")
            yield result


def _warn(line: str) -> None:
    print(inert(" ".join(line.split()), 2000), file=sys.stderr)


def cmd_hash(args: argparse.Namespace) -> int:
    labels = _labels(args.label or [])
    media = _media()
    failed = False
    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    if not args.json:
        writer.writerow(("type", "value", "labels"))
    written: set[tuple[str, str]] = set()
    for result in _hashed(args, media.HashOptions()):
        if not result.ok:
            failed = True
            continue
        if args.json:
            out.write(json.dumps(result.to_json_obj()) + "\n")
            continue
        for row in media.csv_rows(result):
            if row not in written:
                written.add(row)
                writer.writerow((*row, ";".join(labels)))
    out.flush()
    return EXIT_ERROR if failed else 0


def _labels(given: list[str]) -> tuple[str, ...]:
    try:
        return normalise_labels(given)
    except ProtocolError as exc:
        raise CliError(f"--label: {exc}") from exc


def _distance(text: str | None) -> int:
    if text is None:
        return PDQ_MATCH_DISTANCE
    try:
        return decimal(text, what="--distance", max_value=PDQ_MAX_DISTANCE)
    except ProtocolError as exc:
        raise CliError(f"--distance must be from 0 to {PDQ_MAX_DISTANCE} bits, not {show(text)}") from exc


def cmd_match(args: argparse.Namespace) -> int:
    distance = _distance(args.distance)
    home = _load(args)
    media = _media()
    options = media.HashOptions(dihedral=args.dihedral)
    failed = matched = False
    with home.open_store() as store:
        batch: list[MediaHash] = []

        def flush() -> None:
            nonlocal matched
            for found in match_files(store.merged, batch, distance=distance, dihedral=args.dihedral):
                matched |= found.matched
                if args.json:
                    sys.stdout.write(json.dumps(found.to_json_obj()) + "\n")
                else:
                    _print_file(found, distance)
            sys.stdout.flush()
            batch.clear()

        for result in _hashed(args, options):
            if not result.ok:
                failed = True
                continue
            batch.append(result)
            if len(batch) >= MATCH_BATCH_FILES:
                flush()
        flush()
    if failed:
        return EXIT_ERROR
    return 0 if matched else EXIT_NOT_FOUND


_STATE_TEXT = {
    "active": "active",
    "disputed": "DISPUTED (active, but a false_positive opinion is held)",
    "retracted": "RETRACTED (every contributor retracted it)",
    "inactive": "inactive (no log vouches for it)",
}


def _print_file(found: FileMatch, distance: int) -> None:
    hashes = found.hashes
    path = inert(hashes.path, 1000)
    if not found.matches:
        print(f"{path}: no match (md5, sha256; pdq within {distance} bits)")
        return
    verdict = "MATCH" if found.matched else "no active match"
    print(f"{path}: {verdict}, {len(found.matches)} record(s)")
    for match in found.matches:
        _print_match(match)


def _print_match(match: Match) -> None:
    record = match.record
    how = "exact" if match.by != "pdq" else f"distance {match.distance}"
    variant = f", as {match.variant}" if match.variant not in (None, "original") else ""
    print(f"  {record.type} {record.value} ({how}{variant}): {_STATE_TEXT[match.state]}")
    if record.labels:
        print(f"    labels: {', '.join(record.labels)}")
    if record.contributors:
        print(f"    vouched for by {', '.join(f'{c.org}/{c.collection}' for c in record.contributors)}")
    for o in record.opinions:
        print(f"    {o.opinion} according to {o.org}/{o.collection}")
    for r in record.retracted_by:
        print(f"    retracted by {r.org}/{r.collection}")
    if match.frames:
        seconds = ", ".join(f"{f.seconds:g} s ({f.distance})" for f in match.frames)
        print(f"    frames: {seconds}")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "hash",
        help="hash images and videos (files, folders, - for paths on stdin): CSV for import, or --json",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--label", action="append", help="a label for every hash (CSV output); repeatable")
    p.add_argument("--json", action="store_true", help="one JSON object a file")
    _workers_arg(p)
    p.set_defaults(func=cmd_hash)

    p = sub.add_parser(
        "match",
        help="hash images and videos and match them against the merged list (exit 1: no active match)",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument(
        "--distance", metavar="BITS",
        help=f"PDQ matches within this many bits (default {PDQ_MATCH_DISTANCE})",
    )
    p.add_argument("--dihedral", action="store_true", help="also match rotated and mirrored images")
    p.add_argument("--json", action="store_true", help="one JSON object a file")
    _workers_arg(p)
    p.set_defaults(func=cmd_match)


def _workers_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers", type=_positive, metavar="N", help="processes hashing files (default: every core)"
    )


def _positive(text: str) -> int:
    try:
        count = decimal(text, what="--workers", max_value=1024)
    except ProtocolError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 1024")
    return count
