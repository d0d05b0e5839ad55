"""``python -m bench.crowd [--peers 50] [--entries 1000000] [--procs 5] [--baseline]``: a
crowd of peers pulls one node's log at once, over TLS, while a flood is refused.

Everything is real: the serving node is ``hashfed serve --tls-cert --tls-key`` in a child
process (a CA and a certificate for 127.0.0.1 made at run time, ``bench.pki``), its log
filled through the library's publish path; every puller has its own home and key, is
added on the server with ``peer add ORG --key VKEY --grant default``, adds the server
with ``--ca-file``, and pulls with ``pull_peer`` (what ``hashfed pull`` runs) from its own
loopback address, 127.0.0.2 upwards (``bench.crowd_pull``). The flooder
(``bench.crowd_flood``) sends unsigned, unknown-key and forged requests from 127.0.0.99
as fast as it can, for as long as the pulls run.

Processes. The pullers run as ``--procs`` child processes (default 5, ten pulls each, all
at once in each one's event loop), never in this process, so the server's process is
measured alone. Five and not fifty: the machine has two cores, and fifty runnable
processes would give the server a fiftieth of the CPU by the scheduler's fair share,
measuring the scheduler rather than the server; five keep the server (and the flooder)
a meaningful share while every one of the 50 pulls is still a concurrent client of the
server (its own session, address, key and connections). Memory allows either: each
puller holds two pages in flight, a few tens of MB.

Measured: the server's RSS from ``/proc/PID/status`` every 0.5 s (and its VmHWM at the
end); each puller's finish time from the common start (the spread shows whether anyone
was starved); served entries/s (peers x entries over the last finish); every batch page's
latency as the pullers see it (p50, p99, max); the flood's answers by kind and status.
Checked: every puller finished, every merged list has the same digest as the server's
(``bench.crowd_pull.merged_digest``) with every entry active, the flood got nothing but
401 and 429, and the server's store is unchanged by the run. ``--baseline`` runs the
crowd a second time without the flood (fresh pullers, same server, after the flooded
run, so a warmer cache favours the baseline and the slowdown is not understated).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from bench.__main__ import Server
from bench.crowd_pull import merged_digest
from bench.data import sample_rows
from bench.pki import Pki, make_pki
from hashfed.federation.cli import main as cli
from hashfed.federation.home import init_home, open_home
from hashfed.federation.publish import publish
from hashfed.protocol.entries import Entry

SERVER_ORG = "crowd.example"
FLOOD_ADDRESS = "127.0.0.99"
FIRST_ADDRESS, LAST_ADDRESS = 2, 98  # pullers from 127.0.0.2 up, below the flood's
STAGE_CHUNK = 200_000
CHECKOUT = Path(__file__).resolve().parent.parent


def _hashfed(home: Path, *args: str) -> None:
    """The ``hashfed`` command, run in this process (it is only setup, never timed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli(["--home", str(home), *args])
    if code != 0:
        raise RuntimeError(f"hashfed {' '.join(args)}: {out.getvalue().strip()}")


def fill(home_dir: Path, entries: int, limits: Mapping[str, object]) -> float:
    """The server's home and its log of ``entries`` adds, staged and published through the
    library (``hashfed import`` and ``publish`` minus CSV parsing); returns seconds."""
    started = time.perf_counter()
    init_home(home_dir, SERVER_ORG)
    if limits:
        config = home_dir / "config.toml"
        lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in limits.items())
        config.write_text(config.read_text().replace("[limits]\n", "[limits]\n" + lines, 1))
    home = open_home(home_dir)
    now = datetime.now(UTC).replace(microsecond=0)
    rows = sample_rows(entries, seed="crowd")
    with home.open_store() as store:
        while chunk := [Entry.add(t, v, ls.split(";")) for t, v, ls in islice(rows, STAGE_CHUNK)]:
            with store.transaction():
                store.staging.stage("default", chunk)
            publish(store, home.signers, now=now)
    return time.perf_counter() - started


