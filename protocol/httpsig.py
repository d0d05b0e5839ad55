"""Request authentication of PROTOCOL §6: one RFC 9421 profile and RFC 9530 Content-Digest.

Every request except ``GET /v1/node`` carries one signature, labelled ``hashfed``::

    Signature-Input: hashfed=("@method" "@authority" "@path" "@query");created=<unix s>\\
        ;nonce="<base64url>";keyid="<org>+<keyhash>";alg="ed25519";tag="hashfed/1"
    Signature: hashfed=:<base64 Ed25519 signature>:

and a request with a body also covers ``"content-digest"`` and sends
``Content-Digest: sha-256=:<base64>:``. The signature is Ed25519 (RFC 9421 §3.3.6) over the
signature base of RFC 9421 §2.5.

Decision: this is our own strict, narrow implementation of this one profile, not a generic
RFC 9421 library. A generic library accepts far more than we want (any component set, any
algorithm, optional parameters) and is built around a client library's request objects;
here bytes and strings go in and a verified object or an exception comes out, with no IO
and no clock (``now`` is a parameter). The PyPI library ``http-message-signatures`` serves
only as the independent implementation that the tests check us against, in both
directions, next to the RFC's own Appendix B.2.6 vector.

Strictness beyond the RFCs, on purpose (fail closed):

- Structured fields (RFC 9651) are parsed in full, but a duplicate dictionary key or
  parameter is an error rather than "last one wins", and a byte sequence must be canonical,
  padded base64.
- The covered components are exactly :data:`BASE_COMPONENTS` (no body) or
  :data:`BODY_COMPONENTS` (body), each once and without component parameters. Their order
  and the order of the signature parameters are free (other implementations may order them
  differently); the ``@signature-params`` line is re-serialised from the member as received,
  as RFC 9421 §3.2 requires, so the order is covered by the signature.
- The parameters are exactly ``created``, ``nonce``, ``keyid``, ``alg`` and ``tag``; the
  nonce must be canonical unpadded base64url of at least 16 bytes and at most 64
  characters (48 bytes).
- ``Content-Digest`` must carry ``sha-256``; a ``sha-512`` member is checked too, other
  algorithms are ignored.
- ``@authority`` accepts DNS-style names and IP literals only, and ``@path`` and ``@query``
  only RFC 3986 characters and well-formed percent-escapes, taken verbatim, never decoded.

Blame, in the terms of :mod:`keys.errors`: bytes that do not follow the profile (malformed
fields, wrong components, missing, unknown or mistyped parameters, another ``alg`` or
``tag``, a bad nonce) raise :class:`ProtocolError`; a request that is well formed but not
trustworthy (unsigned, stale, unknown key, wrong digest, wrong signature) raises
:class:`VerificationError` (a stale or future ``created``: its :class:`ClockSkewError`, with
both times, so the answer can tell the signer its clock is off). The server answers 401.

What :func:`verify_request` does not do, because it needs state: it does not remember
nonces (replay) and does not check that ``@authority`` is one this server answers to. The
server does both, after verification, with :attr:`VerifiedRequest.params`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from hashfed.keys.ed25519 import SIGNATURE_BYTES, Signer, Verifier
from hashfed.keys.errors import ClockSkewError, ProtocolError, VerificationError
from hashfed.keys.names import show
from hashfed.protocol import _sfv as sfv

__all__ = [
    "LABEL",
    "TAG",
    "ALG",
    "BASE_COMPONENTS",
    "BODY_COMPONENTS",
    "NONCE_MIN_BYTES",
    "NONCE_MAX_CHARS",
    "content_digest",
    "check_content_digest",
    "normalise_authority",
    "SignatureParams",
    "signature_base",
    "RequestTarget",
    "new_nonce",
    "sign_request",
    "VerifiedRequest",
    "verify_request",
    "verify_request_head",
    "MAX_SIGNATURE_INPUT_BYTES",
    "MAX_SIGNATURE_BYTES",
]

LABEL: Final = "hashfed"
TAG: Final = "hashfed/1"
ALG: Final = "ed25519"
BASE_COMPONENTS: Final[tuple[str, ...]] = ("@method", "@authority", "@path", "@query")
BODY_COMPONENTS: Final[tuple[str, ...]] = BASE_COMPONENTS + ("content-digest",)
NONCE_MIN_BYTES: Final = 16
# A nonce is 16 random bytes (22 characters) from our clients; a server keeps every nonce
# of the window, so a long one is memory a peer chooses. 64 characters is 48 bytes.
NONCE_MAX_CHARS: Final = 64
# Caps on the signature fields, checked before parsing. Ours are about 250 and 100 bytes;
# other signatures may share the fields (other labels), so there is room, not a megabyte.
MAX_SIGNATURE_INPUT_BYTES: Final = 4096
MAX_SIGNATURE_BYTES: Final = 2048

_PARAM_NAMES: Final = ("created", "nonce", "keyid", "alg", "tag")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_DIGESTS: Final = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


# --- Headers ----------------------------------------------------------------------------


def _field_value(headers: Mapping[str, str], name: str) -> str | None:
    """All field lines named ``name`` (any case), trimmed and joined by ``", "`` (RFC 9421 §2.1).

    Iterating ``items()`` sees every line of a multi-dict such as aiohttp's
    ``CIMultiDictProxy``, and every differently cased key of a plain dict.
    """
    lines = [value.strip(" \t") for key, value in headers.items() if key.lower() == name]
    return ", ".join(lines) if lines else None


# --- RFC 9530 Content-Digest ------------------------------------------------------------


def content_digest(body: bytes) -> str:
    """The ``Content-Digest`` field value for ``body``: ``sha-256=:<base64>:``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def check_content_digest(header: str | None, body: bytes) -> None:
    """Check a ``Content-Digest`` field value against ``body``; return or raise.

    The field is a Dictionary that may carry several algorithms. ``sha-256`` is required and
    checked; ``sha-512``, if present, is checked too (a field wrong in any digest we can
    compute is wrong); other algorithms are ignored (RFC 9530 §2).

    Raises :class:`VerificationError` if the field or its ``sha-256`` member is missing or a
    digest does not match, :class:`ProtocolError` if the field is malformed.
    """
    if header is None:
        raise VerificationError("Content-Digest is missing")
    if len(header) > MAX_SIGNATURE_BYTES:
        raise ProtocolError(f"Content-Digest is longer than {MAX_SIGNATURE_BYTES} bytes")
    members = sfv.parse_dictionary(header, "Content-Digest")
    if "sha-256" not in members:
        raise VerificationError(f"Content-Digest {show(header)} has no sha-256 member")
    for algorithm, hasher in _DIGESTS.items():
        member = members.get(algorithm)
        if member is None:
            continue
        expected = hasher(body).digest()
        if not isinstance(member, sfv.Item) or type(member.value) is not bytes or member.params:
            raise ProtocolError(f"Content-Digest {algorithm} must be a byte sequence without parameters")
        if len(member.value) != len(expected):
            raise ProtocolError(f"Content-Digest {algorithm} has {len(member.value)} bytes, not {len(expected)}")
        if not hmac.compare_digest(member.value, expected):
            raise VerificationError(f"Content-Digest {algorithm} does not match the body")


