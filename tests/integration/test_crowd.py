"""A crowd pulls one node at once while a flood is refused: a reduced run of
``python -m bench.crowd`` (6 peers, 20,000 entries, TLS, pullers from 127.0.0.2-7 in two
processes, the flood from 127.0.0.99), with the server's per-address limit lowered so the
flood runs into it within seconds.

The lowered limit (a burst of 8, then one a second) also shows that each puller really
connects from its own address: the six pulls together make more requests than one
address's burst, so had they shared an address, some would have been refused and failed.
"""

from __future__ import annotations

from pathlib import Path

from bench.crowd import crowd_run
from bench.crowd_flood import KINDS

ENTRIES = 20_000
LIMITS = {"requests_per_second_per_address": 1.0, "burst_per_address": 8}


def test_crowd_pulls_identical_lists_while_the_flood_is_refused(tmp_path: Path) -> None:
    report = crowd_run(
        peers=6, entries=ENTRIES, procs=2, workdir=tmp_path, limits=LIMITS, timeout_s=60
    )
    crowd = report["flooded"]
    assert crowd["errors"] == [] and crowd["failed"] == []
    assert (crowd["peers"], crowd["all_finished"]) == (6, True)
    assert (crowd["identical_lists"], crowd["every_entry"]) == (True, True)
    assert crowd["pages"] >= 6

    flood = crowd["flood"]
    assert flood["address"] == "127.0.0.99"
    statuses = {key.split()[1] for key in flood["counts"]}
    assert statuses == {"401", "429"}, flood["counts"]
    assert {key.split()[0] for key in flood["counts"]} == set(KINDS)
    assert flood["by_status"]["429"] > flood["by_status"]["401"]

    # Nothing of the flood (its pushes included) was stored; the served log is intact.
    assert report["server_store_unchanged"] is True
    assert report["server_active_entries"] == ENTRIES
