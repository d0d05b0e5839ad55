"""Videos: one frame PDQ per whole second, in every container, written here by PyAV."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from hashfed.media import HashOptions, Kind, MediaHash, csv_rows, hamming, hash_file, pdq_of_rgb
from hashfed.protocol.hashtypes import PDQ_MATCH_DISTANCE

from .media_images import photo

# container suffix, codec, pixel format, sniffed name
CONTAINERS = [
    ("mp4", "libx264", "yuv420p", "MP4"),
    ("webm", "libvpx-vp9", "yuv420p", "WebM"),
    ("mov", "mpeg4", "yuv420p", "MOV"),
    ("mkv", "ffv1", "yuv420p", "MKV"),
    ("avi", "mjpeg", "yuvj420p", "AVI"),
]


def write_clip(path: Path, frames: list[np.ndarray], *, fps: int = 10, codec: str = "libx264",
               pix_fmt: str = "yuv420p") -> Path:
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = Fraction(1, fps)
        if codec == "mpeg4":
            stream.bit_rate = 4_000_000  # its 200 kb/s default blurs the noisy test scenes
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def changing_frames(seconds: int, fps: int, size: tuple[int, int] = (160, 120)) -> list[np.ndarray]:
    """A different scene each second, drifting a pixel a frame within the second."""
    scenes = [np.asarray(photo(20 + s, (size[0] + fps, size[1]))) for s in range(seconds)]
    return [np.ascontiguousarray(scenes[i // fps][:, i % fps : i % fps + size[0]]) for i in range(seconds * fps)]


@pytest.mark.parametrize(("suffix", "codec", "pix_fmt", "name"), CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_a_frame_each_whole_second(tmp_path: Path, suffix: str, codec: str, pix_fmt: str, name: str) -> None:
    frames = changing_frames(3, 10)
    path = write_clip(tmp_path / f"clip.{suffix}", frames, codec=codec, pix_fmt=pix_fmt)
    result = hash_file(str(path), HashOptions())
    assert isinstance(result, MediaHash), result
    assert (result.kind, result.format, result.pdq, result.warnings) == (Kind.VIDEO, name, None, ())
    assert [frame.seconds for frame in result.frames] == [0.0, 1.0, 2.0]
    for second, frame in enumerate(result.frames):
        assert frame.pdq.quality >= 50
        # The sampled frame is the one at that second: close to its source pixels.
        assert hamming(frame.pdq.value, pdq_of_rgb(frames[second * 10]).value) <= PDQ_MATCH_DISTANCE
    assert len({frame.pdq.value for frame in result.frames}) == 3


def test_a_still_video_matches_its_image(tmp_path: Path) -> None:
    still = np.asarray(photo(5, (320, 240)))
    path = write_clip(tmp_path / "still.mp4", [still] * 25, fps=10)
    result = hash_file(str(path), HashOptions())
    assert isinstance(result, MediaHash)
    assert [frame.seconds for frame in result.frames] == [0.0, 1.0, 2.0]
    image = pdq_of_rgb(still).value
    assert all(hamming(frame.pdq.value, image) <= PDQ_MATCH_DISTANCE for frame in result.frames)


def test_csv_rows_list_each_distinct_frame_pdq_once(tmp_path: Path) -> None:
    still = np.asarray(photo(5, (160, 120)))
    path = write_clip(tmp_path / "still.mkv", [still] * 30, fps=10, codec="ffv1")
    result = hash_file(str(path), HashOptions())
    assert isinstance(result, MediaHash) and len(result.frames) == 3
    rows = list(csv_rows(result))
    assert rows == [("md5", result.md5), ("sha256", result.sha256), ("pdq", result.frames[0].pdq.value)]


def test_seconds_follow_timestamps_not_frame_counts(tmp_path: Path) -> None:
    frames = changing_frames(4, 4)
    path = write_clip(tmp_path / "slow.mkv", frames, fps=4, codec="ffv1")
    result = hash_file(str(path), HashOptions())
    assert isinstance(result, MediaHash)
    assert [frame.seconds for frame in result.frames] == [0.0, 1.0, 2.0, 3.0]


def test_long_videos_are_cut_with_a_warning(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mkv", changing_frames(3, 10), codec="ffv1")
    result = hash_file(str(path), HashOptions(max_video_seconds=2))
    assert isinstance(result, MediaHash)
    assert [frame.seconds for frame in result.frames] == [0.0, 1.0]
    assert result.warnings == ("hashed the first 2 s only",)


def test_huge_frames_are_scaled_down(tmp_path: Path) -> None:
    big = np.asarray(Image.fromarray(np.asarray(photo(8, (320, 240)))).resize((1280, 960)))
    path = write_clip(tmp_path / "big.mkv", [big] * 10, codec="ffv1")
    small, full = (hash_file(str(path), HashOptions(video_max_side_px=side)) for side in (1024, 4096))
    assert isinstance(small, MediaHash) and isinstance(full, MediaHash)
    assert full.frames[0].pdq == pdq_of_rgb(big)  # lossless codec, no scaling: the same pixels
    assert hamming(small.frames[0].pdq.value, full.frames[0].pdq.value) <= 8


def test_blank_frames_are_dropped_with_a_warning(tmp_path: Path) -> None:
    black = np.zeros((120, 160, 3), np.uint8)
    frames = [black] * 10 + changing_frames(1, 10)
    path = write_clip(tmp_path / "fade-in.mkv", frames, codec="ffv1")
    result = hash_file(str(path), HashOptions())
    assert isinstance(result, MediaHash)
    assert [frame.seconds for frame in result.frames] == [1.0]
    assert result.warnings == (
        "1 of 2 sampled frames had PDQ quality under 50: left out (they would match unrelated images)",
    )


def test_frame_size_over_the_pixel_bound_is_refused(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mkv", changing_frames(1, 10), codec="ffv1")
    result = hash_file(str(path), HashOptions(max_image_pixels=10_000))
    assert not result.ok
    assert str(result) == f"{path}: video frames declare more than 10000 pixels; refused"


def test_a_truncated_video_is_hashed_as_far_as_it_goes_with_a_warning(tmp_path: Path) -> None:
    whole = write_clip(tmp_path / "whole.mkv", changing_frames(4, 10), codec="ffv1")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    result = hash_file(str(cut), HashOptions())
    assert isinstance(result, MediaHash)
    # Where the cut falls depends on the codec's frame sizes: about 60% of 4 s.
    assert [frame.seconds for frame in result.frames] == [0.0, 1.0, 2.0]
    (warning,) = result.warnings
    assert re.fullmatch(r"decoded frames end at 2\.\d s of the 4\.0 s the header declares \(truncated\?\)", warning)
    assert hash_file(str(whole), HashOptions()).warnings == ()