def server_state(home_dir: Path) -> dict:
    """What must not change while the crowd pulls: the logs (size, root) and the list."""
    import sqlite3

    db = open_home(home_dir).db_path
    digest, active = merged_digest(db)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        logs = [
            [org, collection, size, root.hex()]
            for org, collection, size, root in conn.execute(
                "SELECT org, collection, size, root FROM logs ORDER BY org, collection"
            )
        ]
    finally:
        conn.close()
    return {"logs": logs, "digest": digest, "active": active}


def make_pullers(folder: Path, server_home: Path, peers: int, tag: str) -> list[dict]:
    """``peers`` homes, each with its own key, added (and granted) on the server."""
    pullers = []
    for i in range(peers):
        org = f"{tag}-{i:02d}.example"
        home = folder / org
        signer = init_home(home, org)
        _hashfed(server_home, "peer", "add", org, "--key", signer.vkey(), "--grant", "default")
        pullers.append({"home": str(home), "org": org, "key_id": signer.key_id,
                        "address": f"127.0.0.{FIRST_ADDRESS + i}"})
    return pullers


class RssSampler:
    """A process's VmRSS every ``period_s``, in a thread, until ``stop``."""

    def __init__(self, pid: int, period_s: float = 0.5) -> None:
        self.pid = pid
        self.period_s = period_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError, RuntimeError):
                self.samples.append(proc_status(self.pid, "VmRSS"))
            if self._stop.wait(self.period_s):
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.samples, default=0)


def proc_status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for process {pid}")