# --- Derived components: @authority, @path, @query ----------------------------------------

_HOSTNAME_RE: Final = re.compile(r"[a-z0-9._~-]+")
_IPV6_RE: Final = re.compile(r"\[[0-9a-f:.]+\]")
_PORT_RE: Final = re.compile(r"[1-9][0-9]{0,4}")
_PCHARS: Final = string.ascii_letters + string.digits + re.escape("-._~!$&'()*+,;=:@")
_PATH_RE: Final = re.compile(rf"/(?:[{_PCHARS}/]|%[0-9A-Fa-f]{{2}})*")
_QUERY_RE: Final = re.compile(rf"(?:[{_PCHARS}/?]|%[0-9A-Fa-f]{{2}})*")
_METHOD_RE: Final = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def _is_ipv6_literal(host: str) -> bool:
    if not _IPV6_RE.fullmatch(host):
        return False
    try:
        ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        return False
    return True


def _split_authority(authority: str) -> tuple[str, int | None]:
    """Split a lower-case ``host[:port]`` into host and port; an empty port is no port."""
    if _IPV6_RE.match(authority):
        host_end = authority.index("]") + 1
    else:
        host_end = authority.find(":") if ":" in authority else len(authority)
    host, port_text = authority[:host_end], authority[host_end:]
    if not (_is_ipv6_literal(host) or _HOSTNAME_RE.fullmatch(host)):
        raise ProtocolError(f"bad host in authority {show(authority)}")
    if port_text in ("", ":"):
        return host, None
    if not port_text.startswith(":") or not _PORT_RE.fullmatch(port_text[1:]) or int(port_text[1:]) > 65535:
        raise ProtocolError(f"bad port in authority {show(authority)}")
    return host, int(port_text[1:])


