"""Schemathesis against a real node (``bench.fuzz_api``): a few hundred generated requests
to every operation of both listeners, fitting the documents and not, with valid
credentials (RFC 9421 signatures by a trusted peer's key, the local bearer token) and
without. No 5xx, no answer the documents do not allow, 401 without credentials, and no
store change from a refused request. ``python -m bench.fuzz_api`` runs 10,000."""

from __future__ import annotations

import pytest

from bench.fuzz_api import run, running_node


@pytest.mark.timeout(120)
def test_generated_requests_break_nothing() -> None:
    with running_node() as node:
        tally = run(node, 300)
    assert tally.requests >= 300
    assert tally.failure_count == 0, tally.failures
    # both kinds of answer were reached: successes and refusals
    assert tally.statuses[200] and tally.statuses[401] and tally.statuses[400]
