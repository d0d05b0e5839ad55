"""``python -m bench.fuzz_api [--requests N]``: schemathesis against a real node.

A node (``acme.example``, with published logs, a trusted and granted reader, an NGO whose
pushes it accepts) runs its peer and local listeners on 127.0.0.1 in a thread of its own;
schemathesis generates requests from the node's own OpenAPI documents
(``federation.http.openapi``) for every operation, data that fits the schema and data that
does not, sent with valid credentials (an RFC 9421 signature by the reader's key on the
peer listener, the bearer token on the local one) and without. Every answer must:

- never be a 5xx;
- be one the document allows: status, media type, headers and body schema;
- be 401 when a signed (or token) route is asked without credentials;
- leave the store unchanged when it refuses (a 4xx): every table, compared row by row.

Then stateful runs: schemathesis follows the documents' links from answer to request (a
listing to the first log's checkpoint, batches and proofs; a push to the pushed log; a
page of changes to the next page), in sequences of a few requests, checked the same way.

It prints the requests sent, a count per status, and each failure with the request that
caused it. ``tests/integration/test_schemathesis.py`` runs a few hundred of these.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, reject, seed, settings
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis.generation import GenerationMode
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hashfed.federation.home import Home, init_home, open_home
from hashfed.federation.http.openapi import local_document, peer_document
from hashfed.federation.http.service import NodeService
from hashfed.keys import Signer
from hashfed.keys.errors import HashfedError
from hashfed.protocol.entries import Entry
from hashfed.protocol.httpsig import RequestTarget, authority_of, new_nonce, sign_request
from tests.helpers import configure, db_snapshot, md5, pdq, stage_and_publish, trust

HOST, READER, NGO = "acme.example", "reader.example", "ngo.example"
TOKEN = "fuzz-local-token"
OPEN_ROUTES = {("GET", "/v1/node")}
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:  # noqa: ARG001 (the serializer signature)
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(str(value), "utf-8")


class SignedAuth(requests.auth.AuthBase):
    """Signs each prepared request exactly as sent (raw path and query, body digest), as
    a peer of the node does (PROTOCOL §6)."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self.unsignable = 0

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        import time

        body = r.body.encode() if isinstance(r.body, str) else r.body
        if r.method not in ("GET", "HEAD") and body is None:
            body = b""
        try:
            target = RequestTarget.from_raw_target(r.method or "", authority_of(r.url or ""), r.path_url)
            headers = sign_request(
                self.signer, target, body, created=int(time.time()), nonce=new_nonce(os.urandom(16))
            )
        except HashfedError:
            self.unsignable += 1  # a target our own signer refuses: sent unsigned (401)
            return r
        r.headers.update(headers)
        if body == b"" and r.body is None:
            r.body = b""
            r.headers["Content-Length"] = "0"
        return r


class TokenAuth(requests.auth.AuthBase):
    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {TOKEN}"
        return r


