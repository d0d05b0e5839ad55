"""The node's configuration: one frozen object, loaded once from ``config.toml``, passed down.

Unknown keys are an error (a typo must not silently fall back to a default); units are in
the names. Peers, keys and grants are not here: they change while the node runs, so they
live in the store and the CLI edits them there (``hashfed peer add``, ``grant``, …).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hashfed.keys.errors import ConfigError
from hashfed.keys.names import check_collection, check_org

# strict: TOML has real types, so `port = "8470"` or `local_port = true` is a mistake to
# report, never a value to coerce (lax pydantic would make `true` port 1).
_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)

PositiveInt = Annotated[int, Field(gt=0)]
# Finite: ``inf`` would turn a timeout or a limit off without saying so.
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Port = Annotated[int, Field(ge=0, le=65535)]


_HOST = re.compile(r"[a-z0-9.-]{1,253}|[0-9a-f:.]{2,45}")


def check_base_url(text: str) -> str:
    """An http(s) base URL with a host and nothing else (no user, query, fragment or
    white space): what a peer's ``--url`` and a node's ``public_urls`` must be."""
    try:
        parts = urlsplit(text)
        parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"bad URL {text!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{text!r} is not an http:// or https:// URL with a host")
    if parts.port == 0:
        raise ConfigError(f"{text!r}: port 0 is not a port a peer can reach")
    if not _HOST.fullmatch(parts.hostname):
        # What RFC 9421 signs as @authority must be the host as every side writes it:
        # ASCII letters, digits, dots and hyphens, or an IP literal (IDNs in A-label form).
        raise ConfigError(f"{text!r}: the host must be an ASCII name or an IP address")
    if parts.query or parts.fragment or parts.username is not None or any(c.isspace() for c in text):
        raise ConfigError(
            f"{text!r} must be a plain base URL (no spaces, user, query or fragment)"
        )
    return text


class ServerConfig(BaseModel):
    """Where the node listens. ``public_urls`` are the URLs peers use to reach it; their
    authorities are the only ones a signed request may name (PROTOCOL §6)."""

    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: Port = 8470
    public_urls: Annotated[tuple[str, ...], Field(strict=False)] = ()  # TOML gives a list
    tls_cert: str | None = None
    tls_key: str | None = None
    # The node's own lookup API for its matching pipeline: loopback only by default.
    local_host: str = "127.0.0.1"
    local_port: Port | None = None
    # Set means required: an empty token would silently turn the check off.
    local_token: Annotated[str, Field(min_length=1)] | None = None

    @field_validator("public_urls")
    @classmethod
    def _public_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            check_base_url(url)
        return urls

    @field_validator("host", "local_host")
    @classmethod
    def _listen_host(cls, host: str) -> str:
        if not _HOST.fullmatch(host):
            raise ValueError(f"{host[:80]!r} is not a host name or an IP address to listen on")
        return host


class LimitsConfig(BaseModel):
    """What keeps a node up under hostile or broken clients. The defaults let a small NGO
    run unchanged and never slow an honest pull of a million entries."""

    model_config = _FROZEN

    # One push page: the largest batch is 4 MiB, so 64 MiB holds sixteen of the largest.
    max_body_bytes: PositiveInt = 64 * 1024 * 1024
    # Batches served per GET page (at 10,000 entries a batch, 640,000 entries).
    max_page_batches: PositiveInt = 64
    # The whole request head must arrive within this (aiohttp has no such timeout).
    header_timeout_s: PositiveFloat = 10.0
    # A push body (read only after its sender is authenticated) must arrive within this:
    # 64 MiB at about 0.5 MB/s.
    body_timeout_s: PositiveFloat = 120.0
    # An idle keep-alive connection is closed after this.
    idle_timeout_s: PositiveFloat = 75.0
    max_connections_per_address: PositiveInt = 32
    # Open connections per listener, from every address together; past it a new one is
    # closed at once. Two listeners at 256 stay well under the usual 1,024 descriptors.
    max_connections: PositiveInt = 256
    # Per key, after the signature verifies: a token bucket.
    requests_per_second_per_key: PositiveFloat = 50.0
    burst_per_key: PositiveInt = 200
    # Per client address, before verification, as a backstop: ten times a key's rate.
    requests_per_second_per_address: PositiveFloat = 500.0
    burst_per_address: PositiveInt = 2000
    # RFC 9421 `created` may be this far from our clock; nonces are kept this long.
    signature_window_s: PositiveInt = 300
    # Nonces remembered per key within the window; past it the key gets 429, never a replay.
    max_nonces_per_key: PositiveInt = 100_000


class PullConfig(BaseModel):
    """How ``serve`` keeps in sync with peers, and how the puller pages."""

    model_config = _FROZEN

    interval_s: PositiveFloat = 300.0
    jitter_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 30.0
    backoff_initial_s: PositiveFloat = 10.0
    backoff_max_s: PositiveFloat = 3600.0
    # Batches per page (each proven and committed in one transaction). Two pages are in
    # flight at once (one verifying, one committing), so this bounds the puller's memory.
    page_batches: PositiveInt = 4
    timeout_s: PositiveFloat = 120.0


class NodeConfig(BaseModel):
    model_config = _FROZEN

    org: str
    default_collection: str = "default"
    server: ServerConfig = ServerConfig()
    limits: LimitsConfig = LimitsConfig()
    pull: PullConfig = PullConfig()

    @field_validator("org")
    @classmethod
    def _org(cls, value: str) -> str:
        return check_org(value)

    @field_validator("default_collection")
    @classmethod
    def _collection(cls, value: str) -> str:
        return check_collection(value)


def load_config(path: Path) -> NodeConfig:
    """Read and validate ``config.toml``; ConfigError naming the file and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no config at {path}; run 'hashfed init' first") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except RecursionError as exc:  # tomllib parses nested arrays recursively
        raise ConfigError(f"cannot read {path}: nested too deeply") from exc
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from exc
    except Exception as exc:  # a validator's ProtocolError
        raise ConfigError(f"{path}: {exc}") from exc


def render_config(org: str) -> str:
    """The config file ``init`` writes: every setting, commented, at its default."""
    limits = LimitsConfig()
    pull = PullConfig()
    lines = [
        "# hashfed node configuration. Unknown keys are an error.",
        f'org = "{org}"',
        'default_collection = "default"',
        "",
        "[server]",
        'host = "127.0.0.1"',
        "port = 8470",
        '# public_urls = ["https://hashfed.example.org"]   # the URLs peers use to reach you',
        '# tls_cert = "cert.pem"',
        '# tls_key = "key.pem"',
        "# local_port = 8471                              # lookup API for your own pipeline",
        '# local_token = "a long random secret"',
        "",
        "[limits]",
    ]
    lines += [f"# {name} = {value!r}" for name, value in limits.model_dump().items()]
    lines += ["", "[pull]"]
    lines += [f"# {name} = {value!r}" for name, value in pull.model_dump().items()]
    return "\n".join(lines) + "\n"