def normalise_authority(host: str, scheme: str) -> str:
    """The ``@authority`` value (RFC 9421 §2.2.3) of a request to ``host`` over ``scheme``.

    ``host`` is the Host header (or the URL's ``host[:port]``): lower-cased, and the port
    dropped when it is empty or the scheme's default (80 for http, 443 for https). Narrow on
    purpose: DNS-style names, IPv4 and bracketed IPv6 literals only; anything else
    (userinfo, percent-escapes, a port with leading zeros) raises :class:`ProtocolError`.
    """
    default_port = _DEFAULT_PORTS.get(scheme.lower())
    if default_port is None:
        raise ProtocolError(f"scheme {show(scheme)} is neither http nor https")
    if not host.isascii():
        raise ProtocolError(f"authority {show(host)} is not ASCII")
    name, port = _split_authority(host.lower())
    return name if port in (None, default_port) else f"{name}:{port}"


@dataclass(frozen=True)
class RequestTarget:
    """The request values the profile covers, as sent on the wire.

    ``authority`` comes from :func:`normalise_authority`. ``path`` is raw (percent-encoding
    kept, never decoded or re-encoded); ``query`` is raw and without the ``?`` (``""`` when
    absent), so the ``@query`` value is ``"?" + query`` (just ``"?"`` when empty,
    RFC 9421 §2.2.7). Construction checks the syntax and raises :class:`ProtocolError`.
    """

    method: str
    authority: str
    path: str
    query: str

    def __post_init__(self) -> None:
        if not _METHOD_RE.fullmatch(self.method):
            raise ProtocolError(f"bad method {show(self.method)}")
        if not self.authority.isascii() or _canonical(self.authority) != self.authority:
            raise ProtocolError(f"authority {show(self.authority)} is not normalised")
        if not _PATH_RE.fullmatch(self.path):
            raise ProtocolError(f"bad path {show(self.path)}")
        if not _QUERY_RE.fullmatch(self.query):
            raise ProtocolError(f"bad query {show(self.query)}")

    @classmethod
    def from_raw_target(cls, method: str, authority: str, raw_target: str) -> RequestTarget:
        """Split an origin-form request target (``/path?query``, raw) at its first ``?``."""
        path, _, query = raw_target.partition("?")
        return cls(method, authority, path, query)

    def component_values(self) -> dict[str, str]:
        """The derived component values, keyed by component name."""
        return {
            "@method": self.method,
            "@authority": self.authority,
            "@path": self.path,
            "@query": "?" + self.query,
        }


def _canonical(authority: str) -> str:
    name, port = _split_authority(authority.lower())
    return name if port is None else f"{name}:{port}"


# --- Signature parameters and the signature base (RFC 9421 §2.3, §2.5) --------------------


@dataclass(frozen=True)
class SignatureParams:
    """The signature parameters of the profile (RFC 9421 §2.3)."""

    components: tuple[str, ...]
    created: int
    nonce: str
    keyid: str
    alg: str
    tag: str

    def serialise(self) -> str:
        """The ``@signature-params`` value, parameters in the order of PROTOCOL §6."""
        return sfv.serialise_params_line(
            self.components,
            (
                ("created", self.created),
                ("nonce", self.nonce),
                ("keyid", self.keyid),
                ("alg", self.alg),
                ("tag", self.tag),
            ),
        )


def _check_base_value(name: str, value: str) -> None:
    if not all(" " <= c <= "~" or c == "\t" for c in value):
        raise ProtocolError(f"value of {name!r} has a character a signature base cannot hold: {show(value)}")


