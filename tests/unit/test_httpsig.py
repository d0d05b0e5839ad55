"""Tests for protocol.httpsig: the RFC 9421 request-signature profile and RFC 9530 digests.

Three references: the RFC's own Appendix B.2.6 vector, the PyPI library
``http-message-signatures`` (in both directions), and named rejection tables, where each bad
request differs from a good one by one defect and, where the defect is in what is signed, is
still validly signed, so that the one defect is what gets it rejected.
"""

from __future__ import annotations

import ast
import base64
import datetime
import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_pem_public_key,
)
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from hashfed.keys.ed25519 import Signer, Verifier
from hashfed.keys.errors import ClockSkewError, ProtocolError, VerificationError
from hashfed.protocol import _sfv as sfv
from hashfed.protocol import httpsig
from hashfed.protocol.httpsig import (
    BASE_COMPONENTS,
    BODY_COMPONENTS,
    LABEL,
    NONCE_MIN_BYTES,
    TAG,
    RequestTarget,
    SignatureParams,
    VerifiedRequest,
    check_content_digest,
    content_digest,
    new_nonce,
    normalise_authority,
    sign_request,
    signature_base,
    verify_request,
)

# Fixed keys, times and requests --------------------------------------------------------------

ORG = "acme.example"
SEED = bytes(range(32))
SIGNER = Signer.from_seed(ORG, SEED)
VERIFIER = SIGNER.verifier()
KEY_ID = SIGNER.key_id
OTHER = Signer.from_seed("other.example", bytes(range(1, 33)))
SAME_NAME_OTHER_KEY = Signer.from_seed(ORG, bytes(range(2, 34)))

CREATED = 1_700_000_000  # in the past, so the library's "not in the future" check passes
NOW = CREATED + 10
NONCE = new_nonce(bytes(range(16)))

LOG_PATH = "/v1/logs/acme.example/csam/batches"
GET_TARGET = RequestTarget("GET", "node.example:8443", LOG_PATH, "start=0&end=10&from=a%2Fb")
POST_TARGET = RequestTarget("POST", "node.example:8443", LOG_PATH, "")
BODY = b'{"collection":"csam","created":"2026-11-26T02:19:41Z","entries":[],"index":0}\n'


def lookup(key_id: str) -> Verifier | None:
    """The trust store of the tests: one key."""
    return VERIFIER if key_id == KEY_ID else None


def flip(text: str, index: int, mask: int) -> str:
    """``text`` with the byte at ``index`` XORed with ``mask`` (text as Latin-1 bytes)."""
    raw = bytearray(text.encode("latin-1"))
    raw[index % len(raw)] ^= mask
    return raw.decode("latin-1")


# 1. RFC 9421 Appendix B.2.6 ------------------------------------------------------------------

# RFC 9421 Appendix B.1.4, "Example Ed25519 Test Key" (test-key-ed25519), PEM bodies.
RFC_ED25519_PRIVATE_PEM = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
    b"-----END PRIVATE KEY-----\n"
)
RFC_ED25519_PUBLIC_PEM = (
    b"-----BEGIN PUBLIC KEY-----\n"
    b"MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"
    b"-----END PUBLIC KEY-----\n"
)
# RFC 9421 Appendix B.2, the test-request: request line and the header fields B.2.6 covers.
RFC_REQUEST_TARGET = "/foo?param=Value&Pet=dog"
RFC_HOST = "example.com"
RFC_FIELDS = {
    "date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "content-type": "application/json",
    "content-length": "18",
}
# RFC 9421 Appendix B.2.6, "Signing a Request Using ed25519": the Signature-Input and
# Signature fields (label sig-b26) and the signature base, RFC 8792 line wrapping undone.
RFC_B26_SIGNATURE_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
RFC_B26_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
)
RFC_B26_BASE = (
    b'"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    b'"@method": POST\n'
    b'"@path": /foo\n'
    b'"@authority": example.com\n'
    b'"content-type": application/json\n'
    b'"content-length": 18\n'
    b'"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length")'
    b';created=1618884473;keyid="test-key-ed25519"'
)


def _rfc_b26_base() -> bytes:
    """Build the B.2.6 base with our code, from the RFC's request and Signature-Input."""
    member = sfv.parse_dictionary(RFC_B26_SIGNATURE_INPUT, "Signature-Input")["sig-b26"]
    assert isinstance(member, sfv.InnerList)
    components = [str(item.value) for item in member.items]
    params_text = sfv.serialise_params_line(components, member.params)  # type: ignore[arg-type]
    target = RequestTarget.from_raw_target("POST", normalise_authority(RFC_HOST, "https"), RFC_REQUEST_TARGET)
    values = target.component_values() | RFC_FIELDS
    return signature_base(components, values, params_text)


def _rfc_b26_signature() -> bytes:
    member = sfv.parse_dictionary(RFC_B26_SIGNATURE, "Signature")["sig-b26"]
    assert isinstance(member, sfv.Item) and isinstance(member.value, bytes)
    return member.value


def test_rfc9421_b26_signature_base_is_byte_identical() -> None:
    assert _rfc_b26_base() == RFC_B26_BASE


