"""Bad inputs, each a named case: the exact one-line message tied to its path, and every
other file in the same call still hashed. Also the walk (folders, symlinks, ``-``) and
the pool (every core, input order, progress)."""

from __future__ import annotations

import ctypes
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from hashfed.media import HashFailure, HashOptions, MediaHash, hash_file, hash_paths

from .media_images import photo


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height RGB pixels; its data is 1 row."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * (1 + 3 * 16))) + _png_chunk(b"IEND", b""))


def _image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    photo(4, (200, 150)).save(buffer, fmt)
    return buffer.getvalue()


def _write(data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "bad"
        path.write_bytes(data)
        return path
    return make


def _symlink_cycle(folder: Path) -> Path:
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return folder / "a"


def _broken_symlink(folder: Path) -> Path:
    (folder / "gone").symlink_to(folder / "never-existed.jpg")
    return folder / "gone"


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "pipe")
    return folder / "pipe"


def _no_frames(folder: Path) -> Path:
    # A Matroska file with a video track and only audio packets: the video has no frames.
    path = folder / "no-frames.mkv"
    with av.open(str(path), "w") as container:
        video = container.add_stream("ffv1", rate=10)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


def _audio_only(folder: Path) -> Path:
    path = folder / "audio.mp4"
    with av.open(str(path), "w") as container:
        audio = container.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        frame.pts, frame.time_base = 0, Fraction(1, 44100)
        container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


JPEG, PNG = _image_bytes("JPEG"), _image_bytes("PNG")
LIMIT = HashOptions().max_image_pixels

