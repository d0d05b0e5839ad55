"""Checking a real answer against the node's OpenAPI documents (``federation.http.openapi``):
the status is documented for the operation, the media type is one it names, and a JSON
body validates against its schema (JSON Schema 2020-12, as OpenAPI 3.1 uses, by
``jsonschema`` with the whole document as the resource its ``$ref``s resolve in)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:hashfed:openapi"


def _pointer(*parts: str) -> str:
    return "/".join(quote(p.replace("~", "~0").replace("/", "~1"), safe="") for p in parts)


def operation(doc: dict[str, Any], method: str, template: str) -> dict[str, Any]:
    item = doc["paths"].get(template)
    assert item is not None, f"{template} is not in the document"
    op = item.get(method.lower())
    assert op is not None, f"{method} {template} is not in the document"
    return op


def _validate(doc: dict[str, Any], ref: str, value: object, where: str) -> None:
    registry = Registry().with_resource(
        DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    validator = Draft202012Validator({"$ref": DOC_URI + ref}, registry=registry)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    assert not errors, f"{where}: {errors[0].message} at {list(errors[0].path)}"


def check_problem(doc: dict[str, Any], content_type: str, body: bytes) -> None:
    """An error that belongs to no operation (405) is still a ``Problem``."""
    assert content_type.split(";")[0].strip() == "application/problem+json", content_type
    _validate(doc, "#/components/schemas/Problem", json.loads(body), "problem")


def check_answer(
    doc: dict[str, Any], method: str, template: str, status: int, content_type: str, body: bytes
) -> None:
    """Fail unless (status, content type, body) is an answer the document allows."""
    op = operation(doc, method, template)
    response = op["responses"].get(str(status))
    assert response is not None, f"{method} {template} answered {status}: not documented"
    media_type = content_type.split(";")[0].strip()
    content = response.get("content", {})
    assert media_type in content, f"{method} {template} {status}: {media_type} not documented"
    if media_type != "application/json" and not media_type.endswith("+json"):
        body.decode("utf-8")  # text/plain and ndjson bodies are UTF-8 text
        return
    ref = "#/" + _pointer(
        "paths", template, method.lower(), "responses", str(status), "content", media_type, "schema"
    )
    _validate(doc, ref, json.loads(body), f"{method} {template} {status}")