def test_rfc9421_b26_signature_verifies_with_the_rfc_key() -> None:
    public = load_pem_public_key(RFC_ED25519_PUBLIC_PEM)
    assert isinstance(public, Ed25519PublicKey)
    verifier = Verifier("test-key-ed25519", public.public_bytes_raw())
    verifier.verify(_rfc_b26_base(), _rfc_b26_signature())
    with pytest.raises(VerificationError):
        verifier.verify(flip(RFC_B26_BASE.decode(), 3, 1).encode(), _rfc_b26_signature())


def test_rfc9421_b26_signing_reproduces_the_rfc_signature() -> None:
    private = load_pem_private_key(RFC_ED25519_PRIVATE_PEM, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    assert Signer("test-key-ed25519", private).sign(_rfc_b26_base()) == _rfc_b26_signature()


# 2. Cross-implementation with http-message-signatures ----------------------------------------

CROSS_CASES = [
    pytest.param("GET", "https://node.example:8443", GET_TARGET.path, GET_TARGET.query, None, id="get-query"),
    pytest.param("GET", "https://node.example:443", "/v1/logs", "", None, id="get-empty-query-default-port"),
    pytest.param("GET", "https://node.example", "/v1/a%2Fb", "q=%2F%20x&r=", None, id="get-percent-encoded"),
    pytest.param("POST", "http://127.0.0.1:8080", POST_TARGET.path, "", BODY, id="post-body"),
    pytest.param("POST", "https://node.example:8443", POST_TARGET.path, "", b"", id="post-empty-body"),
]


def _prepared(
    method: str, origin: str, path: str, query: str, body: bytes | None
) -> requests.PreparedRequest:
    url = f"{origin}{path}?{query}" if query else f"{origin}{path}"
    prepared = requests.Request(method, url, data=body).prepare()
    assert prepared.url == url  # requests kept the target as given, so both sides see the same
    return prepared


def _our_target(method: str, origin: str, path: str, query: str) -> RequestTarget:
    scheme, _, host = origin.partition("://")
    return RequestTarget(method, normalise_authority(host, scheme), path, query)


def _their_verifier() -> HTTPMessageVerifier:
    resolver = MappingKeyResolver(
        public_keys={KEY_ID: Ed25519PublicKey.from_public_bytes(VERIFIER.public_key)}, private_keys={}
    )
    return HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)


def _their_signer() -> HTTPMessageSigner:
    private_key = Ed25519PrivateKey.from_private_bytes(SEED)
    resolver = MappingKeyResolver(public_keys={}, private_keys={KEY_ID: private_key})
    return HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=resolver)


@pytest.mark.parametrize(("method", "origin", "path", "query", "body"), CROSS_CASES)
def test_signed_by_us_verifies_with_theirs(
    method: str, origin: str, path: str, query: str, body: bytes | None
) -> None:
    prepared = _prepared(method, origin, path, query, body)
    target = _our_target(method, origin, path, query)
    headers = sign_request(SIGNER, target, body, created=CREATED, nonce=NONCE)
    prepared.headers.update(headers)
    components = BASE_COMPONENTS if body is None else BODY_COMPONENTS
    [result] = _their_verifier().verify(
        prepared, max_age=None, expect_tag=TAG, require_components=components, body=body
    )
    assert result.label == LABEL
    assert result.parameters == {
        "created": CREATED, "nonce": NONCE, "keyid": KEY_ID, "alg": "ed25519", "tag": TAG
    }
    assert list(result.covered_components)[:-1] == [f'"{name}"' for name in components]

    prepared.headers["Signature"] = flip(prepared.headers["Signature"], 20, 1)
    with pytest.raises(InvalidSignature):
        _their_verifier().verify(prepared, max_age=None, expect_tag=TAG, body=body)


@pytest.mark.parametrize(("method", "origin", "path", "query", "body"), CROSS_CASES)
def test_signed_by_them_verifies_with_ours(
    method: str, origin: str, path: str, query: str, body: bytes | None
) -> None:
    prepared = _prepared(method, origin, path, query, body)
    _their_signer().sign(
        prepared,
        key_id=KEY_ID,
        created=datetime.datetime.fromtimestamp(CREATED, tz=datetime.UTC),
        nonce=NONCE,
        label=LABEL,
        tag=TAG,
        covered_component_ids=BASE_COMPONENTS if body is None else BODY_COMPONENTS,
        body=body,
    )
    target = _our_target(method, origin, path, query)
    verified = verify_request(target, prepared.headers, body, lookup_key=lookup, now=NOW)
    assert verified.key_id == KEY_ID and verified.org == ORG
    # They order the parameters differently from us; we verify what they sent regardless.
    ours = sign_request(SIGNER, target, body, created=CREATED, nonce=NONCE)
    assert prepared.headers["Signature-Input"] != ours["Signature-Input"]
    assert verified.params == SignatureParams(
        BASE_COMPONENTS if body is None else BODY_COMPONENTS, CREATED, NONCE, KEY_ID, "ed25519", TAG
    )


def test_content_digest_agrees_with_theirs_and_rfc9530() -> None:
    # RFC 9530 Appendix B: the sha-256 digest of the content {"hello": "world"}.
    assert content_digest(b'{"hello": "world"}') == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    for body in (b"", BODY, bytes(range(256))):
        assert content_digest(body) == ContentDigest.create(body)


# 3. verify_request: the happy path, then every rejection -------------------------------------

GOOD_PARAMS: tuple[tuple[str, str], ...] = (
    ("created", str(CREATED)),
    ("nonce", f'"{NONCE}"'),
    ("keyid", f'"{KEY_ID}"'),
    ("alg", '"ed25519"'),
    ("tag", '"hashfed/1"'),
)
AUTO = "auto"
OTHER_MEMBER = 'other=("@method");keyid="x"'  # another label's signature, which we ignore