@dataclass
class FuzzNode:
    """A node to fuzz, running in a thread with its own event loop."""

    home: Home
    reader: Home
    peer_url: str = ""
    local_url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _service: NodeService | None = None

    @classmethod
    def build(cls, folder: Path) -> FuzzNode:
        homes = {}
        for org in (HOST, READER, NGO):
            init_home(folder / org, org)
            homes[org] = open_home(folder / org)
        limits = {
            "requests_per_second_per_key": 1e6, "burst_per_key": 1_000_000,
            "requests_per_second_per_address": 1e6, "burst_per_address": 1_000_000,
        }
        host = configure(homes[HOST], limits=limits, server={"local_token": TOKEN})
        stage_and_publish(host, [Entry.add("md5", md5(n), [f"acme:{n}"]) for n in range(5)])
        stage_and_publish(host, [Entry.add("pdq", pdq(n), ["acme:pdq"]) for n in range(3)])
        stage_and_publish(host, [Entry.opine("md5", md5(1), "false_positive")])
        trust(host, homes[READER])
        with host.open_store() as store:
            store.peers.grant(READER, f"{HOST}/default")
            store.peers.add(
                NGO, url=None, vkeys=[s.vkey() for s in homes[NGO].signers],
                accept_push=True, ca_file=None, now="2026-11-26T00:00:00Z",
            )
        return cls(host, homes[READER])

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                service = NodeService(self.home, host="127.0.0.1", port=0, local_port=0, sync=False)
                loop.run_until_complete(service.start())
                self._service = service
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            self.peer_url = service.url
            self.local_url = f"http://127.0.0.1:{service.local_bound_port}"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(service.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fuzz-node", daemon=True)
        self._thread.start()
        ready.wait(60)
        if failure:
            raise failure[0]

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(60)


@contextmanager
def running_node() -> Iterator[FuzzNode]:
    with tempfile.TemporaryDirectory(prefix="hashfed-fuzz-") as folder:
        node = FuzzNode.build(Path(folder))
        node.start()
        try:
            yield node
        finally:
            node.stop()


@dataclass
class Tally:
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    reached: collections.Counter[str] = field(default_factory=collections.Counter)  # "label status"
    failures: dict[str, str] = field(default_factory=dict)  # first failure per kind
    failure_count: int = 0
    requests: int = 0
    rounds_cut: int = 0  # stateful rounds Hypothesis stopped early (see run_stateful)

    def fail(self, kind: str, text: str) -> None:
        self.failure_count += 1
        self.failures.setdefault(kind, text)


def _check(node: FuzzNode, tally: Tally, case: Any, base_url: str, session: requests.Session, credentials: bool) -> Any:
    """Send ``case`` and check its answer; the response, or None when it cannot be sent."""
    before = db_snapshot(node.home.db_path)
    try:
        response = case.call(base_url=base_url, session=session, timeout=30, allow_redirects=False)
    except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, UnicodeError, ValueError):
        return None  # requests cannot put this on the wire at all
    tally.requests += 1
    status = response.status_code
    tally.statuses[status] += 1
    tally.reached[f"{case.operation.label} {status}"] += 1
    label = f"{case.operation.label} ({'signed' if credentials else 'anonymous'})"
    repro = case.as_curl_command() if hasattr(case, "as_curl_command") else repr(case)
    if status >= 500:
        tally.fail(f"{label}: {status}", f"{repro}\n-> {status} {response.text[:300]}")
    open_route = (case.method.upper(), case.operation.path) in OPEN_ROUTES
    if not credentials and not open_route and status != 401:
        tally.fail(f"{label}: {status} without credentials", f"{repro}\n-> {status} {response.text[:300]}")
    if status >= 400 and db_snapshot(node.home.db_path) != before:
        tally.fail(f"{label}: refused ({status}) but the store changed", repro)
    try:
        case.validate_response(response, checks=CHECKS)
    except (Exception, BaseExceptionGroup) as exc:  # a group of the failed checks
        first = str(exc).strip().splitlines()
        tally.fail(f"{label}: {status} breaks the document: {first[0] if first else exc!r}",
                   f"{repro}\n-> {status} {response.text[:300]}\n{str(exc)[:1500]}")
    return response


