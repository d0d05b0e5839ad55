"""Hash entries of PROTOCOL §3: ``add``, ``remove`` and ``opinion``.

An :class:`Entry` is a plain named tuple, because a peer decodes a million of them per
sync. Two ways in:

- the constructors :meth:`Entry.add`, :meth:`Entry.remove` and :meth:`Entry.opine` take
  user input, normalise it and check it (:class:`ProtocolError` on anything bad);
- :func:`decode_entries` takes the parsed JSON array of a batch and checks it with
  precompiled patterns, no model per entry. It raises :class:`ProtocolError` for anything
  malformed but lets an unknown hash type through (its value unchecked, as it cannot be),
  so that a batch's caller can report malformed bytes before it reports what fails
  verification; :func:`check_known_types` then raises :class:`VerificationError` for the
  first entry of a type this node does not know.

:func:`check_entries` checks Entries before they are written, and :func:`entries_json`
writes checked entries as canonical (RFC 8785) JSON text; :meth:`Entry.to_json_obj` gives
one entry's §3 object.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

from hashfed.keys.errors import ProtocolError, VerificationError
from hashfed.keys.names import LABEL_RE, check_label, keys_difference, show
from hashfed.protocol.hashtypes import HASH_TYPES, check_known, normalise

OPS: Final = frozenset({"add", "remove", "opinion"})
OPINIONS: Final = frozenset({"true_positive", "false_positive"})
MAX_LABELS: Final = 16

_KEYS: Final[dict[str, frozenset[str]]] = {
    "add": frozenset({"labels", "op", "type", "value"}),
    "remove": frozenset({"op", "type", "value"}),
    "opinion": frozenset({"op", "opinion", "type", "value"}),
}


def normalise_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """User labels as an ``add`` carries them: checked, sorted, unique, at most 16."""
    if isinstance(labels, str):
        raise ProtocolError(f"labels must be a collection of labels, not the string {show(labels)}")
    unique = sorted({check_label(label) for label in labels})
    if len(unique) > MAX_LABELS:
        raise ProtocolError(f"{len(unique)} labels: at most {MAX_LABELS} allowed")
    return tuple(unique)


class Entry(NamedTuple):
    """One entry of a batch. Build it with :meth:`add`, :meth:`remove` or :meth:`opine`."""

    op: str
    """``"add"``, ``"remove"`` or ``"opinion"``."""
    type: str
    """A hash type of the registry (:data:`protocol.hashtypes.HASH_TYPES`)."""
    value: str
    """The normalised hash value."""
    labels: tuple[str, ...] = ()
    """``add`` only: sorted, unique, at most :data:`MAX_LABELS`."""
    opinion: str | None = None
    """``opinion`` only: ``"true_positive"`` or ``"false_positive"``."""

    @classmethod
    def add(cls, type_: str, value: str, labels: Iterable[str] = ()) -> Entry:
        """This org vouches for a hash. Normalises ``value``; sorts and dedups ``labels``."""
        return cls("add", type_, normalise(type_, value), normalise_labels(labels), None)

    @classmethod
    def remove(cls, type_: str, value: str) -> Entry:
        """This log retracts its own earlier ``add`` of a hash. Normalises ``value``."""
        return cls("remove", type_, normalise(type_, value), (), None)

    @classmethod
    def opine(cls, type_: str, value: str, opinion: str) -> Entry:
        """This org's view of a hash, whoever contributed it. Normalises ``value``."""
        if type(opinion) is not str or opinion not in OPINIONS:
            raise ProtocolError(f"bad opinion {show(opinion)}: must be one of {sorted(OPINIONS)}")
        return cls("opinion", type_, normalise(type_, value), (), opinion)

    def to_json_obj(self) -> dict[str, object]:
        """The entry as the JSON object of PROTOCOL §3 (keys in canonical order)."""
        if self.op == "add":
            return {"labels": list(self.labels), "op": "add", "type": self.type, "value": self.value}
        if self.op == "opinion":
            return {"op": "opinion", "opinion": self.opinion, "type": self.type, "value": self.value}
        return {"op": self.op, "type": self.type, "value": self.value}


def check_entries(entries: Sequence[Entry]) -> tuple[Entry, ...]:
    """Check Entries before they are written to a batch; return them as a tuple.

    Raises :class:`ProtocolError` naming the first bad entry. Unlike the constructors
    this does not normalise: values must already be normalised and labels sorted and
    unique, as in an Entry the constructors built. An unknown type is a ProtocolError
    here (the entry is ours to fix), and so is a field its op does not use.
    """
    entries = tuple(entries)
    value_matchers = _VALUE_MATCHERS
    checked_labels: set[tuple[str, ...]] = {()}
    for index, entry in enumerate(entries):
        if not isinstance(entry, Entry):
            raise _error(index, f"not an Entry: {show(entry)}")
        op, type_, value, labels, opinion = entry
        value_match = value_matchers.get(type_) if type(type_) is str else None
        if value_match is None:
            raise _error(index, f"unknown hash type {show(type_)}")
        if type(value) is not str or value_match(value) is None:
            raise _error(index, f"bad value {show(value)} for hash type {show(type_)}")
        if type(labels) is not tuple or (labels and op != "add"):
            raise _error(index, f"labels must be a tuple, and empty unless op is add: {show(labels)}")
        if op == "add":
            if opinion is not None:
                raise _error(index, f"an 'add' entry has no opinion, got {show(opinion)}")
            if labels not in checked_labels:  # label tuples repeat: check each once
                _check_labels(index, list(labels))
                checked_labels.add(labels)
        elif op == "remove":
            if opinion is not None:
                raise _error(index, f"a 'remove' entry has no opinion, got {show(opinion)}")
        elif op == "opinion":
            if opinion not in OPINIONS:
                raise _error(index, f"bad opinion {show(opinion)}: must be one of {sorted(OPINIONS)}")
        else:
            raise _error(index, f"bad op {show(op)}: must be one of {sorted(OPS)}")
    return entries