@dataclass(frozen=True)
class Request:
    """One request as the server sees it, with the arguments of verify_request."""

    target: RequestTarget
    headers: Mapping[str, str]
    body: bytes | None
    now: int = NOW
    lookup: Callable[[str], Verifier | None] = lookup

    def verify(self) -> VerifiedRequest:
        return verify_request(self.target, self.headers, self.body, lookup_key=self.lookup, now=self.now)


def signed(
    body: bytes | None = BODY,
    *,
    target: RequestTarget | None = None,
    components: tuple[str, ...] | None = None,
    params: tuple[tuple[str, str], ...] = GOOD_PARAMS,
    digest: str | None = AUTO,
    signer: Signer = SIGNER,
    signed_target: RequestTarget | None = None,
    label: str = LABEL,
) -> Request:
    """A request signed over exactly what its Signature-Input says, with ``params`` verbatim.

    Every knob makes one defect; the signature is still valid over the request as sent
    (or over ``signed_target``, to sign one request and send another).
    """
    target = target or (GET_TARGET if body is None else POST_TARGET)
    components = components or (BASE_COMPONENTS if body is None else BODY_COMPONENTS)
    if digest == AUTO:
        digest = None if body is None else content_digest(body)
    params_text = "(" + " ".join(f'"{name}"' for name in components) + ")"
    params_text += "".join(f";{key}={value}" for key, value in params)
    values = (signed_target or target).component_values() | {"date": "Tue, 20 Apr 2021 02:07:55 GMT"}
    if digest is not None:
        values["content-digest"] = digest
    signature = signer.sign(signature_base(components, values, params_text))
    headers = {
        "Signature-Input": f"{label}={params_text}",
        "Signature": f"{label}=:{base64.b64encode(signature).decode()}:",
        "Date": values["date"],
    }
    if digest is not None:
        headers["Content-Digest"] = digest
    return Request(target, headers, body)


def with_param(name: str, value: str | None) -> tuple[tuple[str, str], ...]:
    """GOOD_PARAMS with ``name`` set to the serialised ``value``, or dropped when None."""
    return tuple((k, value if k == name else v) for k, v in GOOD_PARAMS if k != name or value is not None)


def with_headers(request: Request, **changes: str | None) -> Request:
    """``request`` with headers replaced (``Signature_Input`` spells Signature-Input) or dropped."""
    headers = dict(request.headers)
    for key, value in changes.items():
        name = key.replace("_", "-")
        headers.pop(name, None)
        if value is not None:
            headers[name] = value
    return replace(request, headers=headers)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_our_own_request_verifies() -> None:
    for body, target in ((None, GET_TARGET), (BODY, POST_TARGET), (b"", POST_TARGET)):
        headers = sign_request(SIGNER, target, body, created=CREATED, nonce=NONCE)
        assert ("Content-Digest" in headers) == (body is not None)
        verified = verify_request(target, headers, body, lookup_key=lookup, now=NOW)
        assert verified == VerifiedRequest(
            KEY_ID,
            ORG,
            VERIFIER,
            SignatureParams(
                BASE_COMPONENTS if body is None else BODY_COMPONENTS, CREATED, NONCE, KEY_ID, "ed25519", TAG
            ),
        )


def test_sign_request_headers_are_exactly_protocol_section_6() -> None:
    headers = sign_request(SIGNER, POST_TARGET, BODY, created=CREATED, nonce=NONCE)
    assert headers["Signature-Input"] == (
        'hashfed=("@method" "@authority" "@path" "@query" "content-digest")'
        f';created={CREATED};nonce="{NONCE}";keyid="{KEY_ID}";alg="ed25519";tag="hashfed/1"'
    )
    assert headers["Content-Digest"] == f"sha-256=:{_b64(hashlib.sha256(BODY).digest())}:"
    assert list(headers) == ["Signature-Input", "Signature", "Content-Digest"]


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(signed(), id="as-signed"),
        pytest.param(signed(params=tuple(reversed(GOOD_PARAMS))), id="params-reversed"),
        pytest.param(signed(components=tuple(reversed(BODY_COMPONENTS))), id="components-reversed"),
        pytest.param(replace(signed(), now=CREATED + 300), id="created-300s-ago"),
        pytest.param(replace(signed(), now=CREATED - 300), id="created-300s-ahead"),
        pytest.param(
            with_headers(signed(), Signature_Input=f'{OTHER_MEMBER}, {signed().headers["Signature-Input"]}'),
            id="other-labels-ignored",
        ),
        pytest.param(
            signed(digest=f"{content_digest(BODY)}, md5=:AAAA:"), id="unknown-digest-algorithm-ignored"
        ),
        pytest.param(
            replace(signed(), headers={k.upper(): v for k, v in signed().headers.items()}),
            id="header-names-any-case",
        ),
    ],
)
def test_accepted_variants(request_: Request) -> None:
    assert request_.verify().key_id == KEY_ID


def _two_lines(name: str, first: str, second: str, request: Request) -> Request:
    """``request`` whose header ``name`` arrives as two field lines (two dict keys by case)."""
    headers = {k: v for k, v in request.headers.items() if k.lower() != name.lower()}
    headers[name] = first
    headers[name.lower()] = second
    return replace(request, headers=headers)


