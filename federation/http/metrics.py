"""Prometheus metrics of one node, at ``GET /metrics`` on the local listener (behind its
bearer token when one is set), in the text exposition format.

A registry per node, never prometheus-client's global one: several nodes may run in one
process (the demo, the tests), and a library must not fill a host program's registry.

Two kinds of series:

- **read from the store at each scrape** (``_StoreCollector``, on a connection of its own,
  in a worker thread): per peer the last success and attempt times, consecutive failures
  and the lag in batches (``report.peer_lags``); evidence held; the store's size on disk;
  per log its served and held size (batches) and the hashes it contributes to the merged
  list; merged records, active and all. A scrape reads what is true now, also after a
  restart, and costs one grouped scan of the merged list (about 0.3 s a million rows);
- **counted by this process** since it started: pull rounds by peer and outcome, their
  duration, entries merged (from the node's ``pull`` events, ``events``), and requests to
  the peer listener by route and status, with the refused ones (4xx) by status and reason
  (from ``observe_middleware``).

Route labels are the route's pattern (``/v1/logs/{org}/{collection}/batches``), never the
raw path, so a client cannot make a new series per request; a path that matches no route
is ``unmatched``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from hashfed.federation.events import LOGGER_NAME, emit, fields_of
from hashfed.federation.http.auth import PEER
from hashfed.federation.http.body import FALLBACK
from hashfed.federation.http.node import NODE, Node
from hashfed.federation.report import parse_timestamp, peer_lags
from hashfed.federation.store import Store

PULL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class NodeMetrics:
    """The metrics of one running node. ``attach()`` starts listening to its events;
    ``detach()`` stops."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.pull_rounds = Counter(
            "hashfed_pull_rounds", "Pull rounds by peer and outcome.", ["peer", "outcome"],
            registry=r,
        )
        self.pull_duration = Histogram(
            "hashfed_pull_duration_seconds", "Duration of pull rounds.", ["peer"],
            buckets=PULL_BUCKETS, registry=r,
        )
        self.pull_entries = Counter(
            "hashfed_pull_entries_merged", "Entries merged by pull rounds.", ["peer"], registry=r
        )
        self.requests = Counter(
            "hashfed_http_requests", "Requests to the peer listener by route and status.",
            ["method", "route", "status"], registry=r,
        )
        self.refused = Counter(
            "hashfed_http_refused", "Refused requests (4xx) to the peer listener.",
            ["status", "reason"], registry=r,
        )
        r.register(_StoreCollector(node))
        self._handler = _EventHandler(self)

    def attach(self) -> None:
        logging.getLogger(LOGGER_NAME).addHandler(self._handler)

    def detach(self) -> None:
        logging.getLogger(LOGGER_NAME).removeHandler(self._handler)

    def on_event(self, name: str, fields: dict[str, object]) -> None:
        if name == "pull":
            peer = str(fields.get("peer"))
            self.pull_rounds.labels(peer, str(fields.get("outcome"))).inc()
            duration = fields.get("duration_s")
            if isinstance(duration, (int, float)):
                self.pull_duration.labels(peer).observe(duration)
            entries = fields.get("entries")
            if isinstance(entries, int) and entries > 0:
                self.pull_entries.labels(peer).inc(entries)

    async def render(self) -> bytes:
        # The store collector reads SQLite and stats files: off the event loop.
        return await asyncio.to_thread(generate_latest, self.registry)


class _EventHandler(logging.Handler):
    """Feeds this node's events (``node`` is its org) to its metrics."""

    def __init__(self, metrics: NodeMetrics) -> None:
        super().__init__(logging.DEBUG)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        fields = fields_of(record)
        if fields.get("node") == self.metrics.node.org:
            self.metrics.on_event(record.getMessage(), fields)


