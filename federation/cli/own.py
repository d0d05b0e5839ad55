"""``hashfed init``, ``add``, ``remove``, ``opinion``, ``import`` and ``publish``: this org's
own log, from a new home to a signed checkpoint."""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence

from hashfed.federation.cli._common import (
    CliError,
    _collection,
    _hash_type,
    _home,
    _load,
    _now,
)
from hashfed.federation.cli.progress import count_lines, progress_bar
from hashfed.federation.home import Home, init_home
from hashfed.federation.publish import publish
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import check_org
from hashfed.protocol.entries import Entry, normalise_labels
from hashfed.protocol.hashtypes import normalise


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