def test_field_lines_are_combined() -> None:
    good = signed()
    split = _two_lines("Signature-Input", OTHER_MEMBER, good.headers["Signature-Input"], good)
    assert split.verify().key_id == KEY_ID


_SIG_INPUT = signed().headers["Signature-Input"]
_SIG = signed().headers["Signature"]
_SHA512_ONLY = f"sha-512=:{_b64(hashlib.sha512(BODY).digest())}:"
_EMPTY_DIGEST = content_digest(b"")
_OTHER_AUTHORITY = replace(POST_TARGET, authority="other.example:8443")
_OTHER_KEYID = with_param("keyid", f'"{OTHER.key_id}"')


def sig_input(text: str | None) -> Request:
    """A good request whose Signature-Input is replaced by ``text`` (dropped when None)."""
    return with_headers(signed(), Signature_Input=text)


def sig(text: str | None) -> Request:
    """A good request whose Signature is replaced by ``text`` (dropped when None)."""
    return with_headers(signed(), Signature=text)


def param(name: str, value: str | None) -> Request:
    """A request validly signed with parameter ``name`` set to ``value`` (or dropped)."""
    return signed(params=with_param(name, value))


PE, VE = ProtocolError, VerificationError  # short names for the table below
_BAD_REQUESTS: list[tuple[str, Callable[[], Request], type[Exception]]] = [
    # The fields: missing, malformed, or without a hashfed member.
    ("no-signature-input", lambda: sig_input(None), VE),
    ("no-signature", lambda: sig(None), VE),
    ("no-hashfed-input-member", lambda: sig_input(_SIG_INPUT.replace("hashfed=", "other=")), VE),
    ("no-hashfed-signature-member", lambda: sig(_SIG.replace("hashfed=", "other=")), VE),
    ("input-unterminated", lambda: sig_input(_SIG_INPUT[:-1]), PE),
    ("input-trailing-comma", lambda: sig_input(_SIG_INPUT + ","), PE),
    ("input-upper-case-label", lambda: sig_input(_SIG_INPUT.replace("hashfed=", "Hashfed=")), PE),
    ("input-non-ascii", lambda: sig_input(_SIG_INPUT + ';x="\u00e9"'), PE),
    ("input-duplicate-label", lambda: sig_input(f"{_SIG_INPUT}, {_SIG_INPUT}"), PE),
    ("input-label-on-two-lines", lambda: _two_lines("Signature-Input", _SIG_INPUT, _SIG_INPUT, signed()), PE),
    ("input-not-inner-list", lambda: sig_input('hashfed="@method"'), PE),
    ("signature-unterminated", lambda: sig(_SIG[:-1]), PE),
    ("signature-unpadded", lambda: sig(_SIG.replace("==:", ":")), PE),
    ("signature-not-bytes", lambda: sig(f'hashfed="{_SIG[9:-1]}"'), PE),
    ("signature-32-bytes", lambda: sig(f"hashfed=:{_b64(bytes(32))}:"), PE),
    ("signature-with-parameter", lambda: sig(_SIG + ";alg=x"), PE),
    # The covered components.
    ("no-@query", lambda: signed(components=BODY_COMPONENTS[:3] + BODY_COMPONENTS[4:]), PE),
    ("extra-component", lambda: signed(components=BODY_COMPONENTS + ("date",)), PE),
    ("repeated-component", lambda: sig_input(_SIG_INPUT.replace('"@path"', '"@path" "@path"')), PE),
    ("component-parameter", lambda: sig_input(_SIG_INPUT.replace('"@query"', '"@query";req')), PE),
    ("get-covers-digest", lambda: signed(None, components=BODY_COMPONENTS, digest=_EMPTY_DIGEST), PE),
    ("post-without-digest", lambda: signed(components=BASE_COMPONENTS), PE),
    # The signature parameters.
    *[(f"missing-{name}", partial(param, name, None), PE) for name, _ in GOOD_PARAMS],
    ("duplicate-created", lambda: signed(params=GOOD_PARAMS + (("created", "1"),)), PE),
    ("unknown-expires", lambda: signed(params=GOOD_PARAMS + (("expires", str(NOW)),)), PE),
    ("alg-is-token", lambda: param("alg", "ed25519"), PE),
    ("alg-not-ed25519", lambda: param("alg", '"rsa-pss-sha512"'), PE),
    ("tag-wrong", lambda: param("tag", '"hashfed/2"'), PE),
    ("keyid-not-string", lambda: param("keyid", "?1"), PE),
    ("created-string", lambda: param("created", f'"{CREATED}"'), PE),
    ("created-decimal", lambda: param("created", f"{CREATED}.5"), PE),
    ("created-boolean", lambda: param("created", "?1"), PE),
    ("nonce-is-token", lambda: param("nonce", NONCE), PE),
    ("nonce-padded", lambda: param("nonce", f'"{NONCE}=="'), PE),
    ("nonce-not-url-alphabet", lambda: param("nonce", f'"{_b64(bytes([251]) * 16)}"'), PE),
    ("nonce-non-canonical", lambda: param("nonce", f'"{new_nonce(bytes(16))[:-1]}B"'), PE),
    ("nonce-past-64-chars", lambda: param("nonce", f'"{new_nonce(bytes(49))}"'), PE),
    ("nonce-15-bytes", lambda: param("nonce", f'"{httpsig._b64url(bytes(15))}"'), PE),
    # Time, key, digest and signature.
    ("created-301s-ago", lambda: replace(signed(), now=CREATED + 301), ClockSkewError),
    ("created-301s-ahead", lambda: replace(signed(), now=CREATED - 301), ClockSkewError),
    ("unknown-keyid", lambda: signed(params=_OTHER_KEYID, signer=OTHER), VE),
    ("lookup-returns-other-key", lambda: replace(signed(), lookup=lambda _: OTHER.verifier()), VE),
    ("digest-missing", lambda: with_headers(signed(), Content_Digest=None), VE),
    ("digest-wrong", lambda: signed(digest=content_digest(b"other")), VE),
    ("digest-no-sha-256", lambda: signed(digest=_SHA512_ONLY), VE),
    ("digest-short", lambda: signed(digest="sha-256=:AAAA:"), PE),
    ("digest-malformed", lambda: signed(digest="sha-256=abc"), PE),
    ("body-not-the-signed-one", lambda: replace(signed(), body=b"other"), VE),
    ("signed-by-other-key", lambda: signed(signer=SAME_NAME_OTHER_KEY), VE),
    ("signed-other-method", lambda: signed(signed_target=replace(POST_TARGET, method="PUT")), VE),
    ("signed-other-authority", lambda: signed(signed_target=_OTHER_AUTHORITY), VE),
    ("signed-other-path", lambda: signed(None, signed_target=replace(GET_TARGET, path="/")), VE),
    ("signed-other-query", lambda: signed(None, signed_target=replace(GET_TARGET, query="")), VE),
]


