"""`hashfed demo`, the README's main job, run as a user runs it: a real process."""

import subprocess
import sys


def test_demo_runs_and_lists_are_identical():
    done = subprocess.run(
        [sys.executable, "-m", "hashfed.federation.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "all three nodes hold the same list" in out
    assert "relayed by" in out
    assert "pushed batches 0..0 to member-a.example" in out
    assert "false_positive" in out
    assert "inactive on every node, kept with who retracted it" in out
    assert done.stderr == ""
