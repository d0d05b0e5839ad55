"""OpenAPI 3.1 documents of the node's two listeners, built as data from the constants the
handlers enforce, and served at ``GET /v1/openapi.json`` on each.

Two documents, not one: the listeners answer on different ports with different
authentication (RFC 9421 signatures for peers, a bearer token for the node's own tools),
and both serve ``/v1/openapi.json``, which one document could not describe twice.

- ``peer_document()``: PROTOCOL §6. Its ``/v1/openapi.json`` is **signed** like every
  ``/v1/`` route but ``GET /v1/node``: the protocol names that route as the only open one,
  and a peer that can read the document can sign. Opening a second route would change the
  contract (and what an unauthenticated client can make the node do) for no reader's gain.
- ``local_document()``: the lookup API, the change feed, opinions and ``/metrics``, behind
  the listener's bearer token when it has one. The console (HTML pages and their login
  form) is not an API and is left out.

RFC 9421 has no OpenAPI security scheme; it is described as two ``apiKey`` headers
(``Signature-Input`` and ``Signature``, both required) whose description gives the profile.
Every ``GET`` route also answers ``HEAD`` (aiohttp adds it); OpenAPI lists only the ``GET``.

Statuses listed per operation are those the node can answer it with; every error body is
RFC 9457 problem+json (``Problem``), also a method a path does not have (405, with
``Allow``), which belongs to no operation. ``tests/integration/test_openapi.py`` keeps this true:
every route of the running apps is here and every path here is a route, and real answers
validate against these schemas; ``tests/integration/test_schemathesis.py`` fuzzes both.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aiohttp import web

from hashfed.federation.http.app import MAX_QUERY_INT, PROTOCOL_NAME
from hashfed.federation.http.body import refuse_expect
from hashfed.federation.http.changes import DEFAULT_CHANGES, MAX_OPINIONS
from hashfed.federation.http.lookup import MAX_LOOKUP_HASHES
from hashfed.federation.http.match import MEDIA_TYPES as MATCH_MEDIA_TYPES
from hashfed.federation.http.push import CHECKPOINT_HEADER, PROOF_HEADER
from hashfed.federation.merged.pdq import MAX_DISTANCE
from hashfed.federation.store.changes import MAX_CHANGES
from hashfed.keys.names import COLLECTION_RE, LABEL_RE, ORG_RE
from hashfed.protocol.entries import OPINIONS
from hashfed.protocol.hashtypes import HASH_TYPES
from hashfed.protocol.merkle import MAX_PROOF_HASHES

OPENAPI_PATH = "/v1/openapi.json"
OPENAPI_VERSION = "3.1.0"
DOC_VERSION = "1"

JSON = "application/json"
PROBLEM = "application/problem+json"
NDJSON = "application/x-ndjson"
TEXT = "text/plain"

Schema = dict[str, Any]

# -- schemas shared by both documents -----------------------------------------------------


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


def _pattern(regex: Any) -> str:
    """A fullmatch regex as an anchored JSON Schema pattern."""
    return f"^(?:{regex.pattern})$"


_ORG = {"type": "string", "pattern": _pattern(ORG_RE), "examples": ["acme.example"]}
_COLLECTION = {"type": "string", "pattern": _pattern(COLLECTION_RE), "examples": ["default"]}
_HASH_TYPE = {"type": "string", "enum": list(HASH_TYPES)}
_BASE64 = {"type": "string", "pattern": "^[A-Za-z0-9+/]*={0,2}$"}
_SIZE = {"type": "integer", "minimum": 0, "maximum": MAX_QUERY_INT}

_PROBLEM = {
    "description": "RFC 9457 problem details. `type` is a stable URN to match on; `detail`"
    " is for people. Some problems carry more members: `size` (409 `wrong-start`, the"
    " batches the host holds), `now` (401 `clock-skew`, the node's Unix time).",
    "type": "object",
    "properties": {
        "type": {"type": "string", "pattern": "^urn:hashfed:problem:[a-z0-9-]+$"},
        "title": {"type": "string", "minLength": 1},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "minLength": 1},
        "size": {"type": "integer", "minimum": 0},
        "now": {"type": "integer"},
    },
    "required": ["type", "title", "status", "detail"],
}

_TITLES = {
    200: "OK",
    201: "Created",
    400: "Malformed request",
    401: "No valid authentication",
    403: "Authenticated but not allowed",
    404: "Not found",
    408: "The body did not arrive in time",
    409: "Conflict with stored state",
    413: "Too large",
    415: "Not a media type this route takes",
    417: "Expectation failed (only a route that takes a body invites one)",
    422: "Content fails verification",
    429: "Too many requests (see Retry-After)",
    503: "Not available on this node (an optional extra is not installed)",
}


def _problems(*statuses: int) -> dict[str, Schema]:
    out: dict[str, Schema] = {}
    for status in statuses:
        response: Schema = {
            "description": _TITLES[status],
            "content": {PROBLEM: {"schema": _ref("Problem")}},
        }
        if status == 429:
            response["headers"] = {
                "Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}
            }
        out[str(status)] = response
    return out


def _ok(
    description: str, media: str, schema: Schema, status: int = 200, links: Schema | None = None
) -> dict[str, Schema]:
    answer: Schema = {"description": description, "content": {media: {"schema": schema}}}
    if links:
        answer["links"] = links
    return {str(status): answer}


def _link(operation: str, description: str, **parameters: object) -> Schema:
    """An OpenAPI link: how an answer feeds the next request (what a client, and
    schemathesis's stateful runs, follow)."""
    return {"operationId": operation, "description": description, "parameters": parameters}


# The first log of a listing, and the log a push was for.
_FIRST_LOG = {"org": "$response.body#/0/org", "collection": "$response.body#/0/collection"}
_PUSHED_LOG = {"org": "$request.path.org", "collection": "$request.path.collection"}


def _log_links(whose: str, log: dict[str, str], size: str) -> dict[str, Schema]:
    """Links to a log's checkpoint and its batches up to ``size`` (an expression)."""
    return {
        "checkpoint": _link("getCheckpoint", f"{whose} checkpoint", **log),
        "batches": _link("getBatches", f"{whose} batches", start=0, end=size, **log),
    }


def _query(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _path_param(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_OPENAPI_RESPONSE = _ok("This document", JSON, {"type": "object"})

# -- the peer listener (PROTOCOL §6) ------------------------------------------------------

_SIGNED = [{"signatureInput": [], "signature": []}]
_SIGNATURE_PROFILE = (
    "RFC 9421, one fixed profile (PROTOCOL §6): `Signature-Input: hashfed=(\"@method\""
    " \"@authority\" \"@path\" \"@query\");created=<unix s>;nonce=\"<base64url of 16+"
    " random bytes>\";keyid=\"<org>+<keyhash>\";alg=\"ed25519\";tag=\"hashfed/1\"` and"
    " `Signature: hashfed=:<base64>:`. A request with a body adds \"content-digest\" to the"
    " covered components and sends `Content-Digest: sha-256=:<base64>:` (RFC 9530)."
    " `@authority` must be one this node answers to; a nonce is accepted once per window."
    " Any failure is 401 (`clock-skew` carries the node's time as `now`)."
)


def _log_params() -> list[Schema]:
    return [_path_param("org", _ORG), _path_param("collection", _COLLECTION)]


def _peer_paths() -> dict[str, Schema]:
    base = "/v1/logs/{org}/{collection}"
    log_errors = (400, 401, 403, 404, 417, 429)
    proof = _ok("The proof (RFC 9162 §2.1)", JSON, _ref("Proof"))
    return {
        "/v1/node": {
            "get": {
                "operationId": "getNode",
                "summary": "Who this node is: its org and keys. The only open route.",
                "security": [],
                "responses": {
                    **_ok("The node", JSON, _ref("NodeInfo")),
                    **_problems(417, 429),
                },
            }
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "getPeerOpenAPI",
                "summary": "This document (signed, like the rest of /v1/).",
                "responses": {**_OPENAPI_RESPONSE, **_problems(401, 417, 429)},
            }
        },
        "/v1/logs": {
            "get": {
                "operationId": "listLogs",
                "summary": "Every log held here that the caller may read, with its newest"
                " complete checkpoint.",
                "responses": {
                    **_ok(
                        "The logs",
                        JSON,
                        {"type": "array", "items": _ref("LogSummary")},
                        links={
                            **_log_links("The first log's", _FIRST_LOG, "$response.body#/0/size"),
                            "consistency": _link(
                                "getConsistencyProof",
                                "The first log's tree from size 1 to its size",
                                old=1,
                                new="$response.body#/0/size",
                                **_FIRST_LOG,
                            ),
                            "inclusion": _link(
                                "getInclusionProof",
                                "The first log's first leaf in its tree",
                                index=0,
                                size="$response.body#/0/size",
                                **_FIRST_LOG,
                            ),
                        },
                    ),
                    **_problems(400, 401, 417, 429),
                },
            }
        },
        base + "/checkpoint": {
            "parameters": _log_params(),
            "get": {
                "operationId": "getCheckpoint",
                "summary": "The newest checkpoint for which the node holds every leaf: a C2SP"
                " signed note.",
                "responses": {
                    **_ok("The signed note", TEXT, {"type": "string"}),
                    **_problems(*log_errors),
                },
            },
        },
        base + "/batches": {
            "parameters": _log_params(),
            "get": {
                "operationId": "getBatches",
                "summary": "Batches start..min(end, size)-1 (possibly fewer: the page cap),"
                " verbatim, each followed by a newline.",
                "parameters": [
                    _query("start", _SIZE, "The first index (at most the size)", required=True),
                    _query("end", _SIZE, "One past the last index; default: the size"),
                ],
                "responses": {
                    **_ok("Batch bytes, one a line", NDJSON, {"type": "string"}),
                    **_problems(*log_errors),
                },
            },
            "post": {
                "operationId": "pushBatches",
                "summary": "Push: the log's org uploads batches S..M-1 with its checkpoint for"
                " some N >= M and, where M < N, the consistency proof from M to N.",
                "parameters": [
                    {
                        "name": CHECKPOINT_HEADER,
                        "in": "header",
                        "required": True,
                        "description": "base64 of the org's signed checkpoint note",
                        "schema": _BASE64,
                    },
                    {
                        "name": PROOF_HEADER,
                        "in": "header",
                        "required": False,
                        "description": f"the consistency proof from M to N: comma-separated"
                        f" base64 hashes (at most {MAX_PROOF_HASHES}); exactly when M < N",
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {NDJSON: {"schema": {"type": "string"}}},
                },
                "responses": {
                    **_ok(
                        "Appended; the log now holds `size` batches",
                        JSON,
                        _ref("PushResult"),
                        status=201,
                        links=_log_links("The pushed log's", _PUSHED_LOG, "$response.body#/size"),
                    ),
                    **_problems(400, 401, 403, 408, 409, 413, 417, 422, 429),
                },
            },
        },
        base + "/proof/inclusion": {
            "parameters": _log_params(),
            "get": {
                "operationId": "getInclusionProof",
                "parameters": [
                    _query("index", _SIZE, "The leaf (below size)", required=True),
                    _query("size", _SIZE, "The tree size (at most the log's)", required=True),
                ],
                "responses": {**proof, **_problems(*log_errors)},
            },
        },
        base + "/proof/consistency": {
            "parameters": _log_params(),
            "get": {
                "operationId": "getConsistencyProof",
                "parameters": [
                    _query("old", _SIZE, "The old size (from 1)", required=True),
                    _query("new", _SIZE, "The new size (at most the log's)", required=True),
                ],
                "responses": {**proof, **_problems(*log_errors)},
            },
        },
    }


def _peer_schemas() -> dict[str, Schema]:
    return {
        "Problem": _PROBLEM,
        "NodeInfo": _object(
            {
                "org": _ORG,
                "keys": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "protocol": {"const": PROTOCOL_NAME},
            }
        ),
        "LogSummary": _object(
            {
                "org": _ORG,
                "collection": _COLLECTION,
                "size": _SIZE,
                "checkpoint": {"type": "string", "description": "the signed note"},
            }
        ),
        "Proof": _object(
            {"hashes": {"type": "array", "items": _BASE64, "maxItems": MAX_PROOF_HASHES}}
        ),
        "PushResult": _object({"size": _SIZE}),
    }


@cache
def peer_document() -> dict[str, Any]:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "hashfed peer API",
            "version": DOC_VERSION,
            "description": "What nodes of a hashfed federation serve each other (PROTOCOL §6):"
            " signed append-only logs of hash batches, their checkpoints and proofs, and push."
            " Every GET also answers HEAD.",
        },
        "servers": [{"url": "/", "description": "the peer listener (`serve --port`)"}],
        "tags": [{"name": "peer", "description": "the peer listener"}],
        "security": _SIGNED,
        "paths": _tag(_peer_paths(), "peer"),
        "components": {
            "schemas": _peer_schemas(),
            "securitySchemes": {
                "signatureInput": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Signature-Input",
                    "description": _SIGNATURE_PROFILE,
                },
                "signature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Signature",
                    "description": "The RFC 9421 signature over the components Signature-Input"
                    " names (Ed25519).",
                },
            },
        },
    }


