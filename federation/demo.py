"""``hashfed demo``: a small federation on this machine, end to end.

Three orgs, each with its own home (key, config, SQLite store) in a temporary folder and a
real server on 127.0.0.1: two member companies and an NGO. They add overlapping hashes (with
a retraction and a false-positive opinion) and publish signed logs. The NGO pushes its log
to member A, which holds it for the others. Then they pull in a ring, B from A, the NGO from
B, A from the NGO, so every log also reaches someone through a relay and is verified against
its origin's key, never the relay's. Each node's merged list is shown and the three are
proven identical. Everything is torn down at the end.

With the media extra installed, member A also hashes a folder of generated pictures
(made here with numpy and Pillow, in the demo's temporary folder) and publishes their
hashes; after the pulls, member B matches edited copies (resized, re-encoded as WebP, and
a mirrored one matched with the dihedral variants) against its merged list, as
``hashfed match`` does. Without the extra the demo says how to see that part.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from hashfed.federation.home import Home, init_home, open_home
from hashfed.federation.http.service import NodeService
from hashfed.federation.merged.matching import match_files
from hashfed.federation.publish import publish
from hashfed.federation.sync.pusher import push_logs
from hashfed.federation.sync.rounds import pull_peer
from hashfed.protocol.batch import format_created
from hashfed.protocol.entries import Entry

A, B, NGO = "member-a.example", "member-b.example", "ngo.example"

# Sample values (not real material): md5/sha256 of short strings, and made-up PDQ values.
def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


PDQ_1 = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ_2 = "0e3c3c3c7e7e7e7e0000ffff0000ffff3c3c3c3c7e7e7e7e0f0f0f0ff0f0f0f0"


def _say(text: str = "") -> None:
    print(text, flush=True)


def _stage(home: Home, entries: list[Entry]) -> None:
    with home.open_store() as store, store.transaction():
        store.staging.stage(home.config.default_collection, entries)


def _publish(home: Home) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with home.open_store() as store:
        for item in publish(store, home.signers, now=now):
            _say(f"  {home.org}: published {item.log_id} at size {item.size} "
                 f"({item.new_entries} entries), checkpoint signed")


def _trust(reader: Home, org_home: Home, *, url: str | None = None, accept_push: bool = False) -> None:
    with reader.open_store() as store:
        store.peers.add(
            org_home.org,
            url=url,
            vkeys=[s.vkey() for s in org_home.signers],
            accept_push=accept_push,
            ca_file=None,
            now=format_created(datetime.now(UTC)),
        )


def _grant(home: Home, reader: str, log_id: str) -> None:
    with home.open_store() as store:
        store.peers.grant(reader, log_id)


def _show(home: Home) -> list[dict]:
    with home.open_store() as store:
        records = [r.to_json_obj() for r in store.merged.records(active_only=False)]
    _say(f"  {home.org}: {sum(r['active'] for r in records)} active records")
    for r in records:
        who = ", ".join(f"{c['org']}" for c in r["contributors"]) or "no active contribution"
        opinions = "".join(f"; {o['org']} says {o['opinion']}" for o in r["opinions"])
        labels = f" [{', '.join(r['labels'])}]" if r["labels"] else ""
        state = "" if r["active"] else " (inactive)"
        _say(f"    {r['type']:<7} {r['value'][:16]}…{labels}{state} by {who}{opinions}")
    return records


def _media():  # type: ignore[no-untyped-def]
    try:
        import hashfed.media as media
    except ImportError:
        return None
    return media


def _picture(seed: int, size: int = 256):  # type: ignore[no-untyped-def]
    """A photo-like picture: smooth colour waves and a few soft discs (not real material)."""
    import numpy as np
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = [128 + 100 * np.sin(2 * np.pi * (rng.uniform(0.3, 1.5) * x + rng.uniform(0.3, 1.5) * y)
                                   + rng.uniform(0, 6.3)) for _ in range(3)]
    rgb = np.stack(channels, axis=2)
    for _ in range(5):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
        rgb[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
    image = Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
    return image


def _hash_pictures(media, root: Path) -> tuple[list[Entry], dict[str, Path]]:  # type: ignore[no-untyped-def]
    """Member A's folder of pictures, hashed; and the edited copies member B will match."""
    from PIL import ImageOps

    folder, edits = root / "pictures", root / "edited"
    folder.mkdir()
    edits.mkdir()
    for seed in range(3):
        _picture(seed).save(folder / f"picture-{seed}.png")
    entries = []
    for result in media.hash_paths([str(folder)], workers=1):
        entries += [Entry.add(type_, value, ["demo:pictures"]) for type_, value in media.csv_rows(result)]
    _say(f"  {A}: hashed {len(entries) // 3} pictures (md5, sha256, PDQ) in {folder.name}/")
    original = _picture(0)
    copies = {
        "resized to 60% (JPEG)": (original.resize((154, 154)), "resized.jpg"),
        "re-encoded as WebP": (original, "reencoded.webp"),
        "mirrored (JPEG)": (ImageOps.mirror(original), "mirrored.jpg"),
        "an unrelated picture": (_picture(99), "unrelated.jpg"),
    }
    paths = {}
    for what, (image, name) in copies.items():
        image.save(edits / name, quality=70)
        paths[what] = edits / name
    return entries, paths


