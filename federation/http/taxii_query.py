"""TAXII 2.1 requests and answers, without the server: the error type, the query
parameters of the objects and manifest endpoints (§3.4 and §3.5 of the TAXII 2.1 spec),
content negotiation, and the STIX object of an indicator row.

Parameters are parsed strictly: ``limit``, ``next`` and ``added_after`` given twice, or
malformed, are 400. A ``match[...]`` field this server does not filter on is ignored
(the spec's filters are optional to support, and clients such as OpenCTI send several);
``id``, ``type``, ``version`` and ``spec_version`` are supported. A page is at most
:data:`MAX_LIMIT` objects (a larger ``limit`` is lowered: TAXII lets the server decide),
:data:`DEFAULT_LIMIT` when none is asked for.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import orjson
from aiohttp import web
from multidict import MultiDict, MultiDictProxy, MultiMapping

from hashfed.federation.store.indicators import IndicatorRow
from hashfed.formats._stix_pattern import hash_pattern
from hashfed.formats.stix import EXTERNAL_SOURCE, indicator, stix_time
from hashfed.keys.encoding import decimal
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import make_log_id
from hashfed.protocol.records import Contributor, LogRef, Record

TAXII_MEDIA_TYPE: Final = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE: Final = "application/stix+json;version=2.1"
DEFAULT_LIMIT: Final = 1_000
MAX_LIMIT: Final = 10_000
MAX_MATCH_VALUES: Final = 100

MAX_LIMIT_TEXT: Final = 999_999_999
"""The largest ``limit`` read (and lowered to :data:`MAX_LIMIT`); past it, 400."""
MAX_CURSOR: Final = 2**63 - 1
"""The largest ``next``: a ``date_added`` in µs, an SQLite integer."""

_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?Z")
_STIX_TYPE = re.compile(r"[a-z0-9][a-z0-9-]{1,249}")
_STIX_ID = re.compile(r"([a-z0-9][a-z0-9-]{1,249})--([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_VERSION_WORDS = frozenset({"first", "last", "all"})


class TaxiiError(Exception):
    """A refusal, answered as a TAXII 2.1 error object (§3.6.1) with its status."""

    def __init__(self, status: int, title: str, description: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.title = title
        self.description = description
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = {"title": self.title, "description": self.description, "http_status": str(self.status)}
        return taxii_response(body, status=self.status, headers=self.headers)


def taxii_response(body: object, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(status=status, body=orjson.dumps(body), headers=headers)
    # Set as written: taxii2-client compares the header's tokens with what it asked for.
    response.headers["Content-Type"] = TAXII_MEDIA_TYPE
    return response


def bad_request(description: str) -> TaxiiError:
    return TaxiiError(400, "Bad request", description)


# -- content negotiation -------------------------------------------------------------------


def accepts_taxii(accept: str | None) -> bool:
    """Whether an ``Accept`` header admits TAXII 2.1 JSON: ``application/taxii+json`` with
    ``version=2.1`` or no version (which means the newest, 2.1 here). Wildcards do not
    count: a TAXII client names the media type (§1.6.8), and one that does not is
    probably not speaking TAXII."""
    if not accept:
        return False
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() != "application/taxii+json":
            continue
        version = None
        refused = False
        for param in params:
            name, _, value = param.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "version":
                version = value
            elif name == "q" and value in ("0", "0.0", "0.00", "0.000"):
                refused = True
        if not refused and version in (None, "2.1"):
            return True
    return False


# -- query parameters ------------------------------------------------------------------------


def parse_timestamp(text: str, name: str) -> int:
    """A TAXII/STIX timestamp (UTC, ``Z``, up to microseconds) as Unix microseconds."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise bad_request(f"{name} {text[:40]!r} is not a timestamp like 2026-01-02T03:04:05.678Z")
    *parts, fraction = match.groups()
    try:
        moment = datetime(*map(int, parts), tzinfo=UTC)
    except ValueError as exc:
        raise bad_request(f"{name} {text[:40]!r}: {exc}") from exc
    return int(moment.timestamp()) * 1_000_000 + int((fraction or "0").ljust(6, "0"))