def _child(args: list[str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as stderr:  # the child has its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=CHECKOUT,
        )


def _expect(proc: subprocess.Popen[str], word: str, log: Path) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != word:
        proc.kill()
        raise RuntimeError(f"child said {line!r}, not {word!r}: {log.read_text()[-2000:]}")


def crowd(
    folder: Path, url: str, server_vkey: str, pki: Pki, server_pid: int, pullers: list[dict],
    procs: int,
    *, flood: bool, timeout_s: float,
) -> dict:
    """One crowd: the pullers (and the flood) from a common start; raw figures."""
    for p in pullers:
        _hashfed(Path(p["home"]), "peer", "add", SERVER_ORG, "--url", url,
                 "--key", server_vkey, "--ca-file", str(pki.ca))
    children = []
    for n in range(procs):
        spec = folder / f"{pullers[0]['org']}-proc{n}.json"
        spec.write_text(json.dumps({"server_org": SERVER_ORG, "pullers": pullers[n::procs]}))
        log = spec.with_suffix(".log")
        children.append((_child(["bench.crowd_pull", str(spec)], log), log))
    flooder = None
    if flood:
        log = folder / f"{pullers[0]['org']}-flood.log"
        flooder = (_child(["bench.crowd_flood", url, str(pki.ca), f"{SERVER_ORG}/default",
                           pullers[0]["key_id"], "--address", FLOOD_ADDRESS], log), log)
    try:
        for proc, log in [*children, *([flooder] if flooder else [])]:
            _expect(proc, "ready", log)
        sampler = RssSampler(server_pid)
        go = time.time()
        for proc, _ in [*([flooder] if flooder else []), *children]:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        pulls: list[dict] = []
        for proc, log in children:
            out, _ = proc.communicate(timeout=max(1.0, go + timeout_s - time.time()))
            if proc.returncode != 0:
                raise RuntimeError(f"pullers failed: {log.read_text()[-2000:]}")
            pulls += json.loads(out)
        flood_result = None
        if flooder is not None:
            out, _ = flooder[0].communicate("stop\n", timeout=60)
            if flooder[0].returncode != 0:
                raise RuntimeError(f"flooder failed: {flooder[1].read_text()[-2000:]}")
            flood_result = json.loads(out)
        peak_rss = sampler.stop()
    finally:
        for proc, _ in [*children, *([flooder] if flooder else [])]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"go": go, "pulls": pulls, "flood": flood_result, "peak_rss_bytes": peak_rss,
            "rss_samples": len(sampler.samples)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarise(raw: dict, entries: int, expected_digest: str) -> dict:
    pulls = raw["pulls"]
    finishes = sorted(p["finished"] - raw["go"] for p in pulls)
    pages = [s for p in pulls for s in p["page_latencies_s"]]
    failed = [
        p["org"] for p in pulls
        if p["error"] or sum(r["entries"] for r in p["results"]) != entries
        or any(r["status"] != "updated" for r in p["results"])
    ]
    wall = finishes[-1]
    summary = {
        "peers": len(pulls),
        "all_finished": not failed,
        "failed": failed,
        "errors": sorted({p["error"] for p in pulls if p["error"]}),
        "identical_lists": all(p["digest"] == expected_digest for p in pulls),
        "every_entry": all(p["active"] == entries for p in pulls),
        "wall_s": wall,
        "served_entries_per_s": len(pulls) * entries / wall,
        "finish_s": {"min": finishes[0], "median": statistics.median(finishes), "max": wall,
                     "spread": wall - finishes[0]},
        "pages": len(pages),
        "page_latency_ms": {
            "p50": percentile(pages, 0.5) * 1000,
            "p99": percentile(pages, 0.99) * 1000,
            "max": max(pages) * 1000,
        },
        "server_peak_rss_mb": raw["peak_rss_bytes"] / 1e6,
    }
    if raw["flood"] is not None:
        flood = raw["flood"]
        by_status: dict[str, int] = {}
        for key, count in flood["counts"].items():
            status = key.split()[1]
            by_status[status] = by_status.get(status, 0) + count
        summary["flood"] = {**flood, "by_status": by_status,
                            "refused_only": set(by_status) <= {"401", "429"} and bool(by_status)}
    return summary


def crowd_run(
    *, peers: int, entries: int, procs: int, workdir: Path, baseline: bool = False,
    limits: Mapping[str, object] | None = None, timeout_s: float = 3600.0,
) -> dict:
    """The whole benchmark in ``workdir``; the report as a JSON-able dict."""
    if not 1 <= peers <= LAST_ADDRESS - FIRST_ADDRESS + 1:
        raise ValueError(f"peers must be 1 to {LAST_ADDRESS - FIRST_ADDRESS + 1}")
    procs = min(procs, peers)
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    server_home = workdir / "server"
    fill_s = fill(server_home, entries, limits or {})
    say(f"  filled {entries:,} entries in {fill_s:.1f} s")
    pki = make_pki(workdir / "pki")
    sets = [make_pullers(workdir, server_home, peers, "flooded")]
    if baseline:
        sets.append(make_pullers(workdir, server_home, peers, "baseline"))
    before = server_state(server_home)
    server_vkey = open_home(server_home).signers[0].vkey()
    server = Server(server_home, "--tls-cert", str(pki.cert), "--tls-key", str(pki.key))
    try:
        runs = []
        for n, pullers in enumerate(sets):
            raw = crowd(workdir, server.url, server_vkey, pki, server.process.pid, pullers, procs,
                        flood=n == 0, timeout_s=timeout_s)
            runs.append(summarise(raw, entries, before["digest"]))
            say(f"  {'flooded' if n == 0 else 'baseline'}: {runs[-1]['wall_s']:.1f} s")
        server_hwm = proc_status(server.process.pid, "VmHWM")
    finally:
        server.stop()
        if server.process.stdout is not None:
            server.process.stdout.close()
    after = server_state(server_home)
    result = {
        "peers": peers,
        "entries": entries,
        "procs": procs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(terse=True),
                    "load_average": os.getloadavg()},
        "fill_s": fill_s,
        "server_store_unchanged": before == after,
        "server_active_entries": after["active"],
        "server_hwm_mb": server_hwm / 1e6,
        "flooded": runs[0],
    }
    if baseline:
        result["baseline"] = runs[1]
        result["flood_slowdown"] = runs[0]["wall_s"] / runs[1]["wall_s"] - 1
        result["flood_p99_ratio"] = (
            runs[0]["page_latency_ms"]["p99"] / runs[1]["page_latency_ms"]["p99"]
        )
    return result