class _StoreCollector(Collector):
    def __init__(self, node: Node) -> None:
        self.node = node

    def describe(self) -> list:
        return []  # what collect() yields depends on the store; nothing to check up front

    def collect(self) -> Iterator[GaugeMetricFamily]:
        node = self.node
        with Store(node.home.db_path) as store:
            lags = peer_lags(store, node.org, node.clock())
            logs = store.logs.all()
            hashes = dict(
                store.conn.execute("SELECT log, count(*) FROM contributions GROUP BY log")
            )
            active, total = store.merged.count()
            evidence = len(store.evidence.all())
        success = GaugeMetricFamily(
            "hashfed_peer_last_success_timestamp_seconds",
            "When the last pull round without a failure ended.", labels=["peer"],
        )
        attempt = GaugeMetricFamily(
            "hashfed_peer_last_attempt_timestamp_seconds",
            "When the last pull round ended.", labels=["peer"],
        )
        failures = GaugeMetricFamily(
            "hashfed_peer_consecutive_failures",
            "Pull rounds in a row that failed (0 after a good one).", labels=["peer"],
        )
        lag = GaugeMetricFamily(
            "hashfed_peer_lag_batches",
            "Batches the peer last listed that this node does not serve yet.", labels=["peer"],
        )
        for p in lags:
            if p.last_success is not None:
                success.add_metric([p.org], parse_timestamp(p.last_success))
            if p.last_attempt is not None:
                attempt.add_metric([p.org], parse_timestamp(p.last_attempt))
            failures.add_metric([p.org], p.failures)
            lag.add_metric([p.org], p.lag_batches)
        yield from (success, attempt, failures, lag)

        size = GaugeMetricFamily(
            "hashfed_log_size_batches", "Batches of a log this node serves.", labels=["log", "own"]
        )
        held = GaugeMetricFamily(
            "hashfed_log_held_batches", "Batches of a log this node stores.", labels=["log"]
        )
        contributed = GaugeMetricFamily(
            "hashfed_log_hashes", "Hashes a log adds, retracts or gives an opinion on.",
            labels=["log"],
        )
        for log in logs:
            size.add_metric([log.log_id, str(log.own).lower()], log.size)
            held.add_metric([log.log_id], log.held)
            contributed.add_metric([log.log_id], hashes.get(log.id, 0))
        yield from (size, held, contributed)

        records = GaugeMetricFamily(
            "hashfed_merged_records", "Records of the merged list.", labels=["state"]
        )
        records.add_metric(["active"], active)
        records.add_metric(["all"], total)
        yield records
        yield GaugeMetricFamily(
            "hashfed_evidence", "Pieces of evidence of equivocation held.", value=evidence
        )
        db = node.home.db_path
        on_disk = sum(
            path.stat().st_size
            for path in (db, db.with_name(db.name + "-wal"))
            if path.exists()
        )
        yield GaugeMetricFamily(
            "hashfed_store_bytes", "Size of the store's files (database and WAL).", value=on_disk
        )


METRICS = web.AppKey("metrics", NodeMetrics)


@web.middleware
async def observe_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Outermost on the peer app: counts every answer by route and status, and logs a
    ``refused`` event for each 4xx (its status and problem type, never a header), and a
    ``push`` event for each push that was stored."""
    response = await handler(request)
    status = response.status
    resource = request.match_info.route.resource
    matched = resource is not None and resource.name != FALLBACK
    route = resource.canonical if matched else "unmatched"
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.requests.labels(request.method, route, str(status)).inc()
    node = request.app[NODE].org
    if 400 <= status < 500:
        reason = _problem_type(response)
        if metrics is not None:
            metrics.refused.labels(str(status), reason).inc()
        emit(
            "refused",
            node=node,
            status=status,
            reason=reason,
            method=request.method,
            route=route,
            peer=request.get(PEER),
            remote=request.remote,
        )
        if reason == "equivocation":
            emit("evidence", logging.WARNING, node=node, source=f"push by {request.get(PEER)}",
                 kind="equivocation", log=_log_of(request))
    elif request.method == "POST" and route.endswith("/batches") and status < 300:
        size = _answer_field(response, "size")
        emit("push", node=node, peer=request.get(PEER), log=_log_of(request), size=size)
    return response


def _log_of(request: web.Request) -> str | None:
    info = request.match_info
    return f"{info['org']}/{info['collection']}" if "org" in info and "collection" in info else None


def _answer_field(response: web.StreamResponse, name: str) -> object:
    body = getattr(response, "body", None)
    if not isinstance(body, bytes) or len(body) > 65536:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value.get(name) if isinstance(value, dict) else None


def _problem_type(response: web.StreamResponse) -> str:
    """The slug of a problem+json answer (``urn:hashfed:problem:SLUG``), else the status."""
    kind = _answer_field(response, "type")
    if isinstance(kind, str):
        return kind.rsplit(":", 1)[-1][:64]
    return f"http-{response.status}"


async def metrics_handler(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    body = await metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
