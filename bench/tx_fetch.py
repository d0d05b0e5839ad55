"""``threatexchange fetch`` of N records through the hashfed extension: wall time and the
CLI's own peak RSS.

    python -m bench.tx_fetch [--n 100000] [--runs 3]

A node (own log of N mixed md5 / sha256 / pdq entries with labels, as ``bench.data`` makes
them) serves its local listener behind a token; each run is a fresh ThreatExchange HOME:
``config extensions add hashfed_tx``, ``config collab edit hashfed``, then the timed
``threatexchange fetch`` (the change feed in pages of 10,000, the CLI's pickle state, and
its index rebuild), then a timed second ``fetch`` with nothing new. The CLI runs in a child
that reports its own VmHWM (a parent's rusage would count the parent's memory at fork).
Figures are medians over the runs.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hashfed_tx
from bench.__main__ import Server, hashfed
from bench.data import write_csv

TOKEN = "bench-token"
# Runs the CLI's main() in this child, then reports the child's own peak RSS.
_CHILD = """
import sys
from threatexchange.cli.main import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
with open("/proc/self/status", encoding="ascii") as status:
    for line in status:
        if line.startswith("VmHWM:"):
            print(f"peak_rss_bytes={int(line.split()[1]) * 1024}", file=sys.stderr)
sys.exit(code)
"""


def tx(home: Path, *args: str) -> tuple[float, int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TX_")}
    env.update(
        HOME=str(home),
        TMPDIR=str(home),
        TX_HASHFED_TOKEN=TOKEN,
        PYTHONPATH=str(Path(hashfed_tx.__file__).parent.parent),
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"threatexchange {' '.join(args)} failed: {done.stderr[-2000:]}")
    peak = re.search(r"peak_rss_bytes=(\d+)", done.stderr)
    return elapsed, int(peak.group(1)) if peak else 0, done.stderr


def node(folder: Path, n: int) -> Path:
    home = folder / "node"
    hashfed(home, "init", "--org", "bench.example")
    config = home / "config.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace('# local_token = "a long random secret"', f'local_token = "{TOKEN}"'),
        encoding="utf-8",
    )
    csv_path = folder / "rows.csv"
    write_csv(csv_path, n)
    started = time.perf_counter()
    hashfed(home, "import", str(csv_path))
    hashfed(home, "publish")
    print(f"node: {n:,} entries imported and published in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    return home


def run(n: int, runs: int, folder: Path) -> dict:
    server = Server(node(folder, n), "--local-port", "0")
    try:
        fetch_s, peak, again_s, vm = [], [], [], []
        for i in range(runs):
            home = folder / f"tx{i}"
            home.mkdir()
            tx(home, "config", "extensions", "add", "hashfed_tx")
            tx(home, "config", "collab", "edit", "hashfed", "bench", "--create",
               "--base-url", server.lookup_url)
            seconds, rss, log = tx(home, "-v", "fetch")
            fetched = sum(int(k) for k in re.findall(r"fetch\(\) with (\d+) new records", log))
            if fetched != n:
                raise RuntimeError(f"fetched {fetched} records, expected {n}")
            fetch_s.append(seconds)
            peak.append(rss)
            again_s.append(tx(home, "fetch")[0])
            state = sum(p.stat().st_size for p in (home / ".threatexchange").rglob("*") if p.is_file())
            vm.append(state)
            print(f"run {i}: fetch {seconds:.1f} s, peak RSS {rss / 2**20:.0f} MiB, "
                  f"again {again_s[-1]:.2f} s, state on disk {state / 2**20:.0f} MiB", file=sys.stderr)
    finally:
        server.stop()
    return {
        "n": n,
        "runs": runs,
        "fetch_s": statistics.median(fetch_s),
        "records_per_s": n / statistics.median(fetch_s),
        "peak_rss_mib": statistics.median(peak) / 2**20,
        "fetch_again_s": statistics.median(again_s),
        "state_mib": statistics.median(vm) / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hashfed-tx-bench-") as tmp:
        result = run(args.n, args.runs, Path(tmp))
    print(
        f"threatexchange fetch of {result['n']:,} records (median of {result['runs']}): "
        f"{result['fetch_s']:.1f} s ({result['records_per_s']:,.0f} records/s), "
        f"peak RSS {result['peak_rss_mib']:.0f} MiB; nothing new: {result['fetch_again_s']:.2f} s; "
        f"CLI state on disk {result['state_mib']:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
