"""`hashfed demo`, the README's main job, run as a user runs it: a real process."""

import os
import subprocess
import sys
from pathlib import Path


def _demo(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hashfed.federation.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_demo_runs_and_lists_are_identical():
    done = _demo()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "all three nodes hold the same list" in out
    assert "relayed by" in out
    assert "pushed batches 0..0 to member-a.example" in out
    assert "false_positive" in out
    assert "inactive on every node, kept with who retracted it" in out
    assert "member-a.example: hashed 3 pictures (md5, sha256, PDQ)" in out
    assert "  resized to 60% (JPEG): MATCH pdq " in out
    assert "  re-encoded as WebP: MATCH pdq " in out
    assert ", as its flipy variant, active, [demo:pictures] from member-a.example" in out
    assert "  an unrelated picture: no match within 31 bits" in out
    assert done.stderr == ""


def test_demo_without_the_media_extra_says_how_to_see_matching(tmp_path: Path):
    # A child where importing pdqhash fails, as after `pip install .` without the extra.
    (tmp_path / "pdqhash.py").write_text("raise ImportError('no pdqhash', name='pdqhash')\n")
    done = _demo({**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])})
    assert done.returncode == 0, done.stderr
    assert "  (install hashfed[media] to see hashing and matching)" in done.stdout
    assert "MATCH" not in done.stdout
    assert "all three nodes hold the same list" in done.stdout
    assert done.stderr == ""