@pytest.mark.parametrize(("make", "error"), [pytest.param(m, e, id=i) for i, m, e in _BAD_REQUESTS])
def test_bad_requests_are_rejected(make: Callable[[], Request], error: type[Exception]) -> None:
    request = make()  # built outside pytest.raises: only verify_request may raise
    with pytest.raises(error) as info:
        request.verify()
    assert type(info.value) is error


_TARGET_PARTS = ("method", "authority", "path", "query")
_BODY_PARTS = ("body", "content-digest")
_HEADER_NAMES = {
    "content-digest": "Content-Digest",
    "signature-input": "Signature-Input",
    "signature": "Signature",
}


@settings(max_examples=300)
@given(
    part=st.sampled_from(_TARGET_PARTS + _BODY_PARTS + ("signature-input", "signature")),
    with_body=st.booleans(),
    index=st.integers(min_value=0, max_value=10_000),
    mask=st.integers(min_value=1, max_value=255),
)
def test_any_flipped_byte_is_rejected(part: str, with_body: bool, index: int, mask: int) -> None:
    body = BODY if with_body or part in _BODY_PARTS else None
    target = replace(POST_TARGET if body is not None else GET_TARGET, query="a=1")
    headers = sign_request(SIGNER, target, body, created=CREATED, nonce=NONCE)
    with pytest.raises((ProtocolError, VerificationError)):
        # A flipped target value may already be refused by RequestTarget: also a rejection.
        if part in _TARGET_PARTS:
            target = replace(target, **{part: flip(getattr(target, part), index, mask)})
        elif part == "body":
            body = flip(BODY.decode("latin-1"), index, mask).encode("latin-1")
        else:
            headers[_HEADER_NAMES[part]] = flip(headers[_HEADER_NAMES[part]], index, mask)
        verify_request(target, headers, body, lookup_key=lookup, now=NOW)


@given(index=st.integers(min_value=0, max_value=63), mask=st.integers(min_value=1, max_value=255))
def test_any_flipped_signature_bit_is_a_verification_error(index: int, mask: int) -> None:
    headers = sign_request(SIGNER, GET_TARGET, None, created=CREATED, nonce=NONCE)
    signature = bytearray(base64.b64decode(headers["Signature"][len("hashfed=:") : -1]))
    signature[index] ^= mask
    headers["Signature"] = f"hashfed=:{_b64(bytes(signature))}:"
    with pytest.raises(VerificationError):
        verify_request(GET_TARGET, headers, None, lookup_key=lookup, now=NOW)


_PATH_CHARS = st.sampled_from("abcXYZ019-._~!$&'()*+,;=:@/") | st.sampled_from(["%2F", "%20", "%e2%82%ac"])


@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    port=st.one_of(st.none(), st.integers(min_value=1, max_value=65535)),
    path=st.lists(_PATH_CHARS, max_size=20).map(lambda chars: "/" + "".join(chars)),
    query=st.lists(_PATH_CHARS | st.just("?"), max_size=20).map("".join),
    body=st.one_of(st.none(), st.binary(max_size=200)),
    nonce_bytes=st.binary(min_size=NONCE_MIN_BYTES, max_size=40),
    created=st.integers(min_value=0, max_value=2**40),
)
def test_sign_verify_round_trip(
    method: str, port: int | None, path: str, query: str, body: bytes | None, nonce_bytes: bytes, created: int
) -> None:
    authority = normalise_authority("node.example" if port is None else f"node.example:{port}", "https")
    target = RequestTarget(method, authority, path, query)
    nonce = new_nonce(nonce_bytes)
    headers = sign_request(SIGNER, target, body, created=created, nonce=nonce)
    verified = verify_request(target, headers, body, lookup_key=lookup, now=created)
    assert verified.params.nonce == nonce
    assert base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4)) == nonce_bytes


