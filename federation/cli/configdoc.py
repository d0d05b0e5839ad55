"""``docs/config.md``, the reference of every ``config.toml`` key, written from the config
model (``config.NodeConfig``): names, types, defaults and bounds come from the model, the
sentences from ``DESCRIPTIONS`` below. A test regenerates the file and compares, and fails
on a key without a description, so the reference cannot drift from the code.

    python -m hashfed.federation.cli.configdoc > docs/config.md
"""

from __future__ import annotations

import sys
from typing import Any

from annotated_types import Ge, Gt, Le
from pydantic import BaseModel

from hashfed.federation.config import NodeConfig

DESCRIPTIONS: dict[str, str] = {
    "org": "This node's organisation name (a DNS-like name); every log it publishes is `org/collection`. Set by `hashfed init`.",
    "default_collection": "The collection `add`, `remove`, `opinion` and `import` write to when `--collection` is not given.",
    "server.host": "Address the peer listener binds to. Use `0.0.0.0` (or `::`) to listen on every interface, or keep loopback behind a reverse proxy.",
    "server.port": "Port of the peer listener (`0`: any free port).",
    "server.public_urls": "The URLs peers use to reach this node. Signed requests must name one of their authorities; while none is set, the listener's own addresses are accepted.",
    "server.tls_cert": "PEM certificate chain for TLS on the peer listener (relative to the node's folder). Needs `tls_key`.",
    "server.tls_key": "PEM private key for `tls_cert`.",
    "server.local_host": "Address of the local listener (lookup API, web console, `/metrics`). Keep it on loopback; publish it through a reverse proxy with TLS if it must be reached from elsewhere.",
    "server.local_port": "Port of the local listener; unset means no local listener (`serve --local-port` also sets it).",
    "server.local_token": "Bearer token required by the lookup API and `/metrics`, and asked once by the console's login form. Unset: the local listener is open to whoever can reach it.",
    "limits.max_body_bytes": "Largest request body accepted (a push page); larger bodies get 413 before anything is parsed.",
    "limits.max_page_batches": "Most batches served in one GET page.",
    "limits.header_timeout_s": "The whole request head (and a TLS handshake) must arrive within this.",
    "limits.body_timeout_s": "A push body, read once its sender is authenticated, must arrive within this (408 otherwise).",
    "limits.idle_timeout_s": "Idle keep-alive connections are closed after this.",
    "limits.max_connections_per_address": "Open connections allowed from one client address.",
    "limits.max_connections": "Open connections allowed per listener, from every address together; past it a new one is closed at once.",
    "limits.requests_per_second_per_key": "Token bucket rate per signing key, after its signature verifies (429 with `Retry-After` past it).",
    "limits.burst_per_key": "Token bucket size per signing key.",
    "limits.requests_per_second_per_address": "Token bucket rate per client address (an IPv6 /64), before any signature is checked.",
    "limits.burst_per_address": "Token bucket size per client address.",
    "limits.signature_window_s": "How far a signed request's `created` may be from this node's clock; nonces are kept this long.",
    "limits.max_nonces_per_key": "Nonces remembered per key within the window; past it the key gets 429, never a replay.",
    "pull.interval_s": "Seconds between pull rounds against a peer while `serve` runs.",
    "pull.jitter_s": "Random spread (±) added to every wait, so a coalition does not pull in lockstep.",
    "pull.backoff_initial_s": "Wait after a failed round; doubles per consecutive failure.",
    "pull.backoff_max_s": "Longest wait after failures.",
    "pull.page_batches": "Batches fetched per page; each page is proven and committed in one transaction.",
    "pull.timeout_s": "Longest one round against one peer may take.",
}


def _keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, field info, default) of every setting, sections after the top keys."""
    top, sections = [], []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections += _keys(annotation, f"{prefix}{name}.")
        else:
            top.append((f"{prefix}{name}", field, field.default))
    return top + sections


def _type(field: Any) -> str:
    text = str(field.annotation).replace("typing.", "")
    for long, short in (("<class '", ""), ("'>", ""), ("Annotated[", ""), ("NoneType", "unset")):
        text = text.replace(long, short)
    if "tuple" in text:
        return "list of strings"
    base = "integer" if "int" in text else "number" if "float" in text else "string"
    return base + (" or unset" if "unset" in text or "None" in text else "")


def _bounds(field: Any) -> str:
    found = []
    for item in field.metadata:
        if isinstance(item, Gt):
            found.append(f"> {item.gt}")
        elif isinstance(item, Ge):
            found.append(f"≥ {item.ge}")
        elif isinstance(item, Le):
            found.append(f"≤ {item.le}")
        elif getattr(item, "min_length", None):
            found.append("not empty")
    return ", ".join(found)


def _default(field: Any, default: Any) -> str:
    if field.is_required():
        return "required"
    if default is None:
        return "unset"
    if isinstance(default, tuple):
        return "`[]`" if not default else "`" + repr(list(default)) + "`"
    if isinstance(default, str):
        return f'`"{default}"`'
    return f"`{default}`"


def render() -> str:
    missing = [key for key, _f, _d in _keys(NodeConfig) if key not in DESCRIPTIONS]
    if missing:
        raise KeyError(f"config keys without a description in configdoc.DESCRIPTIONS: {missing}")
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m hashfed.federation.cli.configdoc > docs/config.md`; do not edit. -->",
        "",
        "A node reads `config.toml` in its folder once, at start. Unknown keys and values of",
        "the wrong type are errors (nothing is coerced); units are in the names (`_s` seconds,",
        "`_bytes` bytes). Peers, keys and grants are not here: the CLI keeps them in the store",
        "(`hashfed peer add`, `grant`, `keys rotate`) and they apply without a restart.",
        "",
    ]
    section = None
    for key, field, default in _keys(NodeConfig):
        name_section = key.split(".")[0] if "." in key else ""
        if name_section != section:
            section = name_section
            lines += ["", f"## [{section}]" if section else "## Top level", ""]
            lines += ["| key | type | default | bounds | meaning |", "|---|---|---|---|---|"]
        short = key.split(".")[-1]
        lines.append(
            f"| `{short}` | {_type(field)} | {_default(field, default)} | {_bounds(field)} "
            f"| {DESCRIPTIONS[key]} |"
        )
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