def run(node: FuzzNode, total: int, *, rounds_seed: int = 0, documents: tuple[dict, dict] | None = None) -> Tally:
    """Send about ``total`` generated requests, spread over every operation, both
    generation modes and with and without credentials. ``documents``: (peer, local),
    by default the node's own."""
    peer_doc, local_doc = documents or (peer_document(), local_document())
    tally = Tally()
    signed, token, anonymous = _sessions(node)
    listeners = [
        (schemathesis.openapi.from_dict(peer_doc), node.peer_url, signed),
        (schemathesis.openapi.from_dict(local_doc), node.local_url, token),
    ]
    combos = []
    for schema, url, session in listeners:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                combos.append((operation, mode, url, session, True))
                combos.append((operation, mode, url, anonymous, False))
    round_no = rounds_seed
    while tally.requests < total:
        sent_before = tally.requests
        per_combo = max(1, (total - tally.requests) // len(combos) + 1)
        for operation, mode, url, session, credentials in combos:
            _fuzz_one(node, tally, operation, mode, url, session, credentials, per_combo, round_no)
            if tally.requests >= total:
                break
        round_no += 1
        if tally.requests == sent_before:
            break
    return tally


def _sessions(node: FuzzNode) -> tuple[requests.Session, requests.Session, requests.Session]:
    """(signed by the reader's key, with the local token, with nothing)."""
    signed = requests.Session()
    signed.auth = SignedAuth(node.reader.signers[0])
    token = requests.Session()
    token.auth = TokenAuth()
    return signed, token, requests.Session()


def run_stateful(node: FuzzNode, scenarios: int, *, steps: int = 6, tally: Tally | None = None,
                 documents: tuple[dict, dict] | None = None) -> Tally:
    """Stateful runs: schemathesis builds a state machine from the documents' links (a
    listing leads to the first log's checkpoint, batches and proofs; a push to the pushed
    log; a page of changes to the next page) and plays ``scenarios`` sequences of up to
    ``steps`` requests each, per listener, with credentials and without; every request is
    checked as in :func:`run`."""
    peer_doc, local_doc = documents or (peer_document(), local_document())
    tally = tally or Tally()
    signed, token, anonymous = _sessions(node)
    for doc, url, session, credentials in (
        (peer_doc, node.peer_url, signed, True),
        (local_doc, node.local_url, token, True),
        (peer_doc, node.peer_url, anonymous, False),
        (local_doc, node.local_url, anonymous, False),
    ):
        machine = schemathesis.openapi.from_dict(doc).as_state_machine()

        class Checked(machine):  # type: ignore[valid-type, misc]
            def step(self, input: StepInput) -> StepOutput:
                response = _check(node, tally, input.case, url, session, credentials)
                if response is None:
                    reject()
                return StepOutput(response, input.case)

        # In rounds, each from its own seed: the node's state changes under the machine
        # (pushes, opinions), so Hypothesis may find a replayed sequence drawing
        # differently and stop that round (FlakyStrategyDefinition): counted, not failed.
        for round_no in range(0, scenarios, _STATEFUL_ROUND):
            random.seed(f"hashfed-stateful-{url}-{credentials}-{round_no}")
            try:
                Checked.run(settings=settings(
                    max_examples=min(_STATEFUL_ROUND, scenarios - round_no),
                    stateful_step_count=steps, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck),
                ))
            except FlakyStrategyDefinition:
                tally.rounds_cut += 1
            except (Exception, BaseExceptionGroup) as exc:  # a finding about the documents
                tally.fail(f"stateful {url}: {type(exc).__name__}",
                           "".join(traceback.format_exception(exc))[-1500:])
    return tally


_STATEFUL_ROUND = 20


def _fuzz_one(node: FuzzNode, tally: Tally, operation: Any, mode: GenerationMode, url: str,
              session: requests.Session, credentials: bool, examples: int, round_no: int) -> None:
    @seed(round_no)
    @settings(
        max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        _check(node, tally, case, url, session, credentials)

    try:
        fuzz()
    except Unsatisfiable:
        pass  # nothing to make invalid (an operation without parameters, negative mode)
    except (Exception, BaseExceptionGroup) as exc:  # generation failed: a finding about the document
        tally.fail(f"{operation.label} {mode}: generation failed: {type(exc).__name__}",
                   "".join(traceback.format_exception(exc))[-1500:])


def report(tally: Tally, out: Any = sys.stdout) -> None:
    print(f"requests sent: {tally.requests}", file=out)
    print("status counts: " + ", ".join(f"{s}: {n}" for s, n in sorted(tally.statuses.items())), file=out)
    print(f"failures: {tally.failure_count} ({len(tally.failures)} kinds)", file=out)
    if tally.rounds_cut:
        print(f"stateful rounds stopped early by Hypothesis (state changed under it): {tally.rounds_cut}", file=out)
    for kind, text in tally.failures.items():
        print(f"\n== {kind}\n{text}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_api", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", type=int, default=100,
                        help="stateful sequences per listener and credential (default 100)")
    args = parser.parse_args(argv)
    with running_node() as node:
        tally = run(node, args.requests, rounds_seed=args.seed)
        stateless = tally.requests
        run_stateful(node, args.scenarios, tally=tally)
    print(f"stateless requests: {stateless}; stateful requests: {tally.requests - stateless}")
    report(tally)
    return 1 if tally.failure_count else 0


if __name__ == "__main__":
    sys.exit(main())