def test_new_nonce_needs_16_bytes() -> None:
    assert len(new_nonce(bytes(16))) == 22 and "=" not in new_nonce(bytes(16))
    with pytest.raises(ProtocolError):
        new_nonce(bytes(15))


@pytest.mark.parametrize(
    ("created", "nonce"),
    [(CREATED, "short"), (CREATED, NONCE + "="), (True, NONCE), (10**15, NONCE)],
    ids=["nonce-short", "nonce-padded", "created-bool", "created-out-of-range"],
)
def test_sign_request_refuses_bad_parameters(created: int, nonce: str) -> None:
    with pytest.raises(ProtocolError):
        sign_request(SIGNER, GET_TARGET, None, created=created, nonce=nonce)


# 4. Content-Digest ---------------------------------------------------------------------------

_SHA256 = f"sha-256=:{_b64(hashlib.sha256(BODY).digest())}:"
_SHA512 = f"sha-512=:{_b64(hashlib.sha512(BODY).digest())}:"
_SHA512_OF_X = f"sha-512=:{_b64(hashlib.sha512(b'x').digest())}:"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(_SHA256, id="sha-256"),
        pytest.param(f"{_SHA512}, {_SHA256}", id="with-sha-512"),
        pytest.param(f"unixsum=:AAAA:, {_SHA256}", id="unknown-algorithm-first"),
        pytest.param(f"{_SHA256}, id-sha-256=?1", id="unknown-algorithm-after"),
        pytest.param(f"  {_SHA256}", id="leading-space"),
    ],
)
def test_good_content_digests(header: str) -> None:
    check_content_digest(header, BODY)


@pytest.mark.parametrize(
    ("header", "error"),
    [
        pytest.param(None, VerificationError, id="missing"),
        pytest.param("", VerificationError, id="empty"),
        pytest.param(content_digest(b"x"), VerificationError, id="sha-256-mismatch"),
        pytest.param(_SHA512, VerificationError, id="no-sha-256"),
        pytest.param(f"{_SHA512_OF_X}, {_SHA256}", VerificationError, id="sha-512-mismatch"),
        pytest.param("sha-256=:AAAA:", ProtocolError, id="wrong-length"),
        pytest.param(f"{_SHA256}, {_SHA256}", ProtocolError, id="duplicate"),
        pytest.param(_SHA256 + ";p=1", ProtocolError, id="parameter"),
        pytest.param('sha-256="' + _SHA256[9:-1] + '"', ProtocolError, id="string-not-bytes"),
        pytest.param(_SHA256 + ",", ProtocolError, id="trailing-comma"),
        pytest.param(_SHA256[:-1], ProtocolError, id="unterminated"),
        pytest.param("SHA-256=" + _SHA256[8:], ProtocolError, id="upper-case-key"),
        pytest.param("sha-256=:" + _SHA256[9:-2] + ":", ProtocolError, id="unpadded"),
    ],
)
def test_bad_content_digests(header: str | None, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        check_content_digest(header, BODY)
    assert type(info.value) is error


@given(body=st.binary(min_size=1, max_size=100), index=st.integers(min_value=0), mask=st.integers(1, 255))
def test_content_digest_rejects_any_flipped_body_byte(body: bytes, index: int, mask: int) -> None:
    header = content_digest(body)
    check_content_digest(header, body)
    flipped = bytearray(body)
    flipped[index % len(body)] ^= mask
    with pytest.raises(VerificationError):
        check_content_digest(header, bytes(flipped))


# 5. @authority, @path and @query -------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "scheme", "expected"),
    [
        pytest.param("example.com", "https", "example.com", id="plain"),
        pytest.param("Example.COM", "https", "example.com", id="lower-cased"),
        pytest.param("example.com:443", "https", "example.com", id="https-default-port"),
        pytest.param("example.com:443", "http", "example.com:443", id="443-on-http-kept"),
        pytest.param("example.com:80", "http", "example.com", id="http-default-port"),
        pytest.param("example.com:80", "https", "example.com:80", id="80-on-https-kept"),
        pytest.param("EXAMPLE.com:8443", "HTTPS", "example.com:8443", id="scheme-any-case"),
        pytest.param("localhost:", "http", "localhost", id="empty-port"),
        pytest.param("127.0.0.1:8080", "http", "127.0.0.1:8080", id="ipv4"),
        pytest.param("[::1]:8443", "https", "[::1]:8443", id="ipv6-port"),
        pytest.param("[::1]:443", "https", "[::1]", id="ipv6-default-port"),
        pytest.param("[2001:DB8::1]", "http", "[2001:db8::1]", id="ipv6-lower-cased"),
    ],
)
def test_normalise_authority(host: str, scheme: str, expected: str) -> None:
    assert normalise_authority(host, scheme) == expected
    assert RequestTarget("GET", expected, "/", "").authority == expected


