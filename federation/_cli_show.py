"""``hashfed lookup``, ``export`` and ``status``: what the node holds, for people and for
scripts (``--json``, CSV)."""

from __future__ import annotations

import argparse
import csv
import json
import sys

from hashfed.protocol.checkpoint import parse_checkpoint_body
from hashfed.protocol.hashtypes import normalise
from hashfed.protocol.note import parse_note

from ._cli_common import EXIT_NOT_FOUND, CliError, _hash_type, _load
from .home import Home
from .records import Record


def cmd_lookup(args: argparse.Namespace) -> int:
    home = _load(args)
    type_ = _hash_type(args.type)
    value = normalise(type_, args.value)
    if args.distance is not None:
        return _lookup_near(home, type_, value, args.distance, as_json=args.json)
    with home.open_store() as store:
        record = store.lookup(type_, value)
    if record is None:
        print(f"{type_} {value}: not in the merged list", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        print(json.dumps(record.to_json_obj()))
        return 0
    _print_record(record)
    return 0


def _lookup_near(home: Home, type_: str, value: str, distance: int, *, as_json: bool) -> int:
    if type_ != "pdq":
        raise CliError("--distance is for pdq hashes (Hamming distance); other types match exactly")
    if not 0 <= distance <= 256:
        raise CliError(f"--distance must be from 0 to 256 bits, not {distance}")
    with home.open_store() as store:
        matches = store.near_pdq(value, distance)
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
    state = "active" if record.active else "inactive (no active contribution)"
    print(f"{record.type} {record.value}: {state}")
    if record.labels:
        print(f"  labels: {', '.join(record.labels)}")
    for c in record.contributors:
        print(f"  vouched for by {c.org}/{c.collection}" + (f" [{', '.join(c.labels)}]" if c.labels else ""))
    for o in record.opinions:
        print(f"  {o.opinion.replace('_', ' ')} according to {o.org}/{o.collection}")


def cmd_export(args: argparse.Namespace) -> int:
    home = _load(args)
    out = sys.stdout
    with home.open_store() as store:
        records = store.records(active_only=True)
        if args.format == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(("type", "value", "labels", "contributors"))
            for record in records:
                writer.writerow(record.csv_row())
        else:
            out.write("[")
            for i, record in enumerate(records):
                out.write(("," if i else "") + "\n" + json.dumps(record.to_json_obj()))
            out.write("\n]\n")
    return 0


def _note_size(note: bytes | None) -> int | None:
    """The size a stored checkpoint note claims (it was verified when it was stored)."""
    if note is None:
        return None
    return parse_checkpoint_body(parse_note(note).text).size


def cmd_status(args: argparse.Namespace) -> int:
    home = _load(args)
    with home.open_store() as store:
        trust = store.trust_store()
        logs = store.logs()
        staged = store.staged_collections()
        active, total = store.record_count()
        evidence = store.evidence()
        peer_status = store.peer_status()
        status = {
            "org": home.org,
            "keys": [s.vkey() for s in home.signers],
            "logs": [
                {
                    "org": log.org,
                    "collection": log.collection,
                    "own": log.own,
                    "size": log.size,
                    "held": log.held,
                    # the checkpoint the held-but-not-yet-served batches were proven against
                    "pending_size": _note_size(log.pending),
                    "readers": sorted(o.org for o in trust if log.log_id in o.readable),
                }
                for log in logs
            ],
            "staged": {c: n for c, n in staged},
            "records": {"active": active, "total": total},
            "peers": [
                {
                    "org": o.org,
                    "url": o.url,
                    "keys": [v.vkey() for v in o.verifiers],
                    "accept_push": o.accept_push,
                    "reads": sorted(o.readable),
                    "last_success": peer_status[o.org].last_success if o.org in peer_status else None,
                    "last_error": peer_status[o.org].last_error if o.org in peer_status else None,
                }
                for o in trust
            ],
            "evidence": [
                {
                    "log_id": e.log_id,
                    "kind": e.kind,
                    "source": e.source,
                    "detail": e.detail,
                    "detected_at": e.detected_at,
                }
                for e in evidence
            ],
        }
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"org {home.org}")
    print(f"merged list: {active} active records ({total} in all)")
    for c, n in staged:
        print(f"staged: {n} entries for {home.org}/{c} (not yet published)")
    print("logs:" if logs else "logs: none yet")
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
        err = f"; last error: {p['last_error']}" if p["last_error"] else ""
        print(f"  {p['org']}: {where}{last}{err}")
    if evidence:
        print(f"EVIDENCE of misbehaviour: {len(evidence)} record(s)")
        for e in status["evidence"]:
            print(f"  {e['detected_at']} {e['log_id']} ({e['kind']}) via {e['source']}: {e['detail']}")
    return 0
