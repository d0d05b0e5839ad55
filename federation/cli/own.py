"""``hashfed init``, ``add``, ``remove``, ``opinion``, ``import`` and ``publish``: this org's
own log, from a new home to a signed checkpoint."""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

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
from hashfed.formats import read_csv, read_jsonl, read_lines, read_misp_event, read_stix
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import check_org
from hashfed.protocol.entries import Entry


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


# Reading a file in each format: the format's reader, given the options the user set.
_READERS = {
    "csv": lambda text, o: read_csv(text, source=o.source, type_=o.type, columns=o.columns, errors=o.errors),
    "lines": lambda text, o: read_lines(text, source=o.source, type_=o.type, errors=o.errors),
    "jsonl": lambda text, o: read_jsonl(text, source=o.source, errors=o.errors),
    "stix": lambda text, o: read_stix(text, source=o.source, errors=o.errors),
    "misp": lambda text, o: read_misp_event(text, source=o.source, errors=o.errors),
}
FORMATS = tuple(_READERS)


def _columns(text: str) -> dict[str, str]:
    """``--columns type=HashType,value=Hash,labels=Tags`` as a map."""
    columns = {}
    for part in text.split(","):
        field, sep, header = part.partition("=")
        if not sep or not header.strip() or field.strip() not in ("type", "value", "labels"):
            raise CliError(f"--columns: {part!r} is not FIELD=HEADER with FIELD type, value or labels")
        columns[field.strip()] = header.strip()
    if "value" not in columns:
        raise CliError("--columns must name the value column (value=HEADER)")
    return columns


def _format_of(args: argparse.Namespace, first: str) -> str:
    """The file's format: ``--format``, else by its name, else by its first characters
    (a JSON document is a STIX bundle or a MISP event), else CSV (``lines`` with --type)."""
    if args.format:
        return args.format
    name = args.file.lower()
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    head = first.lstrip()
    if name.endswith(".json") or head.startswith("{"):
        return "misp" if '"Event"' in first else "stix"
    return "lines" if args.type and not name.endswith(".csv") else "csv"


@dataclass(frozen=True)
class _Options:
    source: str
    type: str | None
    columns: dict[str, str] | None
    errors: list[ProtocolError] | None  # None: the first bad line fails the import


def cmd_import(args: argparse.Namespace) -> int:
    home = _load(args)
    collection = _collection(args, home)
    columns = _columns(args.columns) if args.columns else None
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
    skipped: list[ProtocolError] = []
    options = _Options(
        source=name, type=args.type, columns=columns, errors=skipped if args.skip_bad else None
    )
    count = 0
    total = count_lines(args.file) if args.file != "-" and sys.stderr.isatty() else None
    with source, home.open_store() as store, progress_bar(
        "import", unit="entries", total=total
    ) as bar:
        try:
            first = source.read(4096)
            source.seek(0)
            fmt = _format_of(args, first)
            if columns is not None and fmt != "csv":
                raise CliError(f"--columns is for CSV files, not {fmt}")
            if fmt == "lines" and not args.type:
                raise CliError("one hash a line needs --type TYPE")
            with store.transaction():  # every entry or none
                chunk: list[Entry] = []
                for entry in _READERS[fmt](source, options):
                    chunk.append(entry)
                    if len(chunk) == 10_000:
                        count += store.staging.stage(collection, chunk)
                        bar(len(chunk))
                        chunk = []
                count += store.staging.stage(collection, chunk)
                bar(len(chunk))
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"{name}: not UTF-8 text ({exc.reason})") from exc
    for error in skipped[:_SHOWN_SKIPS]:
        print(f"hashfed: skipped: {error}", file=sys.stderr)
    if len(skipped) > _SHOWN_SKIPS:
        print(f"hashfed: skipped {len(skipped) - _SHOWN_SKIPS} more", file=sys.stderr)
    note = f" ({len(skipped)} bad skipped)" if args.skip_bad else ""
    print(f"staged {count} entries for {home.org}/{collection}{note}; run 'hashfed publish'")
    return 0


# Skipped lines shown one by one on stderr; the rest are counted.
_SHOWN_SKIPS = 20


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