def table(r: dict) -> str:
    f = r["flooded"]
    lines = [
        f"{r['peers']} peers x {r['entries']:,} entries over TLS, pullers in {r['procs']} "
        f"processes; {r['machine']['cpus']} cores, load average at the end "
        f"{r['machine']['load_average'][0]:.1f}",
        "",
        "| figure | with the flood |" + (" without |" if "baseline" in r else ""),
        "|---|---|" + ("---|" if "baseline" in r else ""),
    ]
    runs = [f] + ([r["baseline"]] if "baseline" in r else [])

    def row(name: str, fmt) -> None:  # type: ignore[no-untyped-def]
        lines.append(f"| {name} | " + " | ".join(fmt(x) for x in runs) + " |")

    row("all finished, identical lists, every entry",
        lambda x: f"{x['all_finished']}, {x['identical_lists']}, {x['every_entry']}")
    row("served", lambda x: f"{x['served_entries_per_s']:,.0f} entries/s ({x['wall_s']:.1f} s)")
    row("finish times (min / median / max)",
        lambda x: f"{x['finish_s']['min']:.1f} / {x['finish_s']['median']:.1f} / "
        f"{x['finish_s']['max']:.1f} s (spread {x['finish_s']['spread']:.1f} s)")
    row("page latency p50 / p99 / max",
        lambda x: f"{x['page_latency_ms']['p50']:.0f} / {x['page_latency_ms']['p99']:.0f} / "
        f"{x['page_latency_ms']['max']:.0f} ms ({x['pages']} pages)")
    row("server peak RSS (0.5 s samples)", lambda x: f"{x['server_peak_rss_mb']:.0f} MB")
    fl = f["flood"]
    lines += [
        "",
        f"server VmHWM {r['server_hwm_mb']:.0f} MB; store unchanged: {r['server_store_unchanged']}",
        f"flood from {fl['address']}: {fl['requests']:,} requests, {fl['requests_per_s']:,.0f}/s; "
        f"by status {fl['by_status']}; refused only: {fl['refused_only']}",
    ]
    if "baseline" in r:
        lines.append(f"the flood slowed the crowd by {r['flood_slowdown']:+.1%} (wall), "
                     f"p99 page latency x{r['flood_p99_ratio']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.crowd", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--peers", type=int, default=50)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--procs", type=int, default=5, help="puller processes (default 5)")
    parser.add_argument("--baseline", action="store_true",
                        help="run the crowd again without the flood")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                        help="a server [limits] setting, e.g. burst_per_address=200")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    limits = {}
    for setting in args.limit:
        name, _, value = setting.partition("=")
        limits[name] = float(value) if "." in value else int(value)
    print(f"hashfed crowd: {args.peers} peers, {args.entries:,} entries", file=sys.stderr)
    run = functools.partial(crowd_run, peers=args.peers, entries=args.entries, procs=args.procs,
                            baseline=args.baseline, limits=limits)
    if args.keep:
        folder = Path(args.keep)
        folder.mkdir(parents=True, exist_ok=False)
        result = run(workdir=folder)
    else:
        with tempfile.TemporaryDirectory(prefix="hashfed-crowd-") as tmp:
            result = run(workdir=Path(tmp))
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    ok = result["server_store_unchanged"] and all(
        x["all_finished"] and x["identical_lists"] and x["every_entry"]
        for x in (result["flooded"], result.get("baseline", result["flooded"]))
    ) and result["flooded"]["flood"]["refused_only"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
