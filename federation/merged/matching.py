"""Matching a hashed file against the merged list: what ``hashfed match`` prints and
``POST /v1/match`` answers, decided once here for both.

A file's hashes (:class:`hashfed.media.MediaHash`) become queries: its md5 and sha256 are
looked up exactly; its PDQ, each of a video's frame PDQs, and, when asked for, the
image's eight dihedral variants are searched within ``distance`` bits, all of them in
one batch (:meth:`MergedList.near_pdq_many`, or the node's worker-thread matcher), never
one search per hash. Work is split so that the caller owns the IO:

- :func:`plan` lists the queries (pure);
- the caller looks them up (:func:`match_files` does it over a ``MergedList`` for the CLI;
  the HTTP handler through ``node.matching``, off the event loop);
- :func:`assemble` turns the answers into :class:`FileMatch` values (pure).

Decisions:

- **One match per record.** A record reached by several of a file's hashes (a video's
  frames, several variants) is one match: its distance is the smallest, a video's match
  lists every sampled second that hit it (with that frame's distance), and a dihedral
  match names the variant nearest to it (on a tie, the first in the reference's order,
  so ``original`` wins over a transform at the same distance).
- **Order:** exact matches first (distance 0, md5 then sha256), then PDQ matches nearest
  first, ties by value, so output is stable run to run.
- **State, said plainly:** ``active``; ``disputed`` when active but some log holds a
  ``false_positive`` opinion on it; ``retracted`` when every add was retracted (the record
  is kept, inactive, PROTOCOL §8); ``inactive`` when no log vouches for it (opinions only).
  A file *matches* (``hashfed match`` exits 0) when at least one match is active, disputed
  included: a dispute is information for the reviewer, not a retraction.
- A PDQ dropped for low quality is not searched (it would match unrelated images); the
  file's warnings say so.

Imports the media package for its types only: this module, and the commands and handler
above it, load without the media extra installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hashfed.federation.merged.records import MergedList
from hashfed.protocol.records import Record

if TYPE_CHECKING:
    from hashfed.media import MediaHash

ACTIVE, DISPUTED, RETRACTED, INACTIVE = "active", "disputed", "retracted", "inactive"
FALSE_POSITIVE = "false_positive"


def state_of(record: Record) -> str:
    """``active``, ``disputed``, ``retracted`` or ``inactive`` (see the module docstring)."""
    if record.active:
        disputed = any(o.opinion == FALSE_POSITIVE for o in record.opinions)
        return DISPUTED if disputed else ACTIVE
    return RETRACTED if record.retracted_by else INACTIVE


@dataclass(frozen=True, slots=True)
class FrameHit:
    """A sampled second of a video whose PDQ is within the distance of a record."""

    seconds: float
    distance: int


@dataclass(frozen=True, slots=True)
class Match:
    """One record a file matched. ``by`` is the file's hash that reached it (``md5``,
    ``sha256``, ``pdq``); ``variant`` the dihedral variant (only with ``--dihedral``);
    ``frames`` the video seconds that hit it (videos only)."""

    record: Record
    distance: int
    by: str
    variant: str | None = None
    frames: tuple[FrameHit, ...] = ()

    @property
    def state(self) -> str:
        return state_of(self.record)

    def to_json_obj(self) -> dict[str, object]:
        obj: dict[str, object] = {"distance": self.distance, "matched_by": self.by, "state": self.state}
        if self.variant is not None:
            obj["variant"] = self.variant
        if self.frames:
            obj["frames"] = [{"seconds": f.seconds, "distance": f.distance} for f in self.frames]
        obj["record"] = self.record.to_json_obj()
        return obj


@dataclass(frozen=True, slots=True)
class FileMatch:
    """A hashed file and every record it matched, in the order the module docstring gives."""

    hashes: MediaHash
    matches: tuple[Match, ...]

    @property
    def matched(self) -> bool:
        """True when some match is active (a disputed one included)."""
        return any(m.record.active for m in self.matches)

    def to_json_obj(self) -> dict[str, object]:
        return {
            **self.hashes.to_json_obj(),
            "matched": self.matched,
            "matches": [m.to_json_obj() for m in self.matches],
            "warnings": list(self.hashes.warnings),
        }


@dataclass(frozen=True, slots=True)
class Queries:
    """What to look up for a batch of files: exact (type, value) pairs, and PDQ values to
    search (each once, however many files or frames share it)."""

    exact: tuple[tuple[str, str], ...]
    pdq: tuple[str, ...]


def _pdq_queries(hashes: MediaHash, dihedral: bool) -> list[tuple[str, str | None, float | None]]:
    """(value, variant, seconds) for every PDQ of a file that is searched."""
    if hashes.frames:
        return [(f.pdq.value, None, f.seconds) for f in hashes.frames]
    if hashes.pdq is None:
        return []
    if dihedral and hashes.variants:
        return [(value, variant.value, None) for variant, value in hashes.variants.items()]
    return [(hashes.pdq.value, None, None)]


def plan(files: Sequence[MediaHash], *, dihedral: bool) -> Queries:
    exact: dict[tuple[str, str], None] = {}
    pdq: dict[str, None] = {}
    for hashes in files:
        exact[("md5", hashes.md5)] = None
        exact[("sha256", hashes.sha256)] = None
        for value, _, _ in _pdq_queries(hashes, dihedral):
            pdq[value] = None
    return Queries(tuple(exact), tuple(pdq))


def assemble(
    files: Sequence[MediaHash],
    *,
    dihedral: bool,
    exact: dict[tuple[str, str], Record | None],
    near: dict[str, list[tuple[int, Record]]],
) -> list[FileMatch]:
    """Each file's matches from the answers to :func:`plan`'s queries."""
    return [_assemble_one(hashes, dihedral, exact, near) for hashes in files]


def _assemble_one(
    hashes: MediaHash,
    dihedral: bool,
    exact: dict[tuple[str, str], Record | None],
    near: dict[str, list[tuple[int, Record]]],
) -> FileMatch:
    found: list[Match] = []
    for type_, value in (("md5", hashes.md5), ("sha256", hashes.sha256)):
        record = exact.get((type_, value))
        if record is not None:
            found.append(Match(record, 0, type_))
    best: dict[str, tuple[int, Record, str | None]] = {}
    frames: dict[str, list[FrameHit]] = {}
    for value, variant, seconds in _pdq_queries(hashes, dihedral):
        for distance, record in near.get(value, ()):
            held = best.get(record.value)
            if held is None or distance < held[0]:
                best[record.value] = (distance, record, variant)
            if seconds is not None:
                frames.setdefault(record.value, []).append(FrameHit(seconds, distance))
    pdq_matches = [
        Match(record, distance, "pdq", variant, tuple(frames.get(value, ())))
        for value, (distance, record, variant) in best.items()
    ]
    pdq_matches.sort(key=lambda m: (m.distance, m.record.value))
    return FileMatch(hashes, tuple(found + pdq_matches))


def match_files(
    merged: MergedList, files: Sequence[MediaHash], *, distance: int, dihedral: bool
) -> list[FileMatch]:
    """Match hashed files against a store's merged list: the exact lookups, then every
    PDQ search of every file in one ``near_pdq_many`` call."""
    queries = plan(files, dihedral=dihedral)
    exact = {(t, v): merged.lookup(t, v) for t, v in queries.exact}
    answers = merged.near_pdq_many(list(queries.pdq), distance) if queries.pdq else []
    near = dict(zip(queries.pdq, answers, strict=True))
    return assemble(files, dihedral=dihedral, exact=exact, near=near)


__all__ = [
    "ACTIVE",
    "DISPUTED",
    "INACTIVE",
    "RETRACTED",
    "FileMatch",
    "FrameHit",
    "Match",
    "Queries",
    "assemble",
    "match_files",
    "plan",
    "state_of",
]