@pytest.mark.parametrize(
    ("host", "scheme"),
    [
        pytest.param("", "https", id="empty"),
        pytest.param("example.com", "ftp", id="unknown-scheme"),
        pytest.param("example.com:0443", "https", id="port-leading-zero"),
        pytest.param("example.com:0", "https", id="port-zero"),
        pytest.param("example.com:65536", "https", id="port-too-big"),
        pytest.param("example.com:-1", "https", id="port-negative"),
        pytest.param("example.com:80:80", "http", id="two-ports"),
        pytest.param("user@example.com", "https", id="userinfo"),
        pytest.param("exa mple.com", "https", id="space"),
        pytest.param("ex\u00e4mple.com", "https", id="non-ascii"),
        pytest.param("example.com/v1", "https", id="path"),
        pytest.param("ex%41mple.com", "https", id="percent-escape"),
        pytest.param(":8443", "https", id="no-host"),
        pytest.param("[::1", "https", id="ipv6-unclosed"),
        pytest.param("[::1]x", "https", id="ipv6-junk-after"),
        pytest.param("[not:an:address]", "https", id="ipv6-invalid"),
    ],
)
def test_normalise_authority_rejects(host: str, scheme: str) -> None:
    with pytest.raises(ProtocolError):
        normalise_authority(host, scheme)


@pytest.mark.parametrize(
    ("raw_target", "path", "query_value"),
    [
        pytest.param("/v1/logs", "/v1/logs", "?", id="no-query"),
        pytest.param("/v1/logs?", "/v1/logs", "?", id="empty-query"),
        pytest.param("/v1/logs?start=0&end=%31", "/v1/logs", "?start=0&end=%31", id="percent-kept"),
        pytest.param("/v1/a%2Fb?q=%2F%20x&r=", "/v1/a%2Fb", "?q=%2F%20x&r=", id="path-percent-kept"),
        pytest.param("/foo?param=Value&Pet=dog", "/foo", "?param=Value&Pet=dog", id="rfc-9421-b2"),
        pytest.param("/p?a?b", "/p", "?a?b", id="question-mark-in-query"),
    ],
)
def test_path_and_query_values(raw_target: str, path: str, query_value: str) -> None:
    values = RequestTarget.from_raw_target("GET", "node.example", raw_target).component_values()
    assert (values["@path"], values["@query"]) == (path, query_value)


@pytest.mark.parametrize(
    ("method", "authority", "path", "query"),
    [
        pytest.param("G ET", "node.example", "/", "", id="method-space"),
        pytest.param("", "node.example", "/", "", id="method-empty"),
        pytest.param("GET", "Node.example", "/", "", id="authority-upper-case"),
        pytest.param("GET", "node.example:", "/", "", id="authority-empty-port"),
        pytest.param("GET", "node.example:0080", "/", "", id="authority-port-leading-zeros"),
        pytest.param("GET", "node.example", "", "", id="path-empty"),
        pytest.param("GET", "node.example", "v1", "", id="path-relative"),
        pytest.param("GET", "node.example", "/a b", "", id="path-space"),
        pytest.param("GET", "node.example", "/a?b", "", id="path-question-mark"),
        pytest.param("GET", "node.example", "/%zz", "", id="path-bad-escape"),
        pytest.param("GET", "node.example", "/\u00e9", "", id="path-non-ascii"),
        pytest.param("GET", "node.example", "/", "a#b", id="query-fragment"),
        pytest.param("GET", "node.example", "/", "a=%2", id="query-short-escape"),
        pytest.param("GET", "node.example", "/", "a\nb", id="query-newline"),
    ],
)
def test_request_target_rejects(method: str, authority: str, path: str, query: str) -> None:
    with pytest.raises(ProtocolError):
        RequestTarget(method, authority, path, query)


# 6. Signature base and structured fields -----------------------------------------------------


@pytest.mark.parametrize(
    ("components", "values", "params_text"),
    [
        pytest.param(("@method", "@method"), {"@method": "GET"}, '("@method" "@method")', id="repeated"),
        pytest.param(("@Method",), {"@Method": "GET"}, '("@Method")', id="upper-case"),
        pytest.param(("@method",), {}, '("@method")', id="no-value"),
        pytest.param(("date",), {"date": "a\nb"}, '("date")', id="newline-in-value"),
        pytest.param(("date",), {"date": "caf\u00e9"}, '("date")', id="non-ascii-value"),
        pytest.param(("date",), {"date": "x"}, '("date")\n', id="newline-in-params"),
    ],
)
def test_signature_base_rejects(
    components: tuple[str, ...], values: dict[str, str], params_text: str
) -> None:
    with pytest.raises(ProtocolError):
        signature_base(components, values, params_text)


def test_signature_base_shape() -> None:
    assert signature_base(("@method", "date"), {"@method": "GET", "date": "a\tb"}, "P") == (
        b'"@method": GET\n"date": a\tb\n"@signature-params": P'
    )