# -- the local listener -------------------------------------------------------------------


def _hash_ref() -> Schema:
    return _object({"type": {"type": "string"}, "value": {"type": "string"}})


_DISTANCE = {"type": "integer", "minimum": 0, "maximum": MAX_DISTANCE}
_CURSOR = {"type": "string", "pattern": r"^(0|[1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,5})$"}


def _local_paths() -> dict[str, Schema]:
    token = (401, 417)
    return {
        OPENAPI_PATH: {
            "get": {
                "operationId": "getLocalOpenAPI",
                "summary": "This document.",
                "responses": {**_OPENAPI_RESPONSE, **_problems(*token)},
            }
        },
        "/v1/hashes/{type}/{value}": {
            "parameters": [
                _path_param("type", _HASH_TYPE),
                _path_param("value", {"type": "string", "examples": ["0" * 32]}),
            ],
            "get": {
                "operationId": "getHash",
                "summary": "The merged record of one hash (as `lookup --json`); with"
                " `distance` (pdq only), every PDQ record within that many bits.",
                "parameters": [_query("distance", _DISTANCE, "pdq only: Hamming distance")],
                "responses": {
                    "200": {
                        "description": "The record, or the near matches with `distance`",
                        "content": {
                            JSON: {"schema": {"oneOf": [_ref("Record"), _ref("NearMatches")]}}
                        },
                    },
                    **_problems(400, 404, *token),
                },
            },
        },
        "/v1/lookup": {
            "post": {
                "operationId": "lookup",
                "summary": f"Up to {MAX_LOOKUP_HASHES} hashes at once, answered in order: a"
                " record (or null), near matches with `distance`, or active state with"
                ' `fields: ["active"]`.',
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("LookupRequest")}},
                },
                "responses": {
                    **_ok("One result a hash, in order", JSON, _ref("LookupResults")),
                    **_problems(400, 408, 413, *token),
                },
            }
        },
        "/v1/changes": {
            "get": {
                "operationId": "getChanges",
                "summary": "The records whose state changed, in arrival order; ask again"
                " from `next`.",
                "parameters": [
                    _query("after", _CURSOR, "A cursor from a previous page; none: the start"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_CHANGES},
                        f"Records a page, default {DEFAULT_CHANGES}",
                    ),
                ],
                "responses": {
                    **_ok(
                        "A page of changes",
                        JSON,
                        _ref("Changes"),
                        links={
                            "next": _link(
                                "getChanges",
                                "The page after this one",
                                after="$response.body#/next",
                            )
                        },
                    ),
                    **_problems(400, *token),
                },
            }
        },
        "/v1/opinions": {
            "post": {
                "operationId": "postOpinions",
                "summary": "Stage opinions in this node's own log and publish them.",
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("OpinionsRequest")}},
                },
                "responses": {
                    **_ok("Staged and published", JSON, _ref("OpinionsResult"), status=201),
                    **_problems(400, 408, 413, *token),
                },
            }
        },
        "/v1/match": {
            "post": {
                "operationId": "postMatch",
                "summary": "Hash an image or video sent as the body and match its hashes "
                "(the answer of `hashfed match --json` for that file).",
                "parameters": [
                    {"name": "distance", "in": "query", "required": False,
                     "schema": {"type": "string", "pattern": "^(0|[1-9][0-9]?)$"}},
                    {"name": "dihedral", "in": "query", "required": False,
                     "schema": {"enum": ["0", "1"]}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        media: {"schema": {"type": "string", "format": "binary"}}
                        for media in sorted(MATCH_MEDIA_TYPES)
                    },
                },
                "responses": {
                    **_ok("The file's hashes and every match", JSON, {"type": "object"}),
                    **_problems(400, 408, 413, 415, 422, 503, *token),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "getMetrics",
                "summary": "Prometheus metrics, text exposition format.",
                "responses": {
                    **_ok("The metrics", TEXT, {"type": "string"}),
                    **_problems(*token),
                },
            }
        },
    }


