"""``python -m bench.chaos [--kills 100] [--seed S]``: crash the command line, lose nothing.

Three node homes: two members, A (``a.example``, which serves) and B (``b.example``, which
pulls from A), and an NGO, N (``n.example``, which pushes its log to A). A seeded stream of
operations runs against them, each step a real ``hashfed`` child process:

    a-publish   A imports a few thousand entries (and removes or opines on a few), publishes
    n-push      N imports and publishes, then pushes to A
    b-pull      B pulls from A (A's log and, relayed, N's)
    serve-kill  B pulls or N pushes while A's ``serve`` is killed under it

A second seeded stream decides, per step, whether to SIGKILL the child and after how long
(sometimes never); a killed step is run again until it completes, and a killed ``serve`` is
restarted. After every step and every restart :class:`bench.chaos_check.Checker` checks
every store (no batch lost or doubled, leaves and roots, every signature, one root per size
across everything ever observed, the merged list against PROTOCOL §8), and records the
checkpoints A serves (``GET /v1/logs``, signed as B). At the end N pushes and B pulls once
more, and every node's ``export --format json`` must equal the one an uninterrupted run of
the same operations gives.

Staging commands (``import``, ``add``, ``remove``, ``opinion``) are not idempotent, so a
killed one is re-run only when the store shows it did not commit; anything between "all
staged" and "nothing staged" is reported as a loss.

Decision: the operation stream and the kill stream are separate generators of the seed, so
the reference run replays exactly the operations of the chaos run, without kills. The
operations (and every entry in them) are reproducible from the seed; where a kill lands is
seeded too, but relative to how long each command took so far, so it follows the machine's
timing and a rerun kills at different instants.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bench.chaos_check import Checker, InvariantError
from hashfed.federation.cli import main as cli_main
from hashfed.keys import Verifier
from hashfed.keys.keyfile import load_signer
from hashfed.protocol.httpsig import RequestTarget, new_nonce, sign_request

ORGS = {"a": "a.example", "b": "b.example", "n": "n.example"}
TYPES = ("md5", "sha256", "pdq")
LABELS = ("src:a", "src:b", "cat:1", "cat:2")
POOL = 30_000  # hash values are drawn from value(0..POOL-1), so A and N overlap
EARLY_KILL_P = 0.1  # share of steps killed while Python is still starting
STEP_TIMEOUT_S = 120.0


KINDS = ("a-publish", "n-push", "b-pull", "serve-kill")


def value(i: int) -> tuple[str, str]:
    type_ = TYPES[i % 3]
    digest = hashlib.sha256(b"chaos" + i.to_bytes(4, "big")).hexdigest()
    return type_, digest[:32] if type_ == "md5" else digest


@dataclass(frozen=True)
class Step:
    node: str  # "a", "b" or "n"
    argv: tuple[str, ...]
    import_text: str | None = None  # written to a file that ``argv`` names last
    staged: int = 0  # rows a completed run adds to ``staged``; 0 for idempotent commands


@dataclass(frozen=True)
class Op:
    kind: str
    steps: tuple[Step, ...]


def operations(seed: int, entries: tuple[int, int]) -> Iterator[Op]:
    """The seeded, endless stream of operations (independent of kills)."""
    rng = random.Random(f"ops-{seed}")
    added: dict[str, list[int]] = {"a": [], "n": []}

    def publish_steps(node: str) -> list[Step]:
        picks = rng.sample(range(POOL), rng.randint(*entries))
        lines = []
        for i in picks:
            type_, v = value(i)
            labels = ";".join(sorted(rng.sample(LABELS, rng.randint(0, 2))))
            lines.append(f"{type_},{v},{labels}" if labels else f"{type_},{v}")
        added[node] += picks
        steps = [Step(node, ("import",), "\n".join(lines) + "\n", len(lines))]
        for _ in range(rng.randint(0, 2)):
            steps.append(Step(node, ("remove", *value(rng.choice(added[node]))), staged=1))
        if rng.random() < 0.5:
            opinion = rng.choice(("true_positive", "false_positive"))
            steps.append(Step(node, ("opinion", *value(rng.randrange(POOL)), opinion), staged=1))
        return [*steps, Step(node, ("publish",))]

    opening = ["a-publish", "n-push"]  # so that even a short run has both logs to crash on
    while True:
        kind = opening.pop(0) if opening else rng.choices(KINDS, weights=(3, 2, 2, 2))[0]
        if kind == "a-publish":
            yield Op(kind, tuple(publish_steps("a")))
        elif kind == "n-push":
            yield Op(kind, (*publish_steps("n"), Step("n", ("push", "--to", ORGS["a"]))))
        elif kind == "b-pull":
            yield Op(kind, (Step("b", ("pull", ORGS["a"])),))
        else:
            client = rng.choice((Step("b", ("pull", ORGS["a"])), Step("n", ("push", "--to", ORGS["a"]))))
            yield Op(kind, (client,))


@dataclass
class Stats:
    kills: int = 0
    restarts: int = 0
    operations: int = 0
    steps: int = 0
    checker_runs: int = 0
    torn: int = 0  # kills after which some log held batches past its served checkpoint
    mid_work: int = 0  # kills after which the victim had committed something
    losses: int = 0


class Cluster:
    """The three homes and A's ``serve``, run as child processes."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.homes = {name: root / org for name, org in ORGS.items()}
        self.serve: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.env.pop("HASHFED_HOME", None)

    def argv(self, node: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "hashfed.federation.cli", "--home", str(self.homes[node]), *args]

    def run(self, node: str, *args: str) -> str:
        """A command that is never killed (setup, final sync, export), run in this process
        through the CLI's own ``main``: it saves a Python start-up per command."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(["--home", str(self.homes[node]), *args])
        if code != 0:
            raise RuntimeError(f"{node}: hashfed {' '.join(args)} failed ({code}): {err.getvalue().strip()}")
        return out.getvalue()

    def start(self, node: str, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv(node, *args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env
        )

    def import_file(self, text: str) -> str:
        """A file of ``import`` lines (a file, not stdin: a kill must not wait on a pipe)."""
        path = self.root / f"import-{hashlib.sha256(text.encode()).hexdigest()[:16]}.csv"
        path.write_text(text, encoding="utf-8")
        return str(path)

    def fingerprint(self) -> tuple[object, ...]:
        """What a command may have committed: per node, every log's (held, size), staged rows."""
        parts: list[object] = []
        for home in self.homes.values():
            conn = sqlite3.connect(f"file:{home / 'hashfed.db'}?mode=ro", uri=True)
            try:
                parts.append(conn.execute("SELECT org, collection, held, size FROM logs ORDER BY id").fetchall())
                parts.append(conn.execute("SELECT count(*) FROM staged").fetchone()[0])
            finally:
                conn.close()
        return tuple(parts)

    def half_done(self) -> int:
        """Logs that hold batches past their served checkpoint, or a pending note."""
        count = 0
        for home in self.homes.values():
            conn = sqlite3.connect(f"file:{home / 'hashfed.db'}?mode=ro", uri=True)
            try:
                count += conn.execute("SELECT count(*) FROM logs WHERE held != size OR pending IS NOT NULL").fetchone()[0]
            finally:
                conn.close()
        return count

    def setup(self) -> dict[str, Verifier]:
        vkeys = {name: self.run(name, "init", "--org", ORGS[name]).strip() for name in ORGS}
        a, b, n = ORGS["a"], ORGS["b"], ORGS["n"]
        self.run("a", "peer", "add", b, "--key", vkeys["b"], "--grant", "default")
        self.run("a", "peer", "add", n, "--key", vkeys["n"], "--accept-push")
        self.run("a", "grant", b, f"{n}/default")
        self.run("b", "peer", "add", a, "--url", self.url, "--key", vkeys["a"])
        self.run("n", "peer", "add", a, "--url", self.url, "--key", vkeys["a"])
        self.reader = load_signer(next((self.homes["b"] / "keys").glob("*.key")))
        return {ORGS[name]: Verifier.from_vkey(vkey) for name, vkey in vkeys.items()}

    # -- A's server --------------------------------------------------------------------

    def start_serve(self) -> None:
        self.serve = subprocess.Popen(
            self.argv("a", "serve", "--host", "127.0.0.1", "--port", str(self.port)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self.env,
        )
        deadline = time.monotonic() + 30
        while True:  # wait on a condition: the node answers
            try:
                with urllib.request.urlopen(f"{self.url}/v1/node", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if self.serve.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("A's serve did not come up")
            time.sleep(0.02)

    def kill_serve(self) -> None:
        assert self.serve is not None
        self.serve.send_signal(signal.SIGKILL)
        self.serve.wait()
        self.serve = None

    def stop_serve(self) -> None:
        if self.serve is not None:
            self.serve.terminate()
            self.serve.wait(timeout=30)
            self.serve = None

    def served_logs(self) -> list[dict[str, object]]:
        """``GET /v1/logs`` of A, signed as B."""
        target = RequestTarget("GET", f"127.0.0.1:{self.port}", "/v1/logs", "")
        headers = sign_request(self.reader, target, None, created=int(time.time()), nonce=new_nonce(os.urandom(16)))
        request = urllib.request.Request(f"{self.url}/v1/logs", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())

    def staged(self, node: str) -> int:
        conn = sqlite3.connect(f"file:{self.homes[node] / 'hashfed.db'}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM staged").fetchone()[0]
        finally:
            conn.close()

    def export(self, node: str) -> list[object]:
        return json.loads(self.run(node, "export", "--format", "json"))


@dataclass
class Chaos:
    cluster: Cluster
    checker: Checker
    kill_rng: random.Random | None  # None: the uninterrupted reference run
    stats: Stats = field(default_factory=Stats)
    durations: dict[str, float] = field(default_factory=dict)
    log: TextIO | None = None
    no_kill_p: float = 0.2  # share of steps left to finish

    def check(self) -> None:
        self.stats.checker_runs += 1
        copies = [(n, self.checker.check_store(h / "hashfed.db", n)) for n, h in self.cluster.homes.items()]
        self.checker.check_prefixes(copies)
        if self.cluster.serve is not None:
            self.checker.observe_served(self.cluster.served_logs(), "A served")

    def _delay(self, key: str) -> float | None:
        assert self.kill_rng is not None
        roll = self.kill_rng.random()
        if roll < self.no_kill_p:
            return None
        # Most of a short command's life is Python starting up, where a kill proves
        # little: aim most kills past the fastest command seen, into the work itself.
        startup = min(self.durations.values(), default=0.3) * 0.8
        if roll < self.no_kill_p + EARLY_KILL_P:
            return self.kill_rng.uniform(0.0, startup)
        return self.kill_rng.uniform(startup, max(startup, self.durations.get(key, 1.0)) * 1.05)

    def run_step(self, step: Step, *, kill_serve: bool = False) -> None:
        """Run one step to completion, killing it (or the server) on the way."""
        key = f"{step.node}:{step.argv[0]}"
        while True:
            self.stats.steps += 1
            before = self.cluster.staged(step.node) if step.staged else 0
            committed_before = self.cluster.fingerprint()
            started = time.monotonic()
            argv = step.argv if step.import_text is None else (*step.argv, self.cluster.import_file(step.import_text))
            process = self.cluster.start(step.node, *argv)
            delay = self._delay(key) if self.kill_rng is not None else None
            killed = server_killed = False
            try:
                process.wait(timeout=STEP_TIMEOUT_S if delay is None else delay)
            except subprocess.TimeoutExpired:
                if delay is None:
                    raise
                if kill_serve:
                    self.cluster.kill_serve()
                    server_killed = True
                    if self.kill_rng is not None and self.kill_rng.random() < 0.3:
                        process.send_signal(signal.SIGKILL)
                        killed = True
                else:
                    process.send_signal(signal.SIGKILL)
                    killed = True
                self.stats.kills += killed + server_killed
            _, stderr = process.communicate(timeout=STEP_TIMEOUT_S)
            error = stderr.decode(errors="replace").strip()
            code = process.returncode
            if self.log is not None:
                outcome = "server killed" if server_killed else "killed" if killed else f"exit {code}"
                print(f"{step.node}: {step.argv[0]:8} delay {delay if delay is None else round(delay, 2)} -> {outcome}"
                      f" after {time.monotonic() - started:.2f} s", file=self.log)
            if server_killed:
                self.stats.restarts += 1
                self.cluster.start_serve()
            if not killed and not server_killed:
                if code != 0:
                    raise RuntimeError(f"{step.node}: hashfed {' '.join(step.argv)} failed ({code}): {error}")
                self.durations[key] = max(self.durations.get(key, 0.0), time.monotonic() - started)
                self.check()
                return
            self.check()
            self.stats.torn += self.cluster.half_done() > 0
            self.stats.mid_work += self.cluster.fingerprint() != committed_before
            if step.staged:
                after = self.cluster.staged(step.node)
                if after == before + step.staged:
                    return  # it committed before it died
                if after != before:
                    self.stats.losses += 1
                    raise InvariantError(f"{step.node}: a killed {step.argv[0]} staged {after - before} of {step.staged}")
            elif not killed and code == 0:
                return  # it finished before its server died
            self.stats.restarts += killed

    def run(self, ops: Iterator[Op], *, kills: int | None, count: int | None) -> None:
        for op in ops:
            if (kills is not None and self.stats.kills >= kills) or (count is not None and self.stats.operations >= count):
                break
            self.stats.operations += 1
            for step in op.steps:
                self.run_step(step, kill_serve=op.kind == "serve-kill")

    def finish(self) -> dict[str, list[object]]:
        """The final sync (N pushes, B pulls), checked; every node's export."""
        self.cluster.run("n", "push", "--to", ORGS["a"])
        self.cluster.run("b", "pull", ORGS["a"])
        self.check()
        return {name: self.cluster.export(name) for name in ORGS}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_once(
    root: Path,
    seed: int,
    *,
    kills: int | None,
    count: int | None,
    entries: tuple[int, int],
    no_kill_p: float = 0.2,
    log: TextIO | None = None,
) -> tuple[Chaos, dict[str, list[object]]]:
    """One run in ``root``: until ``kills`` kills (None: no kills), or ``count`` operations."""
    cluster = Cluster(root, free_port())
    verifiers = cluster.setup()
    cluster.start_serve()
    kill_rng = random.Random(f"kills-{seed}") if kills is not None else None
    chaos = Chaos(cluster, Checker(verifiers), kill_rng, log=log, no_kill_p=no_kill_p)
    try:
        chaos.run(operations(seed, entries), kills=kills, count=count)
        return chaos, chaos.finish()
    finally:
        cluster.stop_serve()


@dataclass(frozen=True)
class Summary:
    kills: int
    restarts: int
    operations: int
    steps: int
    checker_runs: int
    checks_passed: int
    checkpoints_observed: int
    torn: int
    mid_work: int
    losses: int
    exports_equal: bool
    wall_s: float

    def lines(self) -> list[str]:
        return [
            f"kills {self.kills}, restarts {self.restarts}, operations {self.operations} ({self.steps} steps); "
            f"{self.mid_work} kills landed after the command had committed something, "
            f"{self.torn} left a log half-written (held past its checkpoint)",
            f"invariant checks passed {self.checks_passed} in {self.checker_runs} checker runs; "
            f"{self.checkpoints_observed} signed checkpoints observed, one root per size",
            f"losses {self.losses}; exports equal to the uninterrupted run: {self.exports_equal}",
            f"wall time {self.wall_s:.1f} s",
        ]


def chaos_run(
    seed: int,
    kills: int,
    *,
    entries: tuple[int, int] = (1000, 4000),
    no_kill_p: float = 0.2,
    workdir: Path | None = None,
    log: TextIO | None = None,
) -> Summary:
    """The chaos run, then the uninterrupted reference run of the same operations."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hashfed-chaos-", dir=workdir) as tmp:
        chaos, exports = run_once(
            Path(tmp) / "chaos", seed, kills=kills, count=None, entries=entries, no_kill_p=no_kill_p, log=log
        )
        _, reference = run_once(Path(tmp) / "reference", seed, kills=None, count=chaos.stats.operations, entries=entries)
    equal = exports == reference
    stats = chaos.stats
    return Summary(
        kills=stats.kills,
        restarts=stats.restarts,
        operations=stats.operations,
        steps=stats.steps,
        checker_runs=stats.checker_runs,
        checks_passed=chaos.checker.passed,
        checkpoints_observed=chaos.checker.history.observed,
        torn=stats.torn,
        mid_work=stats.mid_work,
        losses=stats.losses + (not equal),
        exports_equal=equal,
        wall_s=time.monotonic() - started,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs to deliver at least (default 100)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-entries", type=int, default=1000)
    parser.add_argument("--max-entries", type=int, default=4000)
    parser.add_argument("--verbose", action="store_true", help="one line per step on stderr")
    args = parser.parse_args(argv)
    try:
        log = sys.stderr if args.verbose else None
        summary = chaos_run(args.seed, args.kills, entries=(args.min_entries, args.max_entries), log=log)
    except InvariantError as exc:
        print(f"INVARIANT BROKEN: {exc}", file=sys.stderr)
        return 1
    for line in summary.lines():
        print(line)
    return 0 if summary.losses == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