_ADD_JSON: Final = '{"labels":[%s],"op":"add","type":"%s","value":"%s"}'
_REMOVE_JSON: Final = '{"op":"remove","type":"%s","value":"%s"}'
_OPINION_JSON: Final = '{"op":"opinion","opinion":"%s","type":"%s","value":"%s"}'


def entries_json(entries: Iterable[Entry]) -> str:
    """The RFC 8785 text of the JSON array of checked ``entries``.

    Keys are written in sorted order and strings verbatim between quotes, which is
    RFC 8785's form for a string of printable ASCII without quote or backslash. That
    holds for every name, label and value that passed :func:`check_entries` or
    :func:`decode_entries`; only the strings of an entry of unknown type are not
    checked by those, and ``decode_batch`` has checked them first (ASCII bytes, no
    backslash, so no escape, and JSON forbids a raw quote or control character).
    """
    parts = []
    append = parts.append
    for op, type_, value, labels, opinion in entries:
        if op == "add":
            append(_ADD_JSON % ('"' + '","'.join(labels) + '"' if labels else "", type_, value))
        elif op == "remove":
            append(_REMOVE_JSON % (type_, value))
        else:
            append(_OPINION_JSON % (opinion, type_, value))
    return "[" + ",".join(parts) + "]"


def _error(index: int, message: str) -> ProtocolError:
    return ProtocolError(f"entry {index}: {message}")


def _keys_error(index: int, obj: dict[str, object], expected: frozenset[str]) -> ProtocolError:
    return _error(index, f"{obj['op']} entry has wrong keys: {keys_difference(obj.keys(), expected)}")


def _check_labels(index: int, labels: object) -> tuple[str, ...]:
    if type(labels) is not list:
        raise _error(index, f"labels must be an array, not {show(labels)}")
    if len(labels) > MAX_LABELS:
        raise _error(index, f"{len(labels)} labels: at most {MAX_LABELS} allowed")
    label_match = LABEL_RE.fullmatch
    previous = ""
    for position, label in enumerate(labels):
        if type(label) is not str or label_match(label) is None:
            raise _error(index, f"label {position}: bad label {show(label)}")
        if label <= previous:
            raise _error(index, f"label {position}: labels must be sorted and unique")
        previous = label
    return tuple(labels)


_VALUE_MATCHERS: Final = {name: hash_type.pattern.fullmatch for name, hash_type in HASH_TYPES.items()}


def decode_entries(objs: object) -> tuple[Entry, ...]:
    """Check the parsed JSON array of a batch's entries and return them as Entries.

    Raises :class:`ProtocolError` naming the first bad entry (``"entry 17: ..."``, counted
    from 0). An entry whose type is not in the registry passes with its value unchecked;
    follow with :func:`check_known_types`. The number of entries is not checked here.
    """
    if type(objs) is not list:
        raise ProtocolError(f"entries must be an array, not {show(objs)}")
    keys_by_op = _KEYS
    value_matchers = _VALUE_MATCHERS
    new_entry = tuple.__new__
    # Label lists repeat across a batch; check each distinct one once.
    checked_labels: dict[tuple[object, ...], tuple[str, ...]] = {(): ()}
    entries: list[Entry] = []
    append = entries.append
    for index, obj in enumerate(objs):
        if type(obj) is not dict:
            raise _error(index, f"must be an object, not {show(obj)}")
        op = obj.get("op")
        expected = keys_by_op.get(op) if type(op) is str else None
        if expected is None:
            raise _error(index, f"bad op {show(op)}: must be one of {sorted(OPS)}")
        if obj.keys() != expected:
            raise _keys_error(index, obj, expected)
        type_ = obj["type"]
        value = obj["value"]
        if type(type_) is not str:
            raise _error(index, f"type must be a string, not {show(type_)}")
        value_match = value_matchers.get(type_)
        if type(value) is not str or (value_match is not None and value_match(value) is None):
            raise _error(index, f"bad value {show(value)} for hash type {show(type_)}")
        if op == "add":
            labels = obj["labels"]
            checked = None
            if type(labels) is list:
                try:
                    checked = checked_labels.get(tuple(labels))
                except TypeError:  # an array or object among the labels: rejected below
                    pass
            if checked is None:
                checked = _check_labels(index, labels)
                checked_labels[checked] = checked
            append(new_entry(Entry, (op, type_, value, checked, None)))
        elif op == "remove":
            append(new_entry(Entry, (op, type_, value, (), None)))
        else:
            opinion = obj["opinion"]
            if opinion != "true_positive" and opinion != "false_positive":
                raise _error(index, f"bad opinion {show(opinion)}: must be one of {sorted(OPINIONS)}")
            append(new_entry(Entry, (op, type_, value, (), opinion)))
    return tuple(entries)


def check_known_types(entries: Sequence[Entry]) -> None:
    """Raise :class:`VerificationError` for the first entry of a type not in the registry."""
    if {entry.type for entry in entries} <= HASH_TYPES.keys():
        return
    for index, entry in enumerate(entries):
        try:
            check_known(entry.type)
        except VerificationError as exc:
            raise VerificationError(f"entry {index}: {exc}") from None


__all__ = [
    "Entry",
    "OPS",
    "OPINIONS",
    "MAX_LABELS",
    "check_entries",
    "entries_json",
    "decode_entries",
    "check_known_types",
]