# name -> (make the bad path in a folder, the exact message)
BAD = {
    "empty-file": (_write(b""), "empty file (0 bytes)"),
    "truncated-jpeg": (_write(JPEG[: len(JPEG) // 2]), "corrupt or truncated JPEG image"),
    "truncated-png": (_write(PNG[: len(PNG) // 2]), "corrupt or truncated PNG image"),
    "corrupt-jpeg-header": (_write(b"\xff\xd8\xff" + bytes(range(256)) * 4), "corrupt or truncated JPEG image"),
    "corrupt-gif": (_write(b"GIF89a" + b"\x00" * 40), "corrupt or truncated GIF image"),
    "bomb-50000x50000": (_write(_declared_png(50_000, 50_000)),
                         f"image declares more than {LIMIT} pixels; refused before decoding (decompression bomb?)"),
    "bomb-over-our-bound-under-pillows": (_write(_declared_png(12_000, 9_000)),
                                          f"image declares more than {LIMIT} pixels; refused before decoding "
                                          "(decompression bomb?)"),
    "text-file": (_write(b"type,value\nmd5,00\n"), "unsupported file type: not an image or video this hashes"),
    "heif-image": (_write(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64),
                   "unsupported file type (HEIF/AVIF image): not an image or video this hashes"),
    "corrupt-mp4": (_write(b"\x00\x00\x00\x18ftypisom" + b"\x01" * 200), "corrupt or unreadable MP4 video"),
    "video-without-frames": (_no_frames, "MKV video has no frames"),
    "audio-only-mp4": (_audio_only, "MP4 file has no video stream"),
    "symlink-loop-of-files": (_symlink_cycle, "symlink loop"),
    "broken-symlink": (_broken_symlink, "broken symlink: its target does not exist"),
    "missing-path": (lambda folder: folder / "nowhere.png", "no such file or folder"),
    "fifo": (_fifo, "not a regular file"),
}


def _good_files(folder: Path) -> list[Path]:
    paths = [folder / "good.jpg", folder / "good.png"]
    photo(1, (160, 120)).save(paths[0])
    photo(2, (160, 120)).save(paths[1])
    return paths


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_one_line_and_the_rest_is_hashed(tmp_path: Path, case: str) -> None:
    make, message = BAD[case]
    good = _good_files(tmp_path)
    bad_folder = tmp_path / "bad-inputs"
    bad_folder.mkdir()
    bad = make(bad_folder)
    results = list(hash_paths([str(good[0]), str(bad), str(good[1])], workers=1))
    assert [r.path for r in results] == [str(good[0]), str(bad), str(good[1])]
    failure = results[1]
    assert isinstance(failure, HashFailure)
    assert failure.message == message
    assert str(failure) == f"{bad}: {message}"
    assert failure.to_json_obj() == {"path": str(bad), "error": message}
    assert all(isinstance(r, MediaHash) and r.pdq is not None for r in (results[0], results[2]))


def test_every_bad_input_in_one_pooled_call(tmp_path: Path) -> None:
    good = _good_files(tmp_path)
    inputs, expected = [str(good[0])], [None]
    for case, (make, message) in BAD.items():
        folder = tmp_path / case
        folder.mkdir()
        inputs.append(str(make(folder)))
        expected.append(message)
    inputs.append(str(good[1]))
    expected.append(None)
    results = list(hash_paths(inputs, workers=2))
    assert [r.path for r in results] == inputs
    assert [None if r.ok else r.message for r in results] == expected


def test_a_symlink_loop_between_folders_is_reported_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    photo(1, (160, 120)).save(root / "sub" / "a.png")
    (root / "sub" / "up").symlink_to(root)
    results = list(hash_paths([str(root)], workers=1))
    assert [(r.path, r.ok) for r in results] == [(str(root / "sub" / "a.png"), True), (str(root / "sub" / "up"), False)]
    assert isinstance(results[1], HashFailure)
    assert results[1].message == f"symlink loop: leads back to {root}"


def test_folders_are_walked_in_name_order_and_links_followed(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "b" / "deeper").mkdir(parents=True)
    (tree / "a").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for path, seed in [(tree / "b" / "deeper" / "x.png", 1), (tree / "a" / "y.png", 2), (tree / "z.png", 3),
                       (elsewhere / "w.png", 4)]:
        photo(seed, (64, 48)).save(path)
    (tree / "c").symlink_to(elsewhere)  # a link to a folder is followed
    (tree / "d").symlink_to(elsewhere)  # ... once: the same folder again is skipped
    results = list(hash_paths([str(tree)], workers=1, options=HashOptions(min_quality=0)))
    assert [r.path for r in results] == [
        str(tree / "a" / "y.png"), str(tree / "b" / "deeper" / "x.png"), str(tree / "c" / "w.png"), str(tree / "z.png")]
    assert all(r.ok for r in results)


def test_dash_reads_paths_from_the_callers_lines(tmp_path: Path) -> None:
    paths = _good_files(tmp_path)
    lines = [f"{paths[1]}\n", "\n", f"{tmp_path / 'gone.png'}\r\n"]
    results = list(hash_paths([str(paths[0]), "-"], stdin_lines=lines, workers=1))
    assert [(r.path, r.ok) for r in results] == [
        (str(paths[0]), True), (str(paths[1]), True), (str(tmp_path / "gone.png"), False)]


def test_dash_without_lines_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="'-' given but no stdin lines passed"):
        list(hash_paths(["-"]))


def test_the_pool_keeps_input_order_and_reports_progress(tmp_path: Path) -> None:
    for index in range(12):
        photo(100 + index, (120 + 40 * (index % 3), 90)).save(tmp_path / f"{index:02}.png")
    (tmp_path / "05.png").write_bytes(b"")  # a failure in the middle
    calls: list[tuple[int, int]] = []
    pooled = list(hash_paths([str(tmp_path)], workers=2, progress=lambda done, total: calls.append((done, total))))
    serial = list(hash_paths([str(tmp_path)], workers=1))
    assert pooled == serial
    assert [Path(r.path).name for r in pooled] == [f"{i:02}.png" for i in range(12)]
    assert calls == [(done, 12) for done in range(1, 13)]
    assert [r.ok for r in pooled].count(False) == 1


UNREADABLE_SCRIPT = """
import json, sys
from hashfed.media import hash_paths
print(json.dumps([r.to_json_obj() for r in hash_paths(sys.argv[1:], workers=1)]))
"""
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


def _drop_file_read_override() -> None:
    """In the child, before exec: root without the capabilities that let it read any file."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_unreadable_files_and_folders_are_reported(tmp_path: Path) -> None:
    # Root reads any file; the check runs in a child whose root has lost that power.
    good = _good_files(tmp_path)
    locked = tmp_path / "locked.png"
    photo(3, (64, 48)).save(locked)
    locked.chmod(0o000)
    closed = tmp_path / "closed"
    closed.mkdir()
    photo(4, (64, 48)).save(closed / "inside.png")
    closed.chmod(0o000)
    inputs = [str(good[0]), str(locked), str(closed), str(good[1])]
    preexec = _drop_file_read_override if os.geteuid() == 0 else None
    try:
        done = subprocess.run([sys.executable, "-c", UNREADABLE_SCRIPT, *inputs], capture_output=True, text=True,
                              timeout=60, check=True, preexec_fn=preexec)
    finally:
        closed.chmod(0o755)  # so tmp_path can be cleaned up
    results = json.loads(done.stdout)
    assert [r["path"] for r in results] == inputs
    assert results[1] == {"path": str(locked), "error": "unreadable: permission denied"}
    assert results[2] == {"path": str(closed), "error": "cannot list folder: permission denied"}
    assert "md5" in results[0] and "md5" in results[3]


def test_a_single_bad_file_never_raises(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(_declared_png(50_000, 50_000))
    result = hash_file(str(path), HashOptions())
    assert isinstance(result, HashFailure) and "decompression bomb" in result.message


def test_our_pixel_bound_is_an_option(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    photo(1, (100, 100)).save(path)
    result = hash_file(str(path), HashOptions(max_image_pixels=9_999))
    assert isinstance(result, HashFailure)
    assert result.message == "image declares more than 9999 pixels; refused before decoding (decompression bomb?)"
    assert result.detail == "100x100"


def _pool_workers() -> list[int]:
    """Our process pool's workers: children of this process started by multiprocessing's
    spawn (the resource tracker, also a child, is left alone)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat_fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat_fields[1]) == os.getpid() and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
def test_a_killed_worker_costs_no_result(tmp_path: Path) -> None:
    # A worker killed mid-run (as a decoder crash or the OOM killer would) breaks the pool;
    # the files in flight are hashed again one at a time and every file still gets its result.
    from .test_media_video import changing_frames, write_clip

    video = write_clip(tmp_path / "a-long.mkv", changing_frames(10, 10, (320, 240)), codec="ffv1")
    images = []
    for index in range(6):
        images.append(tmp_path / f"b{index}.png")
        photo(200 + index, (160, 120)).save(images[-1])
    killed: list[int] = []

    def kill_one_worker(done: int, total: int) -> None:
        if not killed:
            workers = _pool_workers()
            assert workers, "no pool worker found"
            os.kill(workers[0], 9)
            killed.append(workers[0])

    results = list(hash_paths([str(video), *map(str, images)], workers=2, progress=kill_one_worker))
    assert killed
    assert [r.path for r in results] == [str(video), *map(str, images)]
    assert all(r.ok for r in results), [str(r) for r in results if not r.ok]
    serial = list(hash_paths([str(video), *map(str, images)], workers=1))
    assert results == serial


def test_content_decides_not_the_name(tmp_path: Path) -> None:
    png_named_jpg = tmp_path / "photo.jpg"
    photo(1, (160, 120)).save(png_named_jpg, "PNG")
    html_named_png = tmp_path / "page.png"
    html_named_png.write_text("<!doctype html><title>not an image</title>")
    no_suffix = tmp_path / "upload"
    photo(2, (160, 120)).save(no_suffix, "WEBP")
    results = [hash_file(str(p), HashOptions()) for p in (png_named_jpg, html_named_png, no_suffix)]
    assert isinstance(results[0], MediaHash) and results[0].format == "PNG"
    assert isinstance(results[1], HashFailure)
    assert results[1].message == "unsupported file type: not an image or video this hashes"
    assert isinstance(results[2], MediaHash) and results[2].format == "WebP"
