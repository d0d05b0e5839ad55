"""``hashfed lookup``, ``export`` and ``status``: what the node holds, for people and for
scripts (``--json``, CSV)."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

from hashfed.federation.cli._common import EXIT_NOT_FOUND, CliError, _hash_type, _load, _now
from hashfed.federation.home import Home
from hashfed.federation.report import status_report
from hashfed.formats import write_bundle, write_csv, write_feed, write_jsonl
from hashfed.keys.encoding import decimal
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import inert, make_log_id, show
from hashfed.protocol.hashtypes import PDQ_MAX_DISTANCE, normalise
from hashfed.protocol.records import Record


def cmd_lookup(args: argparse.Namespace) -> int:
    home = _load(args)
    type_ = _hash_type(args.type)
    value = normalise(type_, args.value)
    if args.distance is not None:
        return _lookup_near(home, type_, value, args.distance, as_json=args.json)
    with home.open_store() as store:
        record = store.merged.lookup(type_, value)
    if record is None:
        print(f"{type_} {value}: not in the merged list", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        print(json.dumps(record.to_json_obj()))
        return 0
    _print_record(record)
    return 0


def _lookup_near(home: Home, type_: str, value: str, text: str, *, as_json: bool) -> int:
    if type_ != "pdq":
        raise CliError("--distance is for pdq hashes (Hamming distance); other types match exactly")
    try:
        distance = decimal(text, what="--distance", max_value=PDQ_MAX_DISTANCE)
    except ProtocolError as exc:
        raise CliError(f"--distance must be from 0 to {PDQ_MAX_DISTANCE} bits, not {show(text)}") from exc
    with home.open_store() as store:
        matches = store.merged.near_pdq(value, distance)
    if not matches:
        print(f"pdq {value}: nothing in the merged list within {distance} bits", file=sys.stderr)
        return EXIT_NOT_FOUND
    if as_json:
        print(json.dumps([{"distance": d, **record.to_json_obj()} for d, record in matches]))
        return 0
    for d, record in matches:
        print(f"distance {d}:", end=" ")
        _print_record(record)
    return 0


def _print_record(record: Record) -> None:
    if record.active:
        state = "active"
    elif record.retracted_by:
        state = "RETRACTED (no active contribution)"
    else:
        state = "inactive (no active contribution)"
    disputed = [o for o in record.opinions if o.opinion == "false_positive"]
    if disputed and record.active:
        state += ", DISPUTED (a false-positive opinion)"
    print(f"{record.type} {record.value}: {state}")
    if record.labels:
        print(f"  labels: {', '.join(record.labels)}")
    for c in record.contributors:
        print(f"  vouched for by {c.org}/{c.collection}" + (f" [{', '.join(c.labels)}]" if c.labels else ""))
    for o in record.opinions:
        print(f"  {o.opinion.replace('_', ' ')} according to {o.org}/{o.collection}")
    for r in record.retracted_by:
        print(f"  retracted by {r.org}/{r.collection}")


def cmd_export(args: argparse.Namespace) -> int:
    home = _load(args)
    if args.format == "misp":
        return _export_misp(home, args.dest)
    if args.dest is not None:
        raise CliError(f"export --format {args.format} writes to standard output; DIR is for misp")
    out = sys.stdout
    with home.open_store() as store:
        records = store.merged.records(active_only=True)
        if args.format == "csv":
            out.writelines(write_csv(records))
        elif args.format == "jsonl":
            out.writelines(write_jsonl(records))
        elif args.format == "stix":
            out.writelines(write_bundle(records, bundle_id=uuid.uuid4(), created=_now()))
            out.write("\n")
        else:
            out.write("[")
            for i, record in enumerate(records):
                out.write(("," if i else "") + "\n" + json.dumps(record.to_json_obj()))
            out.write("\n]\n")
    return 0


def _export_misp(home: Home, dest: str | None) -> int:
    """A MISP feed folder: one event per log (its active hashes), ``manifest.json`` and
    ``hashes.csv``. Event ids are stable for this org, so MISP updates its events in place
    when it fetches the feed again."""
    if dest is None:
        raise CliError("export --format misp needs a DIR to write the feed to")
    folder = Path(dest)
    by_log: dict[str, list[Record]] = {}
    with home.open_store() as store:
        for record in store.merged.records(active_only=True):
            for c in record.contributors:
                by_log.setdefault(make_log_id(c.org, c.collection), []).append(record)
    files = write_feed(by_log, timestamp=_now(), namespace=uuid.uuid5(_FEED_NAMESPACE, home.org))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
    except OSError as exc:
        raise CliError(f"cannot write the feed to {folder}: {exc.strerror}") from exc
    print(f"MISP feed of {len(by_log)} event(s) written to {folder}")
    return 0


# Feed ids are UUIDv5 of this namespace and the org: the same org's feed keeps its ids.
_FEED_NAMESPACE = uuid.UUID("5d1c1e0a-8f0e-4d5f-9a43-6861736866ed")


def cmd_status(args: argparse.Namespace) -> int:
    home = _load(args)
    with home.open_store() as store:
        status = status_report(store, home.org, home.signers)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"org {home.org}")
    records = status["records"]
    print(f"merged list: {records['active']} active records ({records['total']} in all)")
    for c, n in status["staged"].items():
        print(f"staged: {n} entries for {home.org}/{c} (not yet published)")
    print("logs:" if status["logs"] else "logs: none yet")
    for entry in status["logs"]:
        held = (
            f" (+{entry['held'] - entry['size']} batches held towards size {entry['pending_size']})"
            if entry["held"] > entry["size"]
            else ""
        )
        own = "own" if entry["own"] else "held"
        readers = f"; readers: {', '.join(entry['readers'])}" if entry["readers"] else ""
        print(f"  {entry['org']}/{entry['collection']}: {own}, size {entry['size']}{held}{readers}")
    print("peers:" if status["peers"] else "peers: none")
    for p in status["peers"]:
        where = p["url"] or "no URL"
        last = f"; last pull ok {p['last_success']}" if p["last_success"] else ""
        err = f"; last error: {inert(p['last_error'], 1000)}" if p["last_error"] else ""
        print(f"  {p['org']}: {where}{last}{err}")
    if status["evidence"]:
        print(f"EVIDENCE of misbehaviour: {len(status['evidence'])} record(s)")
        for e in status["evidence"]:
            print(f"  {e['detected_at']} {e['log_id']} ({e['kind']}) via {inert(e['source'])}: {inert(e['detail'], 1000)}")
    return 0