def _local_schemas() -> dict[str, Schema]:
    where = {"org": _ORG, "collection": _COLLECTION}
    labels = {"type": "array", "items": {"type": "string", "pattern": _pattern(LABEL_RE)}}
    record = _object(
        {
            "type": _HASH_TYPE,
            "value": {"type": "string", "pattern": "^[0-9a-f]+$"},
            "active": {"type": "boolean"},
            "labels": labels,
            "contributors": {"type": "array", "items": _object({**where, "labels": labels})},
            "opinions": {
                "type": "array",
                "items": _object({**where, "opinion": {"enum": sorted(OPINIONS)}}),
            },
            "retracted_by": {"type": "array", "items": _object(where)},
        }
    )
    # A Record with `distance`, written out: `additionalProperties: false` rules out allOf.
    record_match = {**record, "properties": {**record["properties"], "distance": _DISTANCE}}
    record_match["required"] = [*record["required"], "distance"]
    options = {"distance": _DISTANCE, "fields": {"const": ["active"]}}
    return {
        "Problem": _PROBLEM,
        "Record": record,
        "Match": record_match,
        "NearMatches": _object({"matches": {"type": "array", "items": _ref("Match")}}),
        "LookupRequest": {
            "oneOf": [
                _object(
                    {
                        "hashes": {
                            "type": "array",
                            "items": _hash_ref(),
                            "maxItems": MAX_LOOKUP_HASHES,
                        }
                    },
                    options,
                ),
                _object(
                    {
                        "type": {"type": "string"},
                        "values": {
                            "type": "array",
                            "items": {"type": "string"},
                            "maxItems": MAX_LOOKUP_HASHES,
                        },
                    },
                    options,
                ),
            ]
        },
        "LookupResults": _object(
            {
                "results": {
                    "anyOf": [
                        {
                            "type": "array",
                            "items": {"oneOf": [_ref("Record"), {"type": "null"}]},
                        },
                        {
                            "type": "array",
                            "items": {"type": "array", "items": _ref("Match")},
                        },
                        {"type": "array", "items": {"type": ["boolean", "null"]}},
                    ]
                }
            }
        ),
        "Changes": _object(
            {"changes": {"type": "array", "items": _ref("Record")}, "next": _CURSOR}
        ),
        "OpinionsRequest": _object(
            {
                "opinions": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_OPINIONS,
                    "items": _object(
                        {
                            "type": {"type": "string"},
                            "value": {"type": "string"},
                            "opinion": {"enum": sorted(OPINIONS)},
                        }
                    ),
                }
            },
            {"collection": _COLLECTION},
        ),
        "OpinionsResult": _object(
            {
                "staged": {"type": "integer", "minimum": 1},
                "published": {
                    "type": "array",
                    "items": _object({"log_id": {"type": "string"}, "size": _SIZE}),
                },
            }
        ),
    }


