"""Decode one video file (already opened and sniffed) into per-second frame PDQs. IO.

Sampling is vPDQ's: one frame for each whole second of presentation time, namely the
first decoded frame whose time from the stream's start is at or past that second
(0 s, 1 s, 2 s, ...; a gap with no frames skips its seconds). Times are computed from
each frame's PTS in the stream's exact rational time base, so a 10 fps clip samples at
exactly 0.0, 1.0, 2.0 s. ``seconds`` is that frame's own time, rounded to microseconds.
Every frame is decoded (a sampled frame may be any frame, not only a key frame), so the
work is bounded by ``max_video_seconds`` and ``max_video_frames``; a cut is a warning.
Frames larger than ``video_max_side_px`` are scaled down by FFmpeg's swscale (area
averaging) while converting to RGB. Rotation metadata (a phone's display matrix) is not
applied: the stored frames are hashed.

PyAV is told the demuxer that matches the sniffed format. Corrupt data after some frames
were decoded ends the sampling with a warning, keeping what was hashed; corrupt data
before any frame is a failure. A file that simply ends early (truncated: most demuxers
stop quietly at the end of the data) is hashed as far as it goes, with a warning when its
last frame is more than a second short of the duration its header declares.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import BinaryIO

import av

from .errors import MediaError
from .options import HashOptions
from .pdq import pdq_of_rgb
from .results import FramePdq

_DEMUXERS = {"MP4": "mov", "MOV": "mov", "MKV": "matroska", "WebM": "matroska", "AVI": "avi"}


def _scaled(width: int, height: int, max_side: int) -> tuple[int, int]:
    longer = max(width, height)
    if longer <= max_side:
        return width, height
    return max(1, round(width * max_side / longer)), max(1, round(height * max_side / longer))


def video_frames(file: BinaryIO, fmt: str, options: HashOptions) -> tuple[tuple[FramePdq, ...], tuple[str, ...]]:
    """``(frames, warnings)`` of the video in ``file``: kept frames in time order."""
    try:
        container = av.open(file, mode="r", format=_DEMUXERS[fmt])
    except Exception as exc:  # av.error.FFmpegError and its many kinds
        raise MediaError(f"corrupt or unreadable {fmt} video", detail=f"{type(exc).__name__}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise MediaError(f"{fmt} file has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > options.max_image_pixels:
            raise MediaError(f"video frames declare more than {options.max_image_pixels} pixels; refused",
                             detail=f"{width}x{height}")
        frames, notes, last = _sample(container, stream, fmt, options)
        declared = _declared_seconds(container, stream)
        if last is not None and declared is not None and last + 1 < declared:
            notes += (f"decoded frames end at {float(last):.1f} s of the {float(declared):.1f} s "
                      "the header declares (truncated?)",)
        return frames, notes


def _declared_seconds(container, stream) -> Fraction | None:
    if stream.duration is not None and stream.time_base is not None:
        return stream.duration * stream.time_base
    if container.duration is not None:
        return Fraction(container.duration, av.time_base)
    return None


def _sample(
    container, stream, fmt: str, options: HashOptions
) -> tuple[tuple[FramePdq, ...], tuple[str, ...], Fraction | None]:
    """Kept frames, notes, and the last decoded frame's time (None if decoding was cut
    short on purpose, when a shortfall against the header is expected)."""
    time_base = stream.time_base or Fraction(1, 1)
    rate = stream.average_rate
    start = stream.start_time
    kept: list[FramePdq] = []
    notes: list[str] = []
    sampled = dropped = decoded = 0
    next_second = 0
    offset: Fraction | None = None
    cut = False
    try:
        for frame in container.decode(stream):
            if decoded >= options.max_video_frames:
                notes.append(f"stopped after {options.max_video_frames} decoded frames")
                cut = True
                break
            decoded += 1
            if frame.pts is not None:
                if start is None:
                    start = frame.pts
                offset = max(Fraction(0), (frame.pts - start) * time_base)
            elif rate:
                offset = Fraction(decoded - 1) / Fraction(rate)
            else:
                raise MediaError(f"{fmt} video frames carry no timestamps")
            if offset >= options.max_video_seconds:
                notes.append(f"hashed the first {options.max_video_seconds} s only")
                cut = True
                break
            if offset < next_second:
                continue
            next_second = math.floor(offset) + 1
            sampled += 1
            w, h = _scaled(frame.width, frame.height, options.video_max_side_px)
            rgb = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
            pdq = pdq_of_rgb(rgb)
            if pdq.quality < options.min_quality:
                dropped += 1
                continue
            kept.append(FramePdq(round(float(offset), 6), pdq))
    except MediaError:
        raise
    except Exception as exc:  # corrupt packets mid-stream
        if decoded == 0:
            raise MediaError(f"corrupt or unreadable {fmt} video", detail=f"{type(exc).__name__}: {exc}") from exc
        notes.append(f"decoding stopped after {decoded} frames: corrupt data ({type(exc).__name__})")
        cut = True
    if decoded == 0:
        raise MediaError(f"{fmt} video has no frames")
    if dropped:
        notes.append(f"{dropped} of {sampled} sampled frames had PDQ quality under {options.min_quality}: "
                     "left out (they would match unrelated images)")
    return tuple(kept), tuple(notes), None if cut else offset


__all__ = ["video_frames"]