def _match_pictures(media, home: Home, copies: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    with home.open_store() as store:
        for what, path in copies.items():
            dihedral = what.startswith("mirrored")
            (hashed,) = media.hash_paths([str(path)], workers=1, options=media.HashOptions(dihedral=dihedral))
            (found,) = match_files(store.merged, [hashed], distance=31, dihedral=dihedral)
            if not found.matches:
                _say(f"  {what}: no match within 31 bits")
                continue
            best = found.matches[0]
            variant = f", as its {best.variant} variant" if best.variant not in (None, "original") else ""
            _say(f"  {what}: MATCH pdq {best.record.value[:16]}… at {best.distance} bits{variant}, "
                 f"{best.state}, [{', '.join(best.record.labels)}] from "
                 f"{', '.join(c.org for c in best.record.contributors)}")


async def _demo(root: Path) -> int:
    started = time.perf_counter()
    _say("hashfed demo: three orgs on this machine\n")
    _say("1. Each org makes its identity (an Ed25519 key, 0600) and an empty store")
    homes = {}
    for org in (A, B, NGO):
        signer = init_home(root / org, org)
        homes[org] = open_home(root / org)
        _say(f"  {org}: {signer.vkey()}")
    a, b, ngo = homes[A], homes[B], homes[NGO]

    _say("\n2. They add overlapping hashes and publish signed, append-only logs")
    shared = _md5("sample-1")
    _stage(a, [
        Entry.add("md5", shared, ["ncmec:a1"]),
        Entry.add("sha256", _sha256("sample-2"), ["csam"]),
        Entry.add("pdq", PDQ_1, ["csam"]),
        Entry.add("md5", _md5("typo"), ["csam"]),
    ])
    _stage(b, [
        Entry.add("md5", shared.upper(), ["b:csam"]),  # upper case: normalised on entry
        Entry.add("sha256", _sha256("sample-3")),
        Entry.opine("sha256", _sha256("sample-2"), "false_positive"),
    ])
    _stage(ngo, [
        Entry.add("md5", shared, ["ngo:report-17"]),
        Entry.add("pdq", PDQ_2, ["ngo:report-18"]),
    ])
    media = _media()
    copies: dict[str, Path] = {}
    if media is not None:
        pictures, copies = _hash_pictures(media, root)
        _stage(a, pictures)
    for home in (a, b, ngo):
        _publish(home)
    _say("  member-a.example retracts a hash it added by mistake:")
    _stage(a, [Entry.remove("md5", _md5("typo"))])
    _publish(a)

    _say("\n3. They exchange keys and grant each other every log they hold (own or relayed)")
    for holder in (a, b, ngo):
        for reader in (a, b, ngo):
            if reader is not holder:
                _trust(holder, reader, accept_push=(holder is a and reader is ngo))
                for origin in (A, B, NGO):
                    if origin != reader.org:
                        _grant(holder, reader.org, f"{origin}/default")

    async with (
        NodeService(a, host="127.0.0.1", port=0, sync=False) as sa,
        NodeService(b, host="127.0.0.1", port=0, sync=False) as sb,
        NodeService(ngo, host="127.0.0.1", port=0, sync=False) as sn,
        aiohttp.ClientSession() as session,
    ):
        _say(f"  servers: {A} {sa.url}, {B} {sb.url}, {NGO} {sn.url}")
        urls = {A: sa.url, B: sb.url, NGO: sn.url}
        for reader in (a, b, ngo):
            for org in urls:
                if org != reader.org:
                    _trust(reader, homes[org], url=urls[org], accept_push=(reader is a and org == NGO))

        _say(f"\n4. The NGO pushes its signed log to {A} (no server of its own needed)")
        for line in await push_logs(ngo, session, A):
            _say(f"  {line}")

        _say("\n5. Pull in a ring, every request signed (RFC 9421), every byte verified")
        for reader, source in ((b, A), (ngo, B), (a, NGO)):
            results = await pull_peer(
                str(reader.db_path), reader.config, reader.signers, session, source
            )
            for r in results:
                via = "" if r.log_id.startswith(source + "/") else f" (relayed by {source})"
                _say(f"  {reader.org} <- {source}: {r.log_id}{via}: {r.status}, size {r.new_size}")

        _say("\n6. The merged list on every node: who vouched, labels, retractions, opinions")
        lists = {home.org: _show(home) for home in (a, b, ngo)}
        with b.open_store() as store:
            typo = store.merged.lookup("md5", _md5("typo"))
        retracted = typo is not None and not typo.active and typo.retracted_by
        _say(
            f"  the hash {A} retracted: "
            + ("inactive on every node, kept with who retracted it" if retracted else "STILL ACTIVE")
        )

    _say(f"\n7. {B} hashes edited copies of {A}'s pictures and matches them (hashfed match)")
    if media is None:
        _say("  (install hashfed[media] to see hashing and matching)")
    else:
        _match_pictures(media, b, copies)

    digests = {
        org: hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
        for org, records in lists.items()
    }
    _say("\n8. Are the three lists identical?")
    for org, digest in digests.items():
        _say(f"  {org}: sha256 {digest}")
    if len(set(digests.values())) != 1:
        _say("  NO: the merged lists differ")
        return 1
    elapsed = time.perf_counter() - started
    _say(f"  yes: all three nodes hold the same list. Done in {elapsed:.2f} s; servers stopped.")
    return 0


def run_demo() -> int:
    with tempfile.TemporaryDirectory(prefix="hashfed-demo-") as folder:
        return asyncio.run(_demo(Path(folder)))


if __name__ == "__main__":
    sys.exit(run_demo())
