"""``python -m bench [--n N] [--runs R] [--json FILE]``: hashfed at real sizes.

Every case runs the real thing: the ``hashfed`` command line in child processes, real
servers on 127.0.0.1, real SQLite files in a temporary folder. Each case runs ``--runs``
times (at least 3) and the median is reported, so figures from a shared, noisy machine
are comparable; the governing figures are ratios to the floor measured in the same run.

Cases (see BENCHMARKS.md for targets):
    floor        N rows straight into a fresh SQLite table, 10,000-row sorted chunks
    publish      ``hashfed import`` + ``hashfed publish`` of N entries
    full sync    a fresh peer's ``hashfed pull`` of the N-entry log over loopback HTTP
    incremental  one pull round after the publisher adds a batch of 1,000
    lookup       the lookup API: 16 concurrent clients; and a bulk lookup of 100,000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.data import sample_rows, write_csv
from hashfed.federation.home import open_home
from hashfed.federation.sync.rounds import pull_peer

PUBLISHER, READER = "publisher.example", "reader.example"


def hashfed(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hashfed.federation.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        check=check,
    )


def timed_hashfed(home: Path, *args: str) -> tuple[float, int]:
    """Run ``hashfed --home HOME ARGS`` in a child to completion: (wall seconds, the
    child's own peak RSS in bytes, as ``bench.peak`` reports it)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.peak", "--home", str(home), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"hashfed {' '.join(args)} failed: {done.stderr}")
    match = re.search(r"peak_rss_bytes=(\d+)", done.stderr)
    if not match:
        raise RuntimeError(f"no peak RSS reported: {done.stderr}")
    return elapsed, int(match.group(1))


class Server:
    """``hashfed serve`` in a child process; ``url`` (and ``lookup_url``) once it is up."""

    def __init__(self, home: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hashfed.federation.cli", "--home", str(home), "serve",
             "--host", "127.0.0.1", "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        try:
            self.url = self._line(r"serving \S+ at (\S+)")
            self.lookup_url = self._line(r"lookup API at (\S+)") if "--local-port" in extra else ""
        except BaseException:
            self.stop()
            raise

    def _line(self, pattern: str) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(pattern, line)
        if not match:
            raise RuntimeError(f"server said {line!r}")
        return match.group(1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def case_floor(folder: Path, rows: list[tuple[str, str, str]]) -> float:
    path = folder / "floor.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute(
        "CREATE TABLE hashes (type TEXT, value TEXT, labels TEXT, PRIMARY KEY (type, value))"
    )
    for at in range(0, len(rows), 10_000):
        chunk = sorted(rows[at : at + 10_000])
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO hashes VALUES (?, ?, ?)", chunk)
        conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - started


def case_publish(folder: Path, csv_path: Path, run: int) -> tuple[float, Path]:
    home = folder / f"publisher-{run}"
    hashfed(home, "init", "--org", PUBLISHER)
    started = time.perf_counter()
    hashfed(home, "import", str(csv_path))
    hashfed(home, "publish")
    return time.perf_counter() - started, home


def vkey(home: Path) -> str:
    return hashfed(home, "keys", "list").stdout.split()[0]


def case_full_sync(folder: Path, publisher: Path, url: str, run: int) -> tuple[float, int, Path]:
    reader = folder / f"reader-{run}"
    hashfed(reader, "init", "--org", READER)
    hashfed(reader, "peer", "add", PUBLISHER, "--url", url, "--key", vkey(publisher))
    hashfed(publisher, "peer", "add", READER, "--key", vkey(reader), "--grant", "default")
    seconds, rss = timed_hashfed(reader, "pull")
    return seconds, rss, reader


async def _incremental_round(reader: Path) -> float:
    home = open_home(reader)
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        results = await pull_peer(str(home.db_path), home.config, home.signers, session, PUBLISHER)
        elapsed = time.perf_counter() - started
    if not any(r.status == "updated" for r in results):
        raise RuntimeError(f"incremental round pulled nothing: {results}")
    return elapsed


def case_incremental(folder: Path, publisher: Path, reader: Path, run: int) -> float:
    batch = folder / f"incremental-{run}.csv"
    write_csv(batch, 1000, seed=f"incremental-{run}")
    hashfed(publisher, "import", str(batch))
    hashfed(publisher, "publish")
    return asyncio.run(_incremental_round(reader))


def case_lookup(folder: Path, reader: Path, rows: list[tuple[str, str, str]], runs: int) -> dict:
    server = Server(reader, "--local-port", "0")
    try:
        wanted = folder / "lookup-hashes.json"
        step = max(1, len(rows) // 20_000)
        wanted.write_text(json.dumps([[t, v] for t, v, _ in rows[::step]]))
        exact = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, "-m", "bench.loadgen", server.lookup_url, str(wanted),
                 "--concurrency", "16", "--requests", "20000"],
                capture_output=True, text=True, check=True,
            )
            exact.append(json.loads(done.stdout))
        bulk = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, "-m", "bench.loadgen", server.lookup_url, str(wanted),
                 "--bulk", "100000"],
                capture_output=True, text=True, check=True,
            )
            bulk.append(json.loads(done.stdout))
        active = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, "-m", "bench.loadgen", server.lookup_url, str(wanted),
                 "--bulk", "100000", "--active"],
                capture_output=True, text=True, check=True,
            )
            active.append(json.loads(done.stdout))
    finally:
        server.stop()
    return {
        "requests_per_s": statistics.median(r["requests_per_s"] for r in exact),
        "p50_ms": statistics.median(r["p50_ms"] for r in exact),
        "p99_ms": statistics.median(r["p99_ms"] for r in exact),
        "bulk_hashes_per_s": statistics.median(r["hashes_per_s"] for r in bulk),
        "bulk_active_per_s": statistics.median(r["hashes_per_s"] for r in active),
    }


