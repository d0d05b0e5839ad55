"""``GET /metrics`` on the local listener, parsed with prometheus-client's own parser and
checked against a node whose state is known (``tests.console_world``), with its real
scheduler running (one round per peer: the interval is 300 s, the jitter 0)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hashfed.federation.events import LOGGER_NAME, fields_of
from tests.console_world import EVIL, OWN_COUNT, TOKEN, A, B, build_world
from tests.helpers import send

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


async def scrape(session: aiohttp.ClientSession, url: str) -> dict:
    reply = await send(session, url, "GET", "/metrics", headers=AUTH)
    assert reply.status == 200, reply
    assert reply.content_type == "text/plain"
    return samples(reply.body.decode())


async def test_metrics_match_the_node(make_home, start_node, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    world, evil = await build_world(make_home, start_node, sync=True)
    url = world.console
    async with aiohttp.ClientSession() as session:
        # the scheduler's first round against each peer: wait for both, by condition
        deadline = time.monotonic() + 30
        while True:
            found = await scrape(session, url)
            rounds = {
                dict(labels)["peer"]
                for (name, labels) in found
                if name == "hashfed_pull_rounds_total"
            }
            if rounds >= {B, EVIL} or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        # a refused request to the peer listener: no signature
        reply = await send(session, world.service.url, "GET", "/v1/logs")
        assert reply.status == 401
        found = await scrape(session, url)
    await evil.cleanup()

    assert value(found, "hashfed_peer_lag_batches", peer=B) == 1
    assert value(found, "hashfed_peer_lag_batches", peer=EVIL) == 0
    assert value(found, "hashfed_peer_consecutive_failures", peer=B) >= 2
    assert value(found, "hashfed_peer_consecutive_failures", peer=EVIL) >= 2
    assert abs(value(found, "hashfed_peer_last_success_timestamp_seconds", peer=B) - time.time()) < 120
    assert ("hashfed_peer_last_success_timestamp_seconds", frozenset({("peer", EVIL)})) not in found
    assert value(found, "hashfed_pull_rounds_total", peer=B, outcome="failed") >= 1
    assert value(found, "hashfed_pull_rounds_total", peer=EVIL, outcome="failed") >= 1
    assert value(found, "hashfed_pull_duration_seconds_count", peer=B) >= 1
    assert value(found, "hashfed_evidence") == 1
    assert value(found, "hashfed_log_size_batches", log=f"{A}/default", own="true") == 2
    assert value(found, "hashfed_log_size_batches", log=f"{B}/default", own="false") == 1
    assert value(found, "hashfed_log_hashes", log=f"{A}/default") == OWN_COUNT
    assert value(found, "hashfed_log_hashes", log=f"{B}/default") == 1
    assert value(found, "hashfed_merged_records", state="active") == OWN_COUNT - 1 + 1
    assert value(found, "hashfed_merged_records", state="all") == OWN_COUNT + 1
    db = world.a.db_path
    assert db.stat().st_size <= value(found, "hashfed_store_bytes") <= sum(
        p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists()
    )
    assert value(found, "hashfed_http_requests_total", method="GET", route="/v1/logs", status="401") == 1
    assert value(found, "hashfed_http_refused_total", status="401", reason="bad-signature") == 1

    # the same things as event lines, with named fields
    events = [(r.getMessage(), fields_of(r)) for r in caplog.records if r.name == LOGGER_NAME]
    refused = [f for name, f in events if name == "refused" and f.get("node") == A]
    assert refused == [
        {"node": A, "status": 401, "reason": "bad-signature", "method": "GET",
         "route": "/v1/logs", "remote": "127.0.0.1"}
    ]
    pulls = [f for name, f in events if name == "pull" and f.get("node") == A]
    assert {f["peer"] for f in pulls} >= {B, EVIL}
    assert all(f["outcome"] == "failed" and f["error"] for f in pulls)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}],
    ids=["no token", "wrong token", "no scheme"],
)
async def test_metrics_need_the_token(make_home, start_node, headers) -> None:  # type: ignore[no-untyped-def]
    world, evil = await build_world(make_home, start_node)
    async with aiohttp.ClientSession() as session:
        reply = await send(session, world.console, "GET", "/metrics", headers=headers)
    await evil.cleanup()
    assert reply.status == 401
    assert reply.json()["type"] == "urn:hashfed:problem:bad-token"


def test_alert_rules_parse() -> None:
    rules = yaml.safe_load((Path(__file__).parents[2] / "docs" / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {"HashfedPeerBehind", "HashfedEquivocation", "HashfedPullFailing"} <= set(alerts)
    for rule in alerts.values():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert "hashfed_" in rule["expr"]
