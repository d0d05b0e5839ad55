"""Schemathesis against a real node (``bench.fuzz_api``): a few hundred generated requests
to every operation of both listeners, fitting the documents and not, with valid
credentials (RFC 9421 signatures by a trusted peer's key, the local bearer token) and
without. No 5xx, no answer the documents do not allow, 401 without credentials, and no
store change from a refused request. ``python -m bench.fuzz_api`` runs 10,000."""

from __future__ import annotations

import copy

import pytest

from bench.fuzz_api import run, run_stateful, running_node
from hashfed.federation.http.openapi import local_document, peer_document


@pytest.mark.timeout(120)
def test_generated_requests_break_nothing() -> None:
    with running_node() as node:
        tally = run(node, 300)
    assert tally.requests >= 300
    assert tally.failure_count == 0, tally.failures
    # both kinds of answer were reached: successes and refusals
    assert tally.statuses[200] and tally.statuses[401] and tally.statuses[400]


def test_an_answer_the_document_does_not_allow_is_a_failure() -> None:
    """The harness can fail: against a document whose NodeInfo names another protocol,
    the node's true answer is reported."""
    doc = copy.deepcopy(peer_document())
    doc["components"]["schemas"]["NodeInfo"]["properties"]["protocol"] = {"const": "other/1"}
    with running_node() as node:
        tally = run(node, 30, documents=(doc, local_document()))
    assert any(kind.startswith("GET /v1/node (signed): 200 breaks the document") for kind in tally.failures)


@pytest.mark.timeout(120)
def test_stateful_sequences_follow_the_links_and_break_nothing() -> None:
    """Sequences built from the documents' links: a listing leads to the first log's
    checkpoint and proofs (a 200 there needs the listing's org and collection), a page of
    changes to the next; nothing fails along the way."""
    with running_node() as node:
        tally = run_stateful(node, 15)
    assert tally.failure_count == 0, tally.failures
    assert tally.reached["GET /v1/logs 200"]
    assert tally.reached["GET /v1/logs/{org}/{collection}/checkpoint 200"]
    assert tally.reached["GET /v1/changes 200"] >= 2
