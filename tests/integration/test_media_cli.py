"""``hashfed hash`` and ``hashfed match`` as a user runs them, on generated images and a
generated clip, against a real store: output that imports as it is, edited copies found
and unrelated pictures not, retracted and disputed records said plainly, a video matched
by its seconds, dihedral variants named, and every bad input a named case."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from hashfed.media import HashOptions, hash_file
from tests.helpers import Cli
from tests.unit.media_images import photo
from tests.unit.test_media_inputs import BAD, _drop_file_read_override
from tests.unit.test_media_video import changing_frames, write_clip

SIZE = (320, 240)


def _jpeg(path: Path, seed: int, *, size: tuple[int, int] = SIZE, quality: int = 92) -> Path:
    photo(seed, size).save(path, "JPEG", quality=quality)
    return path


def _pdq(path: Path) -> str:
    result = hash_file(str(path), HashOptions())
    assert result.ok and result.pdq is not None
    return result.pdq.value


def _publish(cli: Cli, *commands: tuple[str, ...]) -> None:
    for command in commands:
        cli.ok(*command)
    cli.ok("publish")


@pytest.fixture
def originals(tmp_path: Path) -> Path:
    folder = tmp_path / "originals"
    (folder / "sub").mkdir(parents=True)
    _jpeg(folder / "a.jpg", 1)
    _jpeg(folder / "sub" / "b.jpg", 2)
    return folder


# -- hash ---------------------------------------------------------------------------


def test_hash_output_imports_as_it_is(cli: Cli, originals: Path) -> None:
    out = cli.ok("hash", str(originals), "--label", "ncmec:a1", "--workers", "1")
    lines = out.splitlines()
    assert lines[0] == "type,value,labels"
    assert [line.split(",")[0] for line in lines[1:]] == ["md5", "sha256", "pdq"] * 2
    assert all(line.endswith(",ncmec:a1") for line in lines[1:])
    listing = cli.home.parent / "h.csv"
    listing.write_text(out)
    cli.ok("import", str(listing))
    cli.ok("publish")
    record = json.loads(cli.ok("lookup", "pdq", _pdq(originals / "a.jpg"), "--json"))
    assert record["active"] and record["labels"] == ["ncmec:a1"]


def test_hash_json_is_one_object_a_file_and_a_video_has_frames(cli: Cli, tmp_path: Path) -> None:
    image = _jpeg(tmp_path / "a.jpg", 1)
    clip = write_clip(tmp_path / "clip.mp4", changing_frames(3, 10))
    out = cli.ok("hash", "--json", str(image), str(clip), "--workers", "1")
    first, second = (json.loads(line) for line in out.splitlines())
    assert first["path"] == str(image) and first["quality"] >= 50 and "frames" not in first
    assert second["pdq"] is None
    assert [f["seconds"] for f in second["frames"]] == [0.0, 1.0, 2.0]


def test_hash_reads_paths_from_stdin(cli: Cli, originals: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(f"{originals / 'a.jpg'}\n"))
    out = cli.ok("hash", "-", "--json")
    assert json.loads(out)["path"] == str(originals / "a.jpg")


def test_a_low_quality_pdq_is_left_out_with_a_warning(cli: Cli, tmp_path: Path) -> None:
    flat = tmp_path / "flat.png"
    Image.new("RGB", (64, 64), (128, 128, 128)).save(flat)
    code, out, err = cli("hash", str(flat))
    assert code == 0
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == ["md5", "sha256"]
    assert err.startswith(f"{flat}: warning: PDQ quality 0 is under 50")


def test_bad_labels_are_refused_before_hashing(cli: Cli, originals: Path) -> None:
    code, out, err = cli("hash", str(originals), "--label", "no spaces allowed")
    assert (code, out) == (2, "")
    assert err.startswith("hashfed: error: --label:")


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_hash_bad_input_is_one_line_and_the_others_are_hashed(cli: Cli, tmp_path: Path, case: str) -> None:
    make, message = BAD[case]
    folder = tmp_path / "in"
    folder.mkdir()
    good = _jpeg(folder / "good.jpg", 3)
    bad = make(folder)
    code, out, err = cli("hash", "--json", str(good), str(bad), "--workers", "1")
    assert code == 2
    assert err == f"{bad}: {message}\n"
    assert [json.loads(line)["path"] for line in out.splitlines()] == [str(good)]


def test_hash_unreadable_file_is_one_line_and_the_others_are_hashed(tmp_path: Path) -> None:
    # Root reads any file: the command runs in a child whose root has lost that power.
    good = _jpeg(tmp_path / "good.jpg", 3)
    locked = _jpeg(tmp_path / "locked.jpg", 4)
    locked.chmod(0o000)
    done = subprocess.run(
        [sys.executable, "-m", "hashfed.federation.cli", "hash", "--json", str(locked), str(good)],
        capture_output=True, text=True, timeout=60,
        preexec_fn=_drop_file_read_override if os.geteuid() == 0 else None,
    )
    assert done.returncode == 2
    assert done.stderr == f"{locked}: unreadable: permission denied\n"
    assert [json.loads(line)["path"] for line in done.stdout.splitlines()] == [str(good)]


def test_hash_on_every_core_keeps_input_order(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [_jpeg(folder / f"{i}.jpg", 40 + i, size=(160, 120)) for i in range(4)]
    (folder / "empty.jpg").write_bytes(b"")
    code, out, err = cli("hash", "--json", str(folder))
    assert code == 2 and err == f"{folder / 'empty.jpg'}: empty file (0 bytes)\n"
    assert [json.loads(line)["path"] for line in out.splitlines()] == [str(p) for p in paths]


# -- match --------------------------------------------------------------------------


@pytest.fixture
def listed(cli: Cli, originals: Path) -> Path:
    """The originals' hashes published by the cli's org."""
    listing = cli.home.parent / "h.csv"
    listing.write_text(cli.ok("hash", str(originals), "--label", "ncmec:a1", "--workers", "1"))
    cli.ok("import", str(listing))
    cli.ok("publish")
    return originals


def _edits(source: Path, folder: Path) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    image = Image.open(source)
    edits = {
        "resized": image.resize((160, 120), Image.Resampling.LANCZOS),
        "re-encoded": image,
        "cropped-2pc": image.crop((3, 2, 317, 238)),
    }
    paths = {}
    for name, edited in edits.items():
        paths[name] = folder / f"{name}.jpg"
        edited.save(paths[name], "JPEG", quality=55)
    return paths


def test_match_finds_edited_copies_and_not_unrelated_pictures(cli: Cli, listed: Path, tmp_path: Path) -> None:
    edits = _edits(listed / "a.jpg", tmp_path / "edits")
    for name, path in edits.items():
        code, out, err = cli("match", "--json", str(path))
        assert (code, err) == (0, ""), name
        found = json.loads(out)
        assert found["matched"] is True
        (match,) = found["matches"]
        assert match["matched_by"] == "pdq" and 0 < match["distance"] <= 31, (name, match)
        assert match["state"] == "active"
        assert match["record"]["value"] == _pdq(listed / "a.jpg")
        assert match["record"]["labels"] == ["ncmec:a1"]
        assert match["record"]["contributors"][0]["org"] == "a.example"
    unrelated = _jpeg(tmp_path / "unrelated.jpg", 77)
    code, out, err = cli("match", "--json", str(unrelated))
    assert (code, err) == (1, "")
    assert json.loads(out)["matches"] == []


def test_match_exact_copy_matches_every_hash_exact_first(cli: Cli, listed: Path) -> None:
    found = json.loads(cli.ok("match", "--json", str(listed / "a.jpg")))
    assert [(m["matched_by"], m["distance"]) for m in found["matches"]] == [("md5", 0), ("sha256", 0), ("pdq", 0)]


def test_match_human_output(cli: Cli, listed: Path, tmp_path: Path) -> None:
    edited = _edits(listed / "a.jpg", tmp_path / "edits")["resized"]
    out = cli.ok("match", str(edited))
    lines = out.splitlines()
    assert lines[0] == f"{edited}: MATCH, 1 record(s)"
    assert lines[1].startswith(f"  pdq {_pdq(listed / 'a.jpg')} (distance ")
    assert lines[1].endswith("): active")
    assert "    labels: ncmec:a1" in lines
    assert "    vouched for by a.example/default" in lines


def test_match_says_retracted_and_disputed(cli: Cli, tmp_path: Path) -> None:
    retracted, disputed = _jpeg(tmp_path / "r.jpg", 5), _jpeg(tmp_path / "d.jpg", 6)
    _publish(cli, ("add", "pdq", _pdq(retracted), "--label", "x:1"), ("add", "pdq", _pdq(disputed), "--label", "x:2"))
    _publish(cli, ("remove", "pdq", _pdq(retracted)), ("opinion", "pdq", _pdq(disputed), "false_positive"))

    code, out, _ = cli("match", "--json", str(retracted))
    assert code == 1  # a retracted record is reported, but is no active match
    (match,) = json.loads(out)["matches"]
    assert match["state"] == "retracted"
    assert match["record"]["retracted_by"] == [{"org": "a.example", "collection": "default"}]
    code, out, _ = cli("match", str(retracted))
    assert "RETRACTED" in out and "retracted by a.example/default" in out

    code, out, _ = cli("match", "--json", str(disputed))
    assert code == 0
    (match,) = json.loads(out)["matches"]
    assert match["state"] == "disputed"
    assert match["record"]["opinions"][0]["opinion"] == "false_positive"
    code, out, _ = cli("match", str(disputed))
    assert "DISPUTED" in out and "false_positive according to a.example/default" in out


def test_match_a_video_by_its_seconds(cli: Cli, tmp_path: Path) -> None:
    frames = changing_frames(3, 10)
    clip = write_clip(tmp_path / "clip.mp4", frames)
    still = tmp_path / "second-1.png"
    Image.fromarray(frames[10]).save(still)  # the scene shown from 1 s to 2 s
    _publish(cli, ("add", "pdq", _pdq(still), "--label", "v:1"))
    code, out, err = cli("match", "--json", str(clip))
    assert (code, err) == (0, "")
    found = json.loads(out)
    (match,) = found["matches"]
    assert [f["seconds"] for f in match["frames"]] == [1.0]
    assert match["distance"] == match["frames"][0]["distance"] <= 31
    assert "frames: 1 s (" in cli.ok("match", str(clip))


def test_dihedral_matches_a_mirrored_copy_and_names_the_variant(cli: Cli, listed: Path, tmp_path: Path) -> None:
    mirrored = tmp_path / "mirrored.jpg"
    ImageOps.mirror(Image.open(listed / "a.jpg")).save(mirrored, "JPEG", quality=85)
    code, out, _ = cli("match", "--json", str(mirrored))
    assert code == 1 and json.loads(out)["matches"] == []
    code, out, _ = cli("match", "--json", "--dihedral", str(mirrored))
    assert code == 0
    (match,) = json.loads(out)["matches"]
    assert match["variant"] == "flipy" and match["distance"] <= 31
    assert ", as flipy): active" in cli.ok("match", "--dihedral", str(mirrored))


def test_match_distance_is_bounded_and_zero_means_exact_pdq(cli: Cli, listed: Path, tmp_path: Path) -> None:
    resized = _edits(listed / "a.jpg", tmp_path / "edits")["resized"]
    code, out, _ = cli("match", "--json", "--distance", "0", str(resized))
    assert code == 1 and json.loads(out)["matches"] == []
    code, out, err = cli("match", "--distance", "65", str(resized))
    assert (code, out) == (2, "")
    assert err == "hashfed: error: --distance must be from 0 to 64 bits, not '65'\n"


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_match_bad_input_is_one_line_and_the_others_are_matched(cli: Cli, listed: Path, tmp_path: Path, case: str) -> None:
    make, message = BAD[case]
    folder = tmp_path / "in"
    folder.mkdir()
    bad = make(folder)
    code, out, err = cli("match", "--json", str(listed / "a.jpg"), str(bad), "--workers", "1")
    assert code == 2
    assert err == f"{bad}: {message}\n"
    (found,) = (json.loads(line) for line in out.splitlines())
    assert found["path"] == str(listed / "a.jpg") and found["matched"] is True


def test_without_the_media_extra_the_commands_say_so(tmp_path: Path) -> None:
    # A child where importing pdqhash fails, as on an install without the extra.
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "pdqhash.py").write_text("raise ImportError('no pdqhash', name='pdqhash')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), *sys.path])}
    image = _jpeg(tmp_path / "a.jpg", 1)
    done = subprocess.run(
        [sys.executable, "-m", "hashfed.federation.cli", "hash", str(image)],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "hashfed: error: hashing images and videos needs the media extra:"
        " pip install 'hashfed[media]' (pdqhash is missing)\n"
    )
