"""Fuzzing every parser on its own: hostile bytes and text get our own errors, never a crash.

For each parser: random input, mutations of a valid input (a byte flipped, inserted or
deleted), huge sizes, and Unicode tricks (superscript, Arabic-Indic and fullwidth digits,
NUL, CR/LF, ESC sequences, line and paragraph separators). Two properties:

- the only exceptions are ours (``HashfedError`` subclasses; ``ConfigError`` for the
  config loader), never IndexError, KeyError, UnicodeDecodeError, RecursionError, ...;
- what is accepted re-encodes to exactly the bytes it was read from (canonical form).

Bugs these found have named regression tests at the end of the file.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hashfed.federation.config import check_base_url, load_config
from hashfed.keys import Signer, Verifier
from hashfed.keys.errors import ConfigError, HashfedError, ProtocolError
from hashfed.keys.vkey import format_signer_key, format_vkey, parse_signer_key, parse_vkey
from hashfed.protocol import _sfv as sfv
from hashfed.protocol.batch import decode_batch, encode_batch, peek_index
from hashfed.protocol.checkpoint import (
    Checkpoint,
    parse_checkpoint_body,
    sign_checkpoint,
    verify_checkpoint,
)
from hashfed.protocol.entries import Entry, decode_entries, entries_json
from hashfed.protocol.hashtypes import HASH_TYPES, normalise
from hashfed.protocol.httpsig import (
    RequestTarget,
    check_content_digest,
    normalise_authority,
    sign_request,
    verify_request,
)
from hashfed.protocol.note import parse_note

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ACME = Signer.from_seed("acme.example", bytes(range(32)))
ORG, COLLECTION = "acme.example", "csam"
LOG_ID = f"{ORG}/{COLLECTION}"
NOW = 1_780_000_000
AUTHORITY = "node.example:8470"

# Characters that look like digits, letters or separators but are not ASCII ones, and
# control characters that terminals, HTTP or line splitting treat specially.
TRICKS = (
    "\u00b2\u00b3\u00b9\u2070\u2074\u2079"  # superscript digits
    "\u0660\u0661\u0669\u06f0\u06f9"  # Arabic-Indic and extended Arabic-Indic digits
    "\uff10\uff19\uff41\uff46\uff21\uff0b\uff0f\uff1a"  # fullwidth 0 9 a f A + / :
    "\u0000\r\n\t\x0b\x0c\x1b\x7f\x85\xa0\u2028\u2029\u200b\ufeff\u2014\u212a\u0131"
)
tricky_text = st.text(alphabet=st.sampled_from("abcdef0123456789+/=.-_:; \"'()[]{}," + TRICKS), max_size=120)
any_text = st.one_of(st.text(max_size=200), tricky_text)
ESC_SEQUENCES = ("\x1b[31m", "\x1b]0;title\x07", "\x1b[2J", "\r\n", "\x00")


def only_ours(call, *allowed: type[BaseException]):  # type: ignore[no-untyped-def]
    """Run ``call()``; return its result, or None when it raised one of ours."""
    try:
        return call()
    except allowed or (HashfedError,):
        return None


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with one to three bytes flipped, inserted or deleted."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("flip", "insert", "delete")))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4) | st.sampled_from([t.encode() for t in TRICKS]))
        elif data:
            del data[at]
    return bytes(data)


# -- batches -----------------------------------------------------------------------------------

entries = st.lists(
    st.builds(
        lambda kind, t, n, labels: (
            Entry.add(t, f"{n:0{HASH_TYPES[t].hex_digits}x}", labels)
            if kind == 0
            else Entry.remove(t, f"{n:0{HASH_TYPES[t].hex_digits}x}")
            if kind == 1
            else Entry.opine(t, f"{n:0{HASH_TYPES[t].hex_digits}x}", "false_positive")
        ),
        st.integers(0, 2),
        st.sampled_from(sorted(HASH_TYPES)),
        st.integers(0, 2**128),
        st.lists(st.sampled_from(["a", "ncmec:a1", "x.y/z", "9"]), max_size=3),
    ),
    min_size=1,
    max_size=5,
)
VALID_BATCH = encode_batch(
    org=ORG, collection=COLLECTION, index=3, created="2026-11-26T02:19:41Z", entries=[Entry.add("md5", "0" * 32, ["a"])]
)


def _check_batch(data: bytes) -> None:
    batch = only_ours(lambda: decode_batch(data, org=ORG, collection=COLLECTION, index=3))
    if batch is not None:
        again = encode_batch(
            org=batch.org, collection=batch.collection, index=batch.index, created=batch.created, entries=batch.entries
        )
        assert again == data
    index = only_ours(lambda: peek_index(data))
    if index is not None:
        assert type(index) is int and index >= 0


@FUZZ
@given(st.binary(max_size=400))
@example(b"[" * 100_000)  # deep nesting
@example(b'{"index":' + b"9" * 5000 + b"}")  # past int()'s digit limit
@example(b'{"index":1e999}')
@example(b'{"index":-0}')
@example(b'{"index":true}')
@example(b"\xff\xfe{}")
@example(b'{"index":0' + b" " * (4 * 1024 * 1024) + b"}")  # past the 4 MiB cap
def test_batch_random_bytes(data: bytes) -> None:
    _check_batch(data)


@FUZZ
@given(mutated(VALID_BATCH))
def test_batch_mutations(data: bytes) -> None:
    _check_batch(data)


@FEW
@given(entries, st.integers(0, 2**53 - 1), st.data())
def test_batch_round_trip_and_mutations(batch_entries: list[Entry], index: int, data: st.DataObject) -> None:
    valid = encode_batch(
        org=ORG, collection=COLLECTION, index=index, created="2026-11-26T02:19:41Z", entries=batch_entries
    )
    assert decode_batch(valid, org=ORG, collection=COLLECTION, index=index).data == valid
    assert peek_index(valid) == index
    bad = data.draw(mutated(valid))
    batch = only_ours(lambda: decode_batch(bad, org=ORG, collection=COLLECTION, index=index))
    if batch is not None:  # a mutation that is still a valid batch is still canonical
        assert entries_json(batch.entries) in bad.decode("ascii")
    only_ours(lambda: peek_index(bad))


@FEW
@given(st.recursive(st.none() | st.booleans() | st.integers() | tricky_text, lambda c: st.lists(c) | st.dictionaries(tricky_text, c), max_leaves=20))
def test_decode_entries_arbitrary_json(objs: object) -> None:
    only_ours(lambda: decode_entries(objs))
    only_ours(lambda: decode_entries([objs]))
    only_ours(lambda: decode_entries([{"op": "add", "type": "md5", "value": "0" * 32, "labels": objs}]))


# -- hash values and entries ---------------------------------------------------------------------


@FUZZ
@given(st.sampled_from(sorted(HASH_TYPES)) | any_text, any_text, st.integers(0, 2**300))
def test_normalise(type_: str, junk: str, n: int) -> None:
    for value in (junk, f"{n:x}", f" {n:X}\t", junk + f"{n:x}"):
        result = only_ours(lambda: normalise(type_, value))
        if result is not None:
            assert result.isascii() and result == result.lower()
            assert len(result) == HASH_TYPES[type_].hex_digits
            assert normalise(type_, result) == result
            assert result in value.lower()


@pytest.mark.parametrize(
    "value",
    [
        "\u00b9" + "0" * 31,  # superscript one
        "\u0661" + "0" * 31,  # Arabic-Indic one
        "\uff41" + "0" * 31,  # fullwidth a
        "\u212a" + "0" * 31,  # Kelvin sign: lower-cases to ASCII k
        "0" * 31 + "\u0131",  # dotless i
        "0" * 32 + "\x00",
        "0" * 16 + "\u200b" + "0" * 16,  # zero-width space inside
        "0" * 32 + "\x1b[31m",
    ],
    ids=["superscript", "arabic-indic", "fullwidth", "kelvin", "dotless-i", "nul", "zero-width", "esc"],
)
def test_normalise_refuses_lookalikes(value: str) -> None:
    with pytest.raises(ProtocolError):
        normalise("md5", value)


@FUZZ
@given(any_text, any_text, st.lists(any_text, max_size=20))
def test_entry_constructors(type_: str, value: str, labels: list[str]) -> None:
    only_ours(lambda: Entry.add(type_, value, labels))
    only_ours(lambda: Entry.remove(type_, value))
    only_ours(lambda: Entry.opine(type_, value, labels[0] if labels else value))


# -- signed notes and checkpoints ----------------------------------------------------------------

VALID_CHECKPOINT = sign_checkpoint(Checkpoint(LOG_ID, 12, bytes(range(32))), [ACME])


def _check_note(data: bytes) -> None:
    note = only_ours(lambda: parse_note(data))
    if note is not None:
        assert (note.text + "\n" + "".join(s.line() for s in note.signatures)).encode("utf-8") == data
        checkpoint = only_ours(lambda: parse_checkpoint_body(note.text))
        if checkpoint is not None:
            assert checkpoint.body() == note.text
    signed = only_ours(lambda: verify_checkpoint(data, log_id=LOG_ID, verifiers=[ACME.verifier()]))
    if signed is not None:
        assert data == VALID_CHECKPOINT


@FUZZ
@given(st.binary(max_size=300))
@example(b"a\n\n\xe2\x80\x94 x " + b"A" * 200_000 + b"\n")  # past the size cap
@example(VALID_CHECKPOINT.replace(b"\n\n", b"\r\n\r\n"))
@example(VALID_CHECKPOINT.replace(b"12\n", b"\xd9\xa1\xd9\xa2\n"))  # Arabic-Indic 12
@example(VALID_CHECKPOINT.replace(b"12\n", b"\xef\xbc\x91\xef\xbc\x92\n"))  # fullwidth 12
@example(VALID_CHECKPOINT.replace(b"12\n", b"\xc2\xb9\xc2\xb2\n"))  # superscript 12
@example(VALID_CHECKPOINT.replace(b"12\n", b"9" * 19 + b"\n"))  # past 2**63 - 1
def test_note_random_bytes(data: bytes) -> None:
    _check_note(data)


@FUZZ
@given(mutated(VALID_CHECKPOINT))
def test_note_mutations(data: bytes) -> None:
    _check_note(data)


@FUZZ
@given(any_text)
@example("acme.example/csam\n\u0661\u0662\n" + "A" * 43 + "=\n")
@example("acme.example/csam\n12\n" + "A" * 43 + "=\n\n")
def test_checkpoint_body_text(text: str) -> None:
    for candidate in (text, f"{LOG_ID}\n{text}\n", f"{LOG_ID}\n12\n{text}\n"):
        checkpoint = only_ours(lambda: parse_checkpoint_body(candidate))
        if checkpoint is not None:
            assert checkpoint.body() == candidate


# -- keys ----------------------------------------------------------------------------------------

VALID_VKEY = ACME.vkey()
VALID_SKEY = format_signer_key(ACME.name, ACME._seed(), ACME.public_key)


@FUZZ
@given(any_text | mutated(VALID_VKEY.encode()).map(lambda b: b.decode("utf-8", "replace")))
@example(VALID_VKEY.replace("acme", "\uff41cme"))
@example(VALID_VKEY + "\n")
def test_vkey(text: str) -> None:
    parsed = only_ours(lambda: parse_vkey(text))
    if parsed is not None:
        assert format_vkey(*parsed) == text
        assert Verifier.from_vkey(text).vkey() == text
    only_ours(lambda: Verifier.from_vkey(text))


@FUZZ
@given(any_text | mutated(VALID_SKEY.encode()).map(lambda b: b.decode("utf-8", "replace")))
def test_signer_key(text: str) -> None:
    parsed = only_ours(lambda: parse_signer_key(text))
    if parsed is not None:
        name, claimed, seed = parsed
        encoded = base64.b64encode(bytes([1]) + seed).decode("ascii")
        assert f"PRIVATE+KEY+{name}+{claimed.hex()}+{encoded}" == text


# -- structured fields and request signatures ----------------------------------------------------


@FUZZ
@given(any_text | st.text(alphabet=st.sampled_from('abc*-_.=;,:() "\\?10%@'), max_size=80))
@example('a=(' * 2000)
@example('a=:' + "A" * 5000 + ':')
@example('a=%"%ff"')
@example("a=" + "9" * 16)
@example("a=-")
@example("a=1.1234")
def test_structured_field_dictionary(text: str) -> None:
    only_ours(lambda: sfv.parse_dictionary(text, "Test"))


TARGET = RequestTarget("POST", AUTHORITY, "/v1/logs/acme.example/csam/batches", "")
BODY = b'{"x":1}\n'
SIGNED = sign_request(ACME, TARGET, BODY, created=NOW, nonce="A" * 22)


def _lookup(key_id: str) -> Verifier | None:
    return ACME.verifier() if key_id == ACME.key_id else None


def _verify(headers: dict[str, str], body: bytes | None = BODY, target: RequestTarget = TARGET):  # type: ignore[no-untyped-def]
    return only_ours(lambda: verify_request(target, headers, body, lookup_key=_lookup, now=NOW))


@FUZZ
@given(st.sampled_from(sorted(SIGNED)), st.data())
def test_verify_request_mutated_headers(name: str, data: st.DataObject) -> None:
    bad = data.draw(mutated(SIGNED[name].encode())).decode("latin-1")
    headers = {**SIGNED, name: bad}
    if _verify(headers) is not None:
        # Still valid: only an equivalent spelling of the same field may pass.
        assert sfv.parse_dictionary(bad, name) == sfv.parse_dictionary(SIGNED[name], name)


@FUZZ
@given(st.dictionaries(st.sampled_from(["Signature-Input", "signature", "Content-Digest", "X"]), any_text, max_size=4))
@example({"Signature-Input": "hashfed=" + "(" * 1000, "Signature": "hashfed=:AA==:"})
@example({**SIGNED, "Signature-Input": SIGNED["Signature-Input"] + ", x=()" * 100_000})  # past the cap
@example({"Signature-Input": SIGNED["Signature-Input"] + ESC_SEQUENCES[0], "Signature": SIGNED["Signature"]})
@example({**SIGNED, "Signature-Input": SIGNED["Signature-Input"].replace("created=", "created=\u0661")})
def test_verify_request_arbitrary_headers(headers: dict[str, str]) -> None:
    assert _verify(headers) is None
    assert _verify(headers, body=None) is None


@FUZZ
@given(any_text, any_text, st.sampled_from(["http", "https", "HTTP", "ftp"]))
@example("[::1]:0", "/", "http")
@example("[" + ":" * 5000 + "]", "/", "http")
@example("h:\u0661\u0662", "/", "http")
@example("h:99999999999999999999", "/", "https")
def test_request_target_and_authority(host: str, raw_target: str, scheme: str) -> None:
    authority = only_ours(lambda: normalise_authority(host, scheme))
    if authority is not None:
        assert normalise_authority(authority, scheme) == authority
        target = only_ours(lambda: RequestTarget.from_raw_target("GET", authority, raw_target))
        if target is not None:
            assert _verify(SIGNED, body=None, target=target) is None  # wrong components


@FUZZ
@given(any_text | st.just(SIGNED["Content-Digest"]), st.binary(max_size=20))
def test_content_digest(header: str, body: bytes) -> None:
    only_ours(lambda: check_content_digest(header, body))


# -- the node's config file ----------------------------------------------------------------------



@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config") / "config.toml"

toml_values = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["inf", "-inf", "nan", "true", "0", "1.5", "[]", "{}", '""', "1979-05-27"]),
    any_text.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    any_text.map(lambda s: "'" + s + "'"),
)
toml_keys = st.sampled_from(
    ["org", "default_collection", "server.port", "server.public_urls", "server.host", "server.local_token",
     "limits.max_body_bytes", "limits.header_timeout_s", "pull.interval_s", "pull.page_batches", "x"]
)


def _load(path: Path, text: str):  # type: ignore[no-untyped-def]
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return only_ours(lambda: load_config(path), ConfigError)


@FUZZ
@given(st.lists(st.tuples(toml_keys, toml_values), max_size=5), any_text)
def test_config_from_toml_text(config_path: Path, pairs: list[tuple[str, str]], junk: str) -> None:
    body = 'org = "acme.example"\n' + "\n".join(f"{k} = {v}" for k, v in pairs)
    _load(config_path, body)
    _load(config_path, body + "\n" + junk)
    _load(config_path, junk)


# -- regressions: bugs the fuzzing found -----------------------------------------------------------


def test_regression_config_deeply_nested_toml_is_a_config_error(config_path: Path) -> None:
    """Found by fuzzing: tomllib's recursion escaped ``load_config`` as RecursionError."""
    config_path.write_text('org = "acme.example"\nx = ' + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(config_path)


@pytest.mark.parametrize("setting", ["limits.header_timeout_s", "limits.body_timeout_s", "pull.timeout_s", "pull.interval_s"])
def test_regression_config_refuses_infinite_durations(config_path: Path, setting: str) -> None:
    section, _, key = setting.partition(".")
    config_path.write_text(f'org = "acme.example"\n[{section}]\n{key} = inf\n', encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(config_path)


BAD_BASE_URLS = [
    ("nul-in-host", "http://h\x00:80"),
    ("fullwidth-host", "http://\uff48:80"),
    ("percent-in-host", "http://h%00:80"),
    ("port-zero", "http://h:0"),
]


@pytest.mark.parametrize("url", [u for _, u in BAD_BASE_URLS], ids=[i for i, _ in BAD_BASE_URLS])
def test_regression_base_url_is_plain(url: str) -> None:
    """Found by fuzzing: a peer URL or public URL whose authority RFC 9421 ``@authority``
    could not match."""
    with pytest.raises(ConfigError):
        check_base_url(url)


@pytest.mark.parametrize(
    "host", ["h\\u0000", "\uff48", "a b", "host:80"], ids=["nul", "fullwidth", "space", "port"]
)
def test_regression_listen_host_is_a_name_or_an_address(config_path: Path, host: str) -> None:
    config_path.write_text(f'org = "acme.example"\n[server]\nhost = "{host}"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="server.host"):
        load_config(config_path)
