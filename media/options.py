"""Bounds and switches for hashing media, one frozen value passed down to every worker.

Units are in the names. The defaults are chosen for a trust & safety desk hashing what
users upload: generous for real photos and clips, refusing what only an attack or a
mistake produces.

- ``max_image_pixels`` (100 million: a 12,000 x 8,000 scan passes; a 50,000 x 50,000
  "decompression bomb" is refused from its header, before any pixel is decoded). Decoding
  plus PDQ needs about 25 bytes a pixel at peak (RGB bytes, numpy's float luma and the
  reference's two float buffers), so the default bounds one worker near 2.5 GB. It is our
  own bound, checked before Pillow's ``MAX_IMAGE_PIXELS`` could warn or raise. The same
  bound applies to a video's frame size.
- ``min_quality`` (50): PDQ's own quality metric (0-100) measures how much gradient the
  image has; below 50 (flat, nearly blank, tiny images) hashes collide with unrelated
  images, so the field drops them. A dropped hash is reported as a warning, never
  silently.
- ``max_video_seconds`` (3,600): frames are sampled up to this presentation time; a longer
  video is hashed up to it and the result says so in a warning.
- ``max_video_frames`` (500,000): decoded frames, sampled or not, whatever the timestamps
  say; a guard against broken or hostile timestamps that never advance.
- ``video_max_side_px`` (1,024): a frame whose longer side is larger is scaled down
  (aspect kept, area averaging) before PDQ. PDQ itself reduces every image to 64 x 64, so
  this changes a hash by a few bits at most, and bounds the work per frame for 4K video.
- ``dihedral`` (False): also compute the 8 rotations/mirrors of each image's PDQ (one
  pass of the reference code; see :class:`~hashfed.media.pdq.Dihedral`), for matching
  uploads that may be turned or mirrored.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class HashOptions:
    """Bounds for one hashing run; see the module docstring for each default's reason."""

    max_image_pixels: int = 100_000_000
    min_quality: int = 50
    max_video_seconds: int = 3_600
    max_video_frames: int = 500_000
    video_max_side_px: int = 1_024
    dihedral: bool = False

    def __post_init__(self) -> None:
        for name in ("max_image_pixels", "max_video_seconds", "max_video_frames", "video_max_side_px"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if type(self.min_quality) is not int or not 0 <= self.min_quality <= 100:
            raise ValueError(f"min_quality must be an int in 0..100, got {self.min_quality!r}")
        if type(self.dihedral) is not bool:
            raise ValueError(f"dihedral must be a bool, got {self.dihedral!r}")


__all__ = ["HashOptions"]