def _simplified(text: str) -> dict[str, tuple[object, object]]:
    """A parsed dictionary as plain tuples: member value (or inner-list values), params."""
    out: dict[str, tuple[object, object]] = {}
    for key, member in sfv.parse_dictionary(text, "Test").items():
        if isinstance(member, sfv.InnerList):
            out[key] = (tuple(item.value for item in member.items), member.params)
        else:
            out[key] = (member.value, member.params)
    return out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", {}, id="empty"),
        pytest.param(
            "a=1, b=-2;x, c",
            {"a": (1, ()), "b": (-2, (("x", True),)), "c": (True, ())},
            id="integers-booleans",
        ),
        pytest.param(
            's="q\\"\\\\", t=tok/en:1',
            {"s": ('q"\\', ()), "t": (sfv.Token("tok/en:1"), ())},
            id="string-token",
        ),
        pytest.param(
            "d=1.250, e=?0, f=:AQI=:",
            {"d": (sfv.Decimal("1.250"), ()), "e": (False, ()), "f": (b"\x01\x02", ())},
            id="decimal-boolean-bytes",
        ),
        pytest.param(
            'g=@1618884473, h=%"caf%c3%a9"',
            {"g": (sfv.Date(1618884473), ()), "h": (sfv.DisplayString("caf\u00e9"), ())},
            id="rfc9651-date-display-string",
        ),
        pytest.param(
            'l=(1 "x";p=*t);q=2 ,\tm=(), n=1\t',
            {"l": ((1, "x"), (("q", 2),)), "m": ((), ()), "n": (1, ())},
            id="inner-lists-and-ows",
        ),
    ],
)
def test_structured_field_dictionaries(text: str, expected: dict[str, tuple[object, object]]) -> None:
    assert _simplified(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a=", id="no-value"),
        pytest.param("A=1", id="upper-case-key"),
        pytest.param("\ta=1", id="leading-tab"),
        pytest.param("a=1,", id="trailing-comma"),
        pytest.param("a=1 b=2", id="no-comma"),
        pytest.param("a=1;b;b", id="duplicate-parameter"),
        pytest.param("a=1, a=2", id="duplicate-key"),
        pytest.param("a=1234567890123456", id="integer-16-digits"),
        pytest.param("a=1234567890123.1", id="decimal-13-integer-digits"),
        pytest.param("a=1.2345", id="decimal-4-fraction-digits"),
        pytest.param("a=1.", id="decimal-no-fraction"),
        pytest.param("a=-", id="minus-alone"),
        pytest.param('a="\\x"', id="bad-escape"),
        pytest.param('a="\x01"', id="control-in-string"),
        pytest.param('a="x', id="unterminated-string"),
        pytest.param("a=:AQI:", id="unpadded-bytes"),
        pytest.param("a=:AQJ=:", id="non-canonical-bytes"),
        pytest.param("a=:AQI=", id="unterminated-bytes"),
        pytest.param("a=?2", id="bad-boolean"),
        pytest.param("a=(1 2", id="unclosed-inner-list"),
        pytest.param("a=(1,2)", id="comma-in-inner-list"),
        pytest.param("a=@1.5", id="decimal-date"),
        pytest.param('a=%"%C3%A9"', id="display-string-upper-hex"),
        pytest.param('a=%"%ff"', id="display-string-not-utf8"),
        pytest.param('a=%"x', id="display-string-unterminated"),
        pytest.param("a=%x", id="display-string-no-quote"),
        pytest.param("a=#", id="unknown-item"),
        pytest.param("a=1 ;b", id="space-before-parameter"),
    ],
)
def test_malformed_structured_fields(text: str) -> None:
    with pytest.raises(ProtocolError):
        sfv.parse_dictionary(text, "Test")


_SF_STRING_CHARS = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@given(
    created=st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1),
    nonce=_SF_STRING_CHARS,
    keyid=_SF_STRING_CHARS,
    tag=_SF_STRING_CHARS,
)
def test_signature_params_serialise_parse_round_trip(created: int, nonce: str, keyid: str, tag: str) -> None:
    params = SignatureParams(BODY_COMPONENTS, created, nonce, keyid, "ed25519", tag)
    member = sfv.parse_dictionary(f"{LABEL}={params.serialise()}", "Signature-Input")[LABEL]
    assert isinstance(member, sfv.InnerList)
    assert tuple(item.value for item in member.items) == BODY_COMPONENTS
    assert member.params == (
        ("created", created), ("nonce", nonce), ("keyid", keyid), ("alg", "ed25519"), ("tag", tag)
    )
    received = sfv.serialise_params_line(BODY_COMPONENTS, member.params)  # type: ignore[arg-type]
    assert received == params.serialise()


def test_httpsig_module_is_pure() -> None:
    """Sans-IO: no sockets, files, event loop or clock; only the standard library and keys."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(httpsig))):
        if isinstance(node, ast.Import):
            imported.update(_top(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(_top(node.module))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open"
    allowed = {"__future__", "base64", "binascii", "collections", "dataclasses", "hashlib", "hmac",
               "ipaddress", "re", "string", "typing", "urllib", "hashfed.keys", "hashfed.protocol"}  # fmt: skip
    assert imported <= allowed, imported - allowed


def _top(module: str) -> str:
    """A module's package as the purity rule sees it: ``hashfed.X`` for our own parts."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "hashfed" else parts[0]


# -- hostile sizes: bounded before parsing -----------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("Signature-Input", "hashfed=()" + ";a=1" * 2000),
        ("Signature", "hashfed=:" + "A" * 4000 + ":"),
    ],
    ids=["signature-input-too-long", "signature-too-long"],
)
def test_oversized_signature_fields_are_refused_before_parsing(field, value):
    target = RequestTarget("GET", "node.example", "/v1/logs", "")
    headers = {"Signature-Input": 'hashfed=("@method")', "Signature": "hashfed=:AA==:", field: value}
    with pytest.raises(ProtocolError, match="longer than"):
        verify_request(target, headers, None, lookup_key=lambda _k: None, now=0)


def test_many_duplicate_parameters_are_found_in_linear_time():
    # A quadratic duplicate check made ~2,000 parameters cost seconds; a set makes it instant.
    text = "a=()" + "".join(f";p{i}=1" for i in range(20_000)) + ";p0=1"
    with pytest.raises(ProtocolError, match="duplicate parameter 'p0'"):
        sfv.parse_dictionary(text, "Test")
