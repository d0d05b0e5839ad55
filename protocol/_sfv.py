"""Structured field values (RFC 9651), as far as the request-signature profile needs them.

A complete parser for Dictionary field values (items, inner lists, parameters, every bare
item type) that fails closed: a duplicate key or parameter is an error rather than "last
one wins", and a byte sequence must be canonical, padded base64. Serialisation covers only
what ``protocol.httpsig`` writes: strings, integers, and the ``@signature-params`` line.
Every failure is a :class:`ProtocolError`.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NoReturn

from hashfed.keys.encoding import b64decode
from hashfed.keys.errors import ProtocolError
from hashfed.keys.names import show


@dataclass(frozen=True)
class Token:
    value: str


@dataclass(frozen=True)
class Decimal:
    text: str


@dataclass(frozen=True)
class Date:
    seconds: int


@dataclass(frozen=True)
class DisplayString:
    value: str


BareItem = int | bool | str | bytes | Token | Decimal | Date | DisplayString
Params = tuple[tuple[str, BareItem], ...]


@dataclass(frozen=True)
class Item:
    value: BareItem
    params: Params


@dataclass(frozen=True)
class InnerList:
    items: tuple[Item, ...]
    params: Params


_DIGITS: Final = frozenset(string.digits)
_KEY_FIRST: Final = frozenset(string.ascii_lowercase + "*")
_KEY_REST: Final = frozenset(string.ascii_lowercase + string.digits + "_-.*")
_TOKEN_FIRST: Final = frozenset(string.ascii_letters + "*")
_TOKEN_REST: Final = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~:/")
_BASE64: Final = frozenset(string.ascii_letters + string.digits + "+/=")
_LOWER_HEX: Final = frozenset("0123456789abcdef")


class Parser:
    """A recursive-descent parser for one field value; every failure is a ProtocolError."""

    def __init__(self, text: str, field: str) -> None:
        if not text.isascii():
            raise ProtocolError(f"{field}: field value is not ASCII")
        self._s = text
        self._i = 0
        self._field = field

    def _fail(self, what: str) -> NoReturn:
        raise ProtocolError(f"{self._field}: {what} at offset {self._i} of {show(self._s)}")

    def _peek(self) -> str:
        return self._s[self._i : self._i + 1]

    def _skip(self, chars: str) -> None:
        while self._i < len(self._s) and self._s[self._i] in chars:
            self._i += 1

    def dictionary(self) -> dict[str, Item | InnerList]:
        """RFC 9651 §4.2.2, with the top-level whitespace rules of §4.2."""
        members: dict[str, Item | InnerList] = {}
        self._skip(" ")
        if self._i == len(self._s):
            return members
        while True:
            key = self._key()
            if key in members:
                self._fail(f"duplicate member {key!r}")
            if self._peek() == "=":
                self._i += 1
                members[key] = self._inner_list() if self._peek() == "(" else self._item()
            else:
                members[key] = Item(True, self._params())
            self._skip(" \t")
            if self._i == len(self._s):
                return members
            if self._peek() != ",":
                self._fail("expected ','")
            self._i += 1
            self._skip(" \t")
            if self._i == len(self._s):
                self._fail("trailing ','")

    def _inner_list(self) -> InnerList:
        self._i += 1  # "("
        items: list[Item] = []
        while True:
            self._skip(" ")
            if self._peek() == ")":
                self._i += 1
                return InnerList(tuple(items), self._params())
            items.append(self._item())
            if self._peek() not in (" ", ")"):
                self._fail("expected ' ' or ')' in inner list")

    def _item(self) -> Item:
        value = self._bare_item()
        return Item(value, self._params())

    def _params(self) -> Params:
        params: list[tuple[str, BareItem]] = []
        seen: set[str] = set()
        while self._peek() == ";":
            self._i += 1
            self._skip(" ")
            key = self._key()
            value: BareItem = True
            if self._peek() == "=":
                self._i += 1
                value = self._bare_item()
            if key in seen:
                self._fail(f"duplicate parameter {key!r}")
            seen.add(key)
            params.append((key, value))
        return tuple(params)

    def _key(self) -> str:
        start = self._i
        if self._peek() not in _KEY_FIRST:
            self._fail("expected a key")
        self._i += 1
        self._skip_set(_KEY_REST)
        return self._s[start : self._i]

    def _skip_set(self, chars: frozenset[str]) -> None:
        while self._i < len(self._s) and self._s[self._i] in chars:
            self._i += 1

    def _bare_item(self) -> BareItem:
        c = self._peek()
        if c == "-" or c in _DIGITS:
            return self._number()
        if c == '"':
            return self._string()
        if c in _TOKEN_FIRST:
            start = self._i
            self._i += 1
            self._skip_set(_TOKEN_REST)
            return Token(self._s[start : self._i])
        if c == ":":
            return self._byte_sequence()
        if c == "?":
            return self._boolean()
        if c == "@":
            self._i += 1
            seconds = self._number()
            if type(seconds) is not int:
                self._fail("a date must be an integer")
            return Date(seconds)
        if c == "%":
            return self._display_string()
        self._fail("expected a bare item")

    def _number(self) -> int | Decimal:
        negative = self._peek() == "-"
        if negative:
            self._i += 1
        start = self._i
        if self._peek() not in _DIGITS:
            self._fail("expected a digit")
        is_decimal = False
        while self._i < len(self._s):
            c = self._s[self._i]
            if c in _DIGITS:
                self._i += 1
            elif c == "." and not is_decimal:
                if self._i - start > 12:
                    self._fail("decimal has more than 12 integer digits")
                is_decimal = True
                self._i += 1
            else:
                break
            if self._i - start > (16 if is_decimal else 15):
                self._fail("number too long")
        text = self._s[start : self._i]
        if not is_decimal:
            return -int(text) if negative else int(text)
        if text.endswith(".") or len(text.partition(".")[2]) > 3:
            self._fail("decimal needs 1 to 3 fractional digits")
        return Decimal(("-" if negative else "") + text)

    def _string(self) -> str:
        self._i += 1  # '"'
        out: list[str] = []
        while self._i < len(self._s):
            c = self._s[self._i]
            self._i += 1
            if c == "\\":
                escaped = self._peek()
                if escaped not in ('"', "\\"):
                    self._fail("bad escape in string")
                self._i += 1
                out.append(escaped)
            elif c == '"':
                return "".join(out)
            elif not " " <= c <= "~":
                self._fail("control character in string")
            else:
                out.append(c)
        self._fail("unterminated string")

    def _byte_sequence(self) -> bytes:
        self._i += 1  # ":"
        end = self._s.find(":", self._i)
        if end < 0:
            self._fail("unterminated byte sequence")
        text = self._s[self._i : end]
        if not set(text) <= _BASE64:
            self._fail("bad character in byte sequence")
        try:
            raw = b64decode(text, what="byte sequence")
        except ProtocolError as exc:
            self._fail(f"{exc} (padded, canonical)")
        self._i = end + 1
        return raw

    def _boolean(self) -> bool:
        self._i += 1  # "?"
        c = self._peek()
        if c not in ("0", "1"):
            self._fail("expected ?0 or ?1")
        self._i += 1
        return c == "1"

    def _display_string(self) -> DisplayString:
        self._i += 1  # "%"
        if self._peek() != '"':
            self._fail("expected '\"' after '%'")
        self._i += 1
        out = bytearray()
        while self._i < len(self._s):
            c = self._s[self._i]
            self._i += 1
            if c == "%":
                pair = self._s[self._i : self._i + 2]
                if len(pair) != 2 or not set(pair) <= _LOWER_HEX:
                    self._fail("bad percent escape in display string")
                out.append(int(pair, 16))
                self._i += 2
            elif c == '"':
                try:
                    return DisplayString(out.decode("utf-8"))
                except UnicodeDecodeError:
                    self._fail("display string is not UTF-8")
            elif not " " <= c <= "~":
                self._fail("control character in display string")
            else:
                out.append(ord(c))
        self._fail("unterminated display string")


def parse_dictionary(text: str, field: str) -> dict[str, Item | InnerList]:
    """Parse a Dictionary field value (RFC 9651 §4.2.2) or raise ProtocolError."""
    return Parser(text, field).dictionary()


def sf_string(value: str) -> str:
    """Serialise a String (RFC 9651 §4.1.6)."""
    if type(value) is not str or not all(" " <= c <= "~" for c in value):
        raise ProtocolError(f"cannot serialise {show(value)} as a structured-field string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sf_bare(value: int | str) -> str:
    """Serialise an Integer or a String, the only parameter types of the profile."""
    if type(value) is int:
        if not -999_999_999_999_999 <= value <= 999_999_999_999_999:
            raise ProtocolError(f"integer {value} out of structured-field range")
        return str(value)
    return sf_string(value)


def serialise_params_line(components: Sequence[str], params: Sequence[tuple[str, int | str]]) -> str:
    """The ``@signature-params`` value: the inner list of components, then parameters."""
    inner = " ".join(sf_string(name) for name in components)
    return f"({inner})" + "".join(f";{key}={sf_bare(value)}" for key, value in params)