SMALL_N = 100_000


def case_small_rss(folder: Path, n: int, runs: int) -> float:
    """The puller's peak RSS for a log of 100,000 entries, to compare with N's: memory
    must not grow with the log. Median of ``runs`` fresh pulls."""
    csv_path = folder / "entries-small.csv"
    write_csv(csv_path, SMALL_N, seed="small")
    home = folder / "publisher-small"
    hashfed(home, "init", "--org", PUBLISHER)
    hashfed(home, "import", str(csv_path))
    hashfed(home, "publish")
    server = Server(home)
    try:
        peaks = [case_full_sync(folder, home, server.url, 100 + i)[1] for i in range(runs)]
    finally:
        server.stop()
    return statistics.median(peaks)


def run(n: int, runs: int, folder: Path) -> dict:
    print(f"hashfed bench: N = {n:,}, {runs} runs per case, on {platform.node() and 'this machine'}",
          file=sys.stderr)
    rows = list(sample_rows(n))
    csv_path = folder / "entries.csv"
    write_csv(csv_path, n)

    floor = [case_floor(folder, rows) for _ in range(runs)]
    print(f"  floor: {statistics.median(floor):.2f} s", file=sys.stderr)

    publish_times = []
    publisher = folder
    for i in range(runs):
        seconds, publisher = case_publish(folder, csv_path, i)
        publish_times.append(seconds)
    print(f"  publish: {statistics.median(publish_times):.2f} s", file=sys.stderr)

    server = Server(publisher)
    try:
        sync_times, rss = [], []
        reader = folder
        for i in range(runs):
            seconds, peak, reader = case_full_sync(folder, publisher, server.url, i)
            sync_times.append(seconds)
            rss.append(peak)
        print(f"  full sync: {statistics.median(sync_times):.2f} s", file=sys.stderr)
        incremental = [case_incremental(folder, publisher, reader, i) for i in range(max(runs, 5))]
        print(f"  incremental: {statistics.median(incremental) * 1000:.0f} ms", file=sys.stderr)
    finally:
        server.stop()
    lookup = case_lookup(folder, reader, rows, runs)
    small_rss = case_small_rss(folder, n, runs) if n > SMALL_N else None
    if small_rss is not None:
        print(f"  puller peak RSS: {statistics.median(rss) / 1e6:.0f} MB at N, "
              f"{small_rss / 1e6:.0f} MB at {SMALL_N:,}", file=sys.stderr)

    floor_s = statistics.median(floor)
    publish_s = statistics.median(publish_times)
    sync_s = statistics.median(sync_times)
    return {
        "n": n,
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
        },
        "floor": {"seconds": floor_s, "entries_per_s": n / floor_s},
        "publish": {"seconds": publish_s, "entries_per_s": n / publish_s, "ratio_to_floor": publish_s / floor_s},
        "full_sync": {
            "seconds": sync_s,
            "entries_per_s": n / sync_s,
            "ratio_to_floor": sync_s / floor_s,
            "peak_rss_mb": statistics.median(rss) / 1e6,
            "peak_rss_mb_at_100k": small_rss / 1e6 if small_rss else None,
            "rss_growth": statistics.median(rss) / small_rss - 1 if small_rss else None,
        },
        "incremental": {"median_ms": statistics.median(incremental) * 1000},
        "lookup": lookup,
    }