def format_us(added_us: int) -> str:
    """A ``date_added`` as TAXII writes it, to the microsecond."""
    moment = datetime.fromtimestamp(added_us // 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{added_us % 1_000_000:06d}Z"


@dataclass(frozen=True, slots=True)
class Query:
    """What a request to the objects or manifest endpoint asks for."""

    after_us: int  # the later of added_after and next
    limit: int
    uuids: tuple[uuid.UUID, ...] | None  # match[id]: None = any
    modified_ms: tuple[int, ...] | None  # match[version] timestamps: None = any
    nothing: bool  # a filter no indicator can pass (match[type] without indicator, ...)


NO_QUERY: Final[MultiMapping[str]] = MultiDictProxy(MultiDict())


def _single(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise bad_request(f"{name} is given more than once")
    return values[0] if values else None


def _listed(query: MultiMapping[str], name: str) -> list[str] | None:
    text = _single(query, name)
    if text is None:
        return None
    values = [v.strip() for v in text.split(",")]
    if not all(values):
        raise bad_request(f"{name} has an empty value")
    if len(values) > MAX_MATCH_VALUES:
        raise bad_request(f"{name} has {len(values)} values; at most {MAX_MATCH_VALUES}")
    return values


def _whole(text: str, name: str, max_value: int) -> int:
    """``keys.encoding.decimal``'s reading (ASCII digits, canonical, length checked before
    any conversion), refused as a TAXII 400."""
    try:
        return decimal(text, what=name, max_value=max_value)
    except ProtocolError as exc:
        raise bad_request(str(exc)) from exc


def parse_query(query: MultiMapping[str], *, object_id: uuid.UUID | None = None) -> Query:
    """The parameters of a request (``object_id``: the object the path names, if any)."""
    after_us = 0
    added_after = _single(query, "added_after")
    if added_after is not None:
        after_us = parse_timestamp(added_after, "added_after")
    cursor = _single(query, "next")
    if cursor is not None:
        after_us = max(after_us, _whole(cursor, "next", MAX_CURSOR))
    limit_text = _single(query, "limit")
    if limit_text is None:
        limit = DEFAULT_LIMIT
    else:
        limit = min(_whole(limit_text, "limit", MAX_LIMIT_TEXT), MAX_LIMIT)
        if limit == 0:
            raise bad_request("limit must be at least 1")
    nothing = False
    uuids: list[uuid.UUID] | None = None if object_id is None else [object_id]
    ids = _listed(query, "match[id]")
    if ids is not None:
        wanted = []
        for stix_id in ids:
            match = _STIX_ID.fullmatch(stix_id)
            if match is None:
                raise bad_request(f"match[id] {stix_id[:80]!r} is not a STIX identifier")
            if match[1] == "indicator":
                wanted.append(uuid.UUID(match[2]))
        uuids = wanted if uuids is None else [u for u in uuids if u in wanted]
    types = _listed(query, "match[type]")
    if types is not None:
        for name in types:
            if not _STIX_TYPE.fullmatch(name):
                raise bad_request(f"match[type] {name[:80]!r} is not a STIX type name")
        nothing |= "indicator" not in types
    spec_versions = _listed(query, "match[spec_version]")
    if spec_versions is not None:
        nothing |= "2.1" not in spec_versions
    modified: list[int] | None = None
    versions = _listed(query, "match[version]")
    if versions is not None and not _VERSION_WORDS.intersection(versions):
        # One version of each object is held: first, last and all all name it; otherwise
        # only the timestamps given can match it.
        modified = []
        for text in versions:
            us = parse_timestamp(text, "match[version]")
            if us % 1000 == 0:  # STIX versions are milliseconds; finer ones match nothing
                modified.append(us // 1000)
    if uuids is not None and not uuids:
        nothing = True
    return Query(
        after_us=after_us,
        limit=limit,
        uuids=None if uuids is None else tuple(uuids),
        modified_ms=None if modified is None else tuple(modified),
        nothing=nothing or modified == [],
    )


# -- objects ---------------------------------------------------------------------------------


def _utc_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)


def stix_indicator(row: IndicatorRow, org: str, collection: str) -> dict[str, object]:
    """The STIX 2.1 Indicator of one collection object: ``formats.stix.indicator`` of the
    log's own record, with the per-log id and times of ``store/indicators.py``. (It is the
    reference; :func:`stix_object` builds the same object at a page's speed, and a test
    holds the two equal.)"""
    record = Record(
        type=row.type,
        value=row.value,
        active=not row.revoked,
        labels=row.labels,
        contributors=() if row.revoked else (Contributor(org, collection, row.labels),),
        opinions=(),
        retracted_by=(LogRef(org, collection),) if row.revoked else (),
    )
    obj = indicator(record, created=_utc_ms(row.created_ms), modified=_utc_ms(row.modified_ms))
    obj["id"] = row.stix_id
    return obj


class ObjectWriter:
    """Builds the objects of one page: ``stix_indicator``'s result without a Record, a
    discarded UUIDv5 or a strftime per object (a page of 10,000 took ~1 s that way)."""

    def __init__(self, org: str, collection: str) -> None:
        self._references = [{"source_name": EXTERNAL_SOURCE, "external_id": make_log_id(org, collection)}]
        self._times: dict[int, str] = {}

    def _time(self, ms: int) -> str:
        text = self._times.get(ms)
        if text is None:
            text = self._times[ms] = stix_time(_utc_ms(ms))
        return text

    def __call__(self, row: IndicatorRow) -> dict[str, object]:
        created = self._time(row.created_ms)
        obj: dict[str, object] = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": row.stix_id,
            "created": created,
            "modified": self._time(row.modified_ms),
            "name": f"{row.type} {row.value}",
            "pattern": hash_pattern(row.type, row.value),
            "pattern_type": "stix",
            "pattern_version": "2.1",
            "valid_from": created,
        }
        if row.labels and not row.revoked:
            obj["labels"] = list(row.labels)
        if row.revoked:
            obj["revoked"] = True
        else:
            obj["external_references"] = self._references
        return obj


def manifest_entry(row: IndicatorRow) -> dict[str, object]:
    return {
        "id": row.stix_id,
        "date_added": format_us(row.added_us),
        "version": stix_time(_utc_ms(row.modified_ms)),
        "media_type": STIX_MEDIA_TYPE,
    }