@cache
def local_document() -> dict[str, Any]:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "hashfed local API",
            "version": DOC_VERSION,
            "description": "The node's own listener (`serve --local-port`): lookups for a"
            " matching pipeline, the change feed, opinions, metrics. Not for peers. The"
            " console's HTML pages share the listener and are not described here.",
        },
        "servers": [{"url": "/", "description": "the local listener (`serve --local-port`)"}],
        "tags": [{"name": "local", "description": "the local listener"}],
        "security": [{"bearer": []}],
        "paths": _tag(_local_paths(), "local"),
        "components": {
            "schemas": _local_schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`server.local_token`, when the node has one; without"
                    " one the listener (loopback by default) is open.",
                }
            },
        },
    }


def _tag(paths: dict[str, Schema], tag: str) -> dict[str, Schema]:
    for item in paths.values():
        for key, operation in item.items():
            if key != "parameters":
                operation["tags"] = [tag]
    return paths


# -- serving ------------------------------------------------------------------------------

_BODY = web.AppKey("openapi_body", bytes)


def add_openapi(app: web.Application, document: dict[str, Any]) -> None:
    """Serve ``document`` at ``GET /v1/openapi.json`` (behind the app's own middlewares)."""
    app[_BODY] = json.dumps(document, indent=1).encode()
    app.router.add_get(OPENAPI_PATH, _serve, expect_handler=refuse_expect)


async def _serve(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_BODY], content_type=JSON)
