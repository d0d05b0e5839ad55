"""Records of the merged list (PROTOCOL §8), as values: what a node answers about a hash.

A record gathers every log's say on one (type, value): it is active while any log's ``add``
is active; its labels are the union of the active adds' labels; its contributors are the
logs with an active add; its opinions are every log's opinion; ``retracted_by`` the logs
that retracted their add (the record is kept, inactive, when all of them did). How records are read from a
store is the merged list's business (``hashfed.federation.merged``); how they are written
out is the formats' (``hashfed.formats``). Both share these types.
"""

from __future__ import annotations

from typing import NamedTuple


class Contributor(NamedTuple):
    org: str
    collection: str
    labels: tuple[str, ...]


class OpinionOf(NamedTuple):
    org: str
    collection: str
    opinion: str


class LogRef(NamedTuple):
    org: str
    collection: str


class Record(NamedTuple):
    type: str
    value: str
    active: bool
    labels: tuple[str, ...]
    contributors: tuple[Contributor, ...]
    opinions: tuple[OpinionOf, ...]
    # Logs whose add of this hash is retracted: a record every contributor retracted stays
    # known, inactive, with who retracted it (PROTOCOL §8).
    retracted_by: tuple[LogRef, ...] = ()

    def to_json_obj(self) -> dict:
        """The record as ``lookup --json`` and the lookup API print it."""
        return {
            "type": self.type,
            "value": self.value,
            "active": self.active,
            "labels": list(self.labels),
            "contributors": [
                {"org": c.org, "collection": c.collection, "labels": list(c.labels)}
                for c in self.contributors
            ],
            "opinions": [
                {"org": o.org, "collection": o.collection, "opinion": o.opinion}
                for o in self.opinions
            ],
            "retracted_by": [{"org": r.org, "collection": r.collection} for r in self.retracted_by],
        }

    @classmethod
    def from_json_obj(cls, obj: dict) -> Record:
        """The inverse of ``to_json_obj`` (for records this node wrote, such as the
        change feed's: it checks nothing)."""
        return cls(
            type=obj["type"],
            value=obj["value"],
            active=obj["active"],
            labels=tuple(obj["labels"]),
            contributors=tuple(
                Contributor(c["org"], c["collection"], tuple(c["labels"])) for c in obj["contributors"]
            ),
            opinions=tuple(OpinionOf(o["org"], o["collection"], o["opinion"]) for o in obj["opinions"]),
            retracted_by=tuple(LogRef(r["org"], r["collection"]) for r in obj["retracted_by"]),
        )