def _small_rss(r: dict) -> str:
    small = r["full_sync"]["peak_rss_mb_at_100k"]
    if small is None:
        return f"(N ≤ {SMALL_N:,}: no comparison)"
    return f"{small:.0f} MB at {SMALL_N:,} ({r['full_sync']['rss_growth']:+.0%})"


def table(result: dict) -> str:
    r = result
    lines = [
        f"N = {r['n']:,}; median of {r['runs']} runs; {r['machine']['cpus']} cores, "
        f"Python {r['machine']['python']}, {r['machine']['platform']}",
        "",
        "| case | figure | target |",
        "|---|---|---|",
        f"| floor (SQLite, sorted 10k chunks) | {r['floor']['seconds']:.2f} s, "
        f"{r['floor']['entries_per_s']:,.0f} rows/s | |",
        f"| import + publish | {r['publish']['seconds']:.2f} s, "
        f"{r['publish']['entries_per_s']:,.0f} entries/s, **{r['publish']['ratio_to_floor']:.2f}× floor** | ≤ 2.0× |",
        f"| full sync | {r['full_sync']['seconds']:.2f} s, {r['full_sync']['entries_per_s']:,.0f} entries/s, "
        f"**{r['full_sync']['ratio_to_floor']:.2f}× floor** | ≤ 2.0× |",
        f"| puller peak RSS | {r['full_sync']['peak_rss_mb']:.0f} MB at N; {_small_rss(r)} "
        "| ≤ 300 MB, within 20% |",
        f"| incremental pull round (+1,000) | {r['incremental']['median_ms']:.0f} ms | ≤ 100 ms |",
        f"| exact lookup, 16 clients | {r['lookup']['requests_per_s']:,.0f} req/s, "
        f"p50 {r['lookup']['p50_ms']:.2f} ms, p99 {r['lookup']['p99_ms']:.2f} ms | ≥ 8,000 req/s |",
        f"| bulk lookup, records (100,000) | {r['lookup']['bulk_hashes_per_s']:,.0f} hashes/s | |",
        f"| bulk check, `\"fields\": [\"active\"]` (100,000) | "
        f"{r['lookup']['bulk_active_per_s']:,.0f} hashes/s | ≥ 500,000 /s |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="entries (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (at least 3)")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    if args.n < 10_000:
        parser.error("--n must be at least 10,000")
    if args.keep:
        folder = Path(args.keep)
        folder.mkdir(parents=True, exist_ok=True)
        result = run(args.n, args.runs, folder)
    else:
        with tempfile.TemporaryDirectory(prefix="hashfed-bench-") as tmp:
            result = run(args.n, args.runs, Path(tmp))
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
