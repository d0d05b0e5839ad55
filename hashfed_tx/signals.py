"""How a hashfed merged-list record reads as a ThreatExchange signal, and how a
ThreatExchange opinion reads as a hashfed ``opinion`` entry.

Hash types. hashfed's types are content-agnostic; ThreatExchange's are named after the
content they hash. An ``md5`` is ``video_md5`` (the only MD5 signal type the library and HMA
have; NCMEC and StopNCII map their MD5s there too), ``sha256`` is ``video_sha256``, ``pdq``
is ``pdq``, and ``photodna`` is whatever installed signal type is named ``photodna`` (the
Tech Coalition's extension). ``sha1`` has no ThreatExchange type and is not fetched.

Records. A record whose ``active`` is true becomes the signal's metadata: each contributor
(a log whose ``add`` is active) is a ``POSITIVE_CLASS`` opinion whose tags are that
contributor's labels, as a bank entry is a positive in HMA; each ``true_positive`` opinion is
another positive and each ``false_positive`` a ``NEGATIVE_CLASS`` one, so ThreatExchange's
aggregate shows a hash members vouch for but someone disputes as ``DISPUTED``. An inactive
record (every contributor retracted, or only opinions) is a deletion: ``None``, which the
fetch store removes from the index.

Labelling. A ThreatExchange ``POSITIVE_CLASS`` opinion is a hashfed ``true_positive``,
``NEGATIVE_CLASS`` a ``false_positive``. ``INVESTIGATION_SEED`` has no hashfed meaning, and a
hashfed opinion carries no labels (PROTOCOL §3): both are refused rather than dropped.

Memory. A fetch of a million records keeps every record in the caller's store (the CLI's is
one in-memory dict). Contributors are shared objects: records vouched for by the same log
with the same labels point at one ``Contributor`` (and pickle it once).
"""


import typing as t
from dataclasses import dataclass

from threatexchange.exchanges import fetch_state as state

# hashfed type -> ThreatExchange signal type name
TX_SIGNAL_OF: t.Final[t.Mapping[str, str]] = {
    "md5": "video_md5",
    "sha256": "video_sha256",
    "pdq": "pdq",
    "photodna": "photodna",
}
HASHFED_TYPE_OF: t.Final[t.Mapping[str, str]] = {v: k for k, v in TX_SIGNAL_OF.items()}
OPINIONS: t.Final = frozenset({"true_positive", "false_positive"})
_SHARED_CONTRIBUTORS = 65_536


class Contributor(t.NamedTuple):
    org: str
    collection: str
    labels: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.org}/{self.collection}"


class Opinion(t.NamedTuple):
    org: str
    collection: str
    opinion: str  # "true_positive" or "false_positive"

    def __str__(self) -> str:
        return f"{self.org}/{self.collection}"


@dataclass
class HashfedSignalMetadata(state.FetchedSignalMetadata):
    """What the node's merged list says of one active hash: who vouches for it with which
    labels, and every log's opinion of it. (Not frozen: its base class is not.)"""

    contributors: tuple[Contributor, ...]
    opinions: tuple[Opinion, ...] = ()

    def __post_init__(self) -> None:
        if not self.contributors:
            raise ValueError("an active hashfed record has at least one contributor")

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(label for c in self.contributors for label in c.labels)

    def get_as_opinions(self) -> t.Sequence[state.SignalOpinion]:
        positive, negative = (
            state.SignalOpinionCategory.POSITIVE_CLASS,
            state.SignalOpinionCategory.NEGATIVE_CLASS,
        )
        ret = [state.SignalOpinion(False, positive, set(c.labels)) for c in self.contributors]
        ret += [
            state.SignalOpinion(False, positive if o.opinion == "true_positive" else negative, set())
            for o in self.opinions
        ]
        return ret

    def __str__(self) -> str:
        """One line for ``threatexchange match``: category, labels, and who said what."""
        parts = [self.get_as_aggregate_opinion().category.name]
        if self.labels:
            parts.append("labels=" + ",".join(sorted(self.labels)))
        parts.append("by=" + ",".join(str(c) for c in self.contributors))
        for kind in ("true_positive", "false_positive"):
            said = [str(o) for o in self.opinions if o.opinion == kind]
            if said:
                parts.append(f"{kind}=" + ",".join(said))
        return " ".join(parts)