def signature_base(components: Sequence[str], values: Mapping[str, str], params_text: str) -> bytes:
    """The signature base of RFC 9421 §2.5: the bytes that are signed.

    One line ``"<name>": <value>`` per covered component, in order, each ending in ``\\n``,
    then ``"@signature-params": <params_text>`` with no newline. ``values`` maps component
    names to their (already canonical) values. Raises :class:`ProtocolError` for a repeated
    or upper-case name, a missing value, or a value with a control or non-ASCII character.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for name in components:
        if name in seen or name != name.lower():
            raise ProtocolError(f"component {name!r} repeated or not lower-case")
        seen.add(name)
        if name not in values:
            raise ProtocolError(f"no value for covered component {name!r}")
        _check_base_value(name, values[name])
        lines.append(f"{sfv.sf_string(name)}: {values[name]}\n")
    _check_base_value("@signature-params", params_text)
    lines.append(f'"@signature-params": {params_text}')
    return "".join(lines).encode("ascii")


# --- Signing ----------------------------------------------------------------------------

_NONCE_RE: Final = re.compile(r"[A-Za-z0-9_-]+")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _check_nonce(nonce: str) -> str:
    """Return ``nonce`` if it is canonical unpadded base64url of enough bytes, and at most
    :data:`NONCE_MAX_CHARS` characters (checked first)."""
    if len(nonce) > NONCE_MAX_CHARS:
        raise ProtocolError(f"nonce is {len(nonce)} characters, more than {NONCE_MAX_CHARS}")
    if not _NONCE_RE.fullmatch(nonce) or len(nonce) % 4 == 1:
        raise ProtocolError(f"nonce {show(nonce)} is not unpadded base64url")
    raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    if _b64url(raw) != nonce:
        raise ProtocolError(f"nonce {show(nonce)} is not canonical base64url")
    if len(raw) < NONCE_MIN_BYTES:
        raise ProtocolError(f"nonce has {len(raw)} bytes, fewer than {NONCE_MIN_BYTES}")
    return nonce


def new_nonce(random_bytes: bytes) -> str:
    """A nonce: ``random_bytes`` (the caller passes ``os.urandom(16)``) as unpadded base64url."""
    if len(random_bytes) < NONCE_MIN_BYTES:
        raise ProtocolError(f"a nonce needs at least {NONCE_MIN_BYTES} random bytes")
    return _b64url(random_bytes)


def _component_values(target: RequestTarget, digest: str | None) -> dict[str, str]:
    values = target.component_values()
    if digest is not None:
        values["content-digest"] = digest
    return values


def sign_request(
    signer: Signer, target: RequestTarget, body: bytes | None, *, created: int, nonce: str
) -> dict[str, str]:
    """Sign a request; return the headers to send with it.

    Always ``Signature-Input`` and ``Signature``; ``Content-Digest`` as well when ``body`` is
    not ``None`` (every POST, even one with an empty body), and then the signature covers it.
    """
    if type(created) is not int:
        raise ProtocolError(f"created must be an integer, not {show(created)}")
    digest = None if body is None else content_digest(body)
    params = SignatureParams(
        components=BASE_COMPONENTS if body is None else BODY_COMPONENTS,
        created=created,
        nonce=_check_nonce(nonce),
        keyid=signer.key_id,
        alg=ALG,
        tag=TAG,
    )
    params_text = params.serialise()
    base = signature_base(params.components, _component_values(target, digest), params_text)
    signature = base64.b64encode(signer.sign(base)).decode("ascii")
    headers = {"Signature-Input": f"{LABEL}={params_text}", "Signature": f"{LABEL}=:{signature}:"}
    if digest is not None:
        headers["Content-Digest"] = digest
    return headers


# --- Verifying --------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedRequest:
    """A request whose signature verified: who signed it, with which key and parameters."""

    key_id: str
    org: str
    verifier: Verifier
    params: SignatureParams


def _read_signature_input(member: sfv.Item | sfv.InnerList, expected: tuple[str, ...]) -> tuple[SignatureParams, str]:
    """Check the ``hashfed`` member against the profile.

    Returns the parameters and the member re-serialised in its received order, which is
    the ``@signature-params`` value (RFC 9421 §3.2 step 3).
    """
    if not isinstance(member, sfv.InnerList):
        raise ProtocolError(f"Signature-Input member {LABEL!r} is not an inner list")
    components: list[str] = []
    for item in member.items:
        if type(item.value) is not str or item.params:
            raise ProtocolError("a covered component must be a string without parameters")
        components.append(item.value)
    if sorted(components) != sorted(expected):
        raise ProtocolError(f"covered components {components} are not exactly {list(expected)}")
    names = [key for key, _ in member.params]
    if sorted(names) != sorted(_PARAM_NAMES):
        raise ProtocolError(f"signature parameters {names} are not exactly {list(_PARAM_NAMES)}")
    values = dict(member.params)
    created = values["created"]
    if type(created) is not int:
        raise ProtocolError(f"created must be an integer, not {show(created)}")
    strings: dict[str, str] = {}
    for name in ("nonce", "keyid", "alg", "tag"):
        value = values[name]
        if type(value) is not str:
            raise ProtocolError(f"signature parameter {name} must be a string, not {show(value)}")
        strings[name] = value
    if strings["alg"] != ALG:
        raise ProtocolError(f"alg {show(strings['alg'])} is not {ALG!r}")
    if strings["tag"] != TAG:
        raise ProtocolError(f"tag {show(strings['tag'])} is not {TAG!r}")
    _check_nonce(strings["nonce"])
    params = SignatureParams(tuple(components), created, **strings)
    received: list[tuple[str, int | str]] = [
        (key, created if key == "created" else strings[key]) for key, _ in member.params
    ]
    return params, sfv.serialise_params_line(components, received)


def _read_signature(member: sfv.Item | sfv.InnerList) -> bytes:
    if not isinstance(member, sfv.Item) or type(member.value) is not bytes or member.params:
        raise ProtocolError(f"Signature member {LABEL!r} must be a byte sequence without parameters")
    if len(member.value) != SIGNATURE_BYTES:
        raise ProtocolError(f"an Ed25519 signature has {SIGNATURE_BYTES} bytes, not {len(member.value)}")
    return member.value


def verify_request(
    target: RequestTarget,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    lookup_key: Callable[[str], Verifier | None],
    now: int,
    max_skew_s: int = 300,
) -> VerifiedRequest:
    """Verify the ``hashfed`` signature of a request; return who signed it, or raise.

    ``headers`` is looked up case-insensitively (aiohttp's ``CIMultiDictProxy`` or a plain
    dict); ``body`` is ``None`` for a request without one (then the covered components are
    exactly :data:`BASE_COMPONENTS`) and the body bytes otherwise, possibly empty (then
    :data:`BODY_COMPONENTS`, and ``Content-Digest`` must match). ``lookup_key`` maps a key
    id to a trusted :class:`Verifier` or ``None``. ``created`` must lie within
    ``max_skew_s`` seconds of ``now``.

    This function is stateless: the caller must still reject a replayed nonce and an
    ``@authority`` it does not answer to (PROTOCOL §6), after this returns.
    """
    verified = verify_request_head(
        target,
        headers,
        with_body=body is not None,
        lookup_key=lookup_key,
        now=now,
        max_skew_s=max_skew_s,
    )
    if body is not None:
        check_content_digest(_field_value(headers, "content-digest"), body)
    return verified


def verify_request_head(
    target: RequestTarget,
    headers: Mapping[str, str],
    *,
    with_body: bool,
    lookup_key: Callable[[str], Verifier | None],
    now: int,
    max_skew_s: int = 300,
) -> VerifiedRequest:
    """The signature check of :func:`verify_request` from the request head alone.

    For a request with a body (``with_body``) the signature covers the ``Content-Digest``
    header, so a server can authenticate the sender before it reads a byte of the body;
    it must then call :func:`check_content_digest` on the body before using it. The
    signature fields are bounded (:data:`MAX_SIGNATURE_INPUT_BYTES`,
    :data:`MAX_SIGNATURE_BYTES`) before they are parsed: a hostile client cannot make the
    parser work on a megabyte of header.
    """
    input_text = _field_value(headers, "signature-input")
    signature_text = _field_value(headers, "signature")
    if input_text is None or signature_text is None:
        raise VerificationError("request is not signed: Signature-Input or Signature is missing")
    if len(input_text) > MAX_SIGNATURE_INPUT_BYTES or len(signature_text) > MAX_SIGNATURE_BYTES:
        raise ProtocolError(
            f"Signature-Input or Signature is longer than {MAX_SIGNATURE_INPUT_BYTES} / "
            f"{MAX_SIGNATURE_BYTES} bytes"
        )
    inputs = sfv.parse_dictionary(input_text, "Signature-Input")
    signatures = sfv.parse_dictionary(signature_text, "Signature")
    if LABEL not in inputs or LABEL not in signatures:
        raise VerificationError(f"request has no {LABEL!r} signature")
    params, params_text = _read_signature_input(
        inputs[LABEL], BODY_COMPONENTS if with_body else BASE_COMPONENTS
    )
    signature = _read_signature(signatures[LABEL])
    if abs(now - params.created) > max_skew_s:
        raise ClockSkewError(
            f"created {params.created} is more than {max_skew_s} s from now ({now})",
            created=params.created,
            now=now,
            max_skew_s=max_skew_s,
        )
    verifier = lookup_key(params.keyid)
    if verifier is None:
        raise VerificationError(f"unknown key id {show(params.keyid)}")
    if verifier.key_id != params.keyid:
        raise VerificationError(f"key lookup for {show(params.keyid)} returned key {show(verifier.key_id)}")
    digest = _field_value(headers, "content-digest") if with_body else None
    if with_body and digest is None:
        raise VerificationError("Content-Digest is missing")
    base = signature_base(params.components, _component_values(target, digest), params_text)
    verifier.verify(base, signature)
    return VerifiedRequest(key_id=params.keyid, org=verifier.name, verifier=verifier, params=params)


def authority_of(url: str) -> str:
    """The RFC 9421 @authority of a URL (RFC 9421 §2.2.3): lower-case host, default port
    dropped; what a client signs and a server checks against the names it answers to."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is None or parts.port == default:
        return host
    return f"{host}:{parts.port}"