class RecordError(ValueError):
    """A record from the feed is not of the shape the listener promises."""


class RecordReader:
    """Turns feed records into ``((signal type name, value), metadata or None)`` pairs.

    One reader per fetch: it keeps the shared ``Contributor`` objects (a bounded cache)."""

    def __init__(self, signal_type_names: t.Iterable[str]) -> None:
        names = frozenset(signal_type_names)
        self._types = {h: tx for h, tx in TX_SIGNAL_OF.items() if tx in names}
        self._contributors: dict[tuple[str, str, tuple[str, ...]], Contributor] = {}

    def read(
        self, records: t.Iterable[object]
    ) -> dict[tuple[str, str], HashfedSignalMetadata | None]:
        updates: dict[tuple[str, str], HashfedSignalMetadata | None] = {}
        for i, record in enumerate(records):
            try:
                key, metadata = self._one(record)
            except (KeyError, TypeError, ValueError) as exc:
                raise RecordError(f"changes[{i}]: {exc}") from None
            if key is not None:
                updates[key] = metadata
        return updates

    def _one(self, record: object) -> tuple[tuple[str, str] | None, HashfedSignalMetadata | None]:
        if not isinstance(record, dict):
            raise TypeError("a record must be an object")
        type_, value, active = record["type"], record["value"], record["active"]
        if not isinstance(type_, str) or not isinstance(value, str) or type(active) is not bool:
            raise TypeError("type and value must be strings, active a boolean")
        tx_type = self._types.get(type_)
        if tx_type is None:
            return None, None  # a type this ThreatExchange cannot match (sha1, or not installed)
        if not active:
            return (tx_type, value), None
        contributors = tuple(self._contributor(c) for c in _list(record, "contributors"))
        opinions = tuple(_opinion(o) for o in _list(record, "opinions"))
        return (tx_type, value), HashfedSignalMetadata(contributors, opinions)

    def _contributor(self, obj: object) -> Contributor:
        if not isinstance(obj, dict):
            raise TypeError("a contributor must be an object")
        org, collection, labels = obj["org"], obj["collection"], obj["labels"]
        if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
            raise TypeError("a contributor's labels must be a list of strings")
        key = (_text(org, "org"), _text(collection, "collection"), tuple(labels))
        shared = self._contributors.get(key)
        if shared is None:
            if len(self._contributors) >= _SHARED_CONTRIBUTORS:
                self._contributors.clear()
            shared = self._contributors[key] = Contributor(*key)
        return shared


def _list(record: dict, name: str) -> list:
    value = record[name]
    if not isinstance(value, list):
        raise TypeError(f"{name} must be a list")
    return value


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    return value


def _opinion(obj: object) -> Opinion:
    if not isinstance(obj, dict):
        raise TypeError("an opinion must be an object")
    opinion = obj["opinion"]
    if opinion not in OPINIONS:
        raise ValueError(f"unknown opinion {opinion!r}")
    return Opinion(_text(obj["org"], "org"), _text(obj["collection"], "collection"), opinion)


def opinion_entry(signal_type_name: str, value: str, opinion: state.SignalOpinion) -> dict[str, str]:
    """The ``POST /v1/opinions`` item for a ThreatExchange opinion; ValueError when hashfed
    cannot say it (a type it has not, an investigation seed, labels)."""
    type_ = HASHFED_TYPE_OF.get(signal_type_name)
    if type_ is None:
        raise ValueError(f"hashfed has no hash type for the {signal_type_name} signal type")
    if opinion.category == state.SignalOpinionCategory.POSITIVE_CLASS:
        said = "true_positive"
    elif opinion.category == state.SignalOpinionCategory.NEGATIVE_CLASS:
        said = "false_positive"
    else:
        raise ValueError(
            f"hashfed opinions are true or false positives; {opinion.category.name} has no meaning there"
        )
    if opinion.tags:
        raise ValueError(
            "hashfed opinions carry no labels (labels belong to the log that adds a hash): "
            f"leave out {sorted(opinion.tags)}"
        )
    return {"type": type_, "value": value.strip(), "opinion": said}
