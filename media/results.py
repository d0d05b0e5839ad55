"""What hashing one file gives: a :class:`MediaHash` or a :class:`HashFailure`. Pure.

Both are frozen values that cross process boundaries (they pickle) and carry their path,
so results can be printed in any order. Their JSON shape (:meth:`MediaHash.to_json_obj`)
is the one ``hashfed hash`` prints, one object a line::

    {"path": ..., "md5": ..., "sha256": ..., "pdq": ... | null, "quality": ... | null}
    {"path": ..., "md5": ..., "sha256": ..., "pdq": null, "quality": null,
     "frames": [{"seconds": 0.0, "pdq": ..., "quality": ...}, ...]}       (a video)
    {"path": ..., "error": "..."}                                          (a failure)

``pdq``/``quality`` are null for a video (its PDQs are per frame) and for an image whose
quality was under the bound (the drop is in ``warnings``). ``frames`` appears for videos
only, and holds the sampled frames whose quality passed, in time order.

:func:`csv_rows` gives the ``(type, value)`` rows that ``hashfed import`` reads
(``type,value,labels``; the caller adds the labels): md5 and sha256 of the bytes, then the
image's PDQ or each distinct frame PDQ of a video, in first-seen order (a still scene
yields one PDQ for many seconds; the list needs it once).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hashfed.protocol.hashtypes import HASH_TYPES

from .pdq import Dihedral, Pdq
from .sniff import Kind


def _check_hex(type_: str, value: str) -> None:
    if type(value) is not str or HASH_TYPES[type_].pattern.fullmatch(value) is None:
        raise ValueError(f"{type_} must be {HASH_TYPES[type_].hex_digits} lowercase hex digits, got {value!r}")


@dataclass(frozen=True, slots=True)
class FramePdq:
    """One sampled video frame: its presentation time from the start, in seconds, and PDQ."""

    seconds: float
    pdq: Pdq

    def __post_init__(self) -> None:
        if type(self.seconds) is not float or not self.seconds >= 0.0:
            raise ValueError(f"frame time must be a float >= 0, got {self.seconds!r}")

    def to_json_obj(self) -> dict[str, object]:
        return {"seconds": self.seconds, "pdq": self.pdq.value, "quality": self.pdq.quality}


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaHash:
    """A hashed file. ``format`` is what its bytes were sniffed as ("PNG", "MP4", ...).

    ``pdq`` is the image's PDQ, None for a video or when dropped for low quality;
    ``frames`` a video's sampled frames (empty for an image); ``variants`` the eight
    dihedral PDQs of an image when asked for (empty otherwise, and when ``pdq`` is None);
    ``warnings`` one-line notes the caller should show (a dropped hash, a cut video).
    """

    path: str
    kind: Kind
    format: str
    md5: str
    sha256: str
    pdq: Pdq | None = None
    frames: tuple[FramePdq, ...] = ()
    variants: Mapping[Dihedral, str] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_hex("md5", self.md5)
        _check_hex("sha256", self.sha256)
        if self.kind is Kind.VIDEO and (self.pdq is not None or self.variants):
            raise ValueError("a video has per-frame PDQs only")
        if self.kind is Kind.IMAGE and self.frames:
            raise ValueError("an image has no frames")
        if self.variants and (self.pdq is None or set(self.variants) != set(Dihedral)):
            raise ValueError("variants are all eight or none, and only beside a PDQ")
        for value in self.variants.values():
            _check_hex("pdq", value)
        # A read-only copy, so a caller's dict cannot change a frozen value afterwards.
        object.__setattr__(self, "variants", MappingProxyType(dict(self.variants)))

    def __reduce__(self) -> tuple[object, ...]:  # MappingProxyType does not pickle
        return (_rebuild, (self.path, self.kind, self.format, self.md5, self.sha256, self.pdq,
                           self.frames, dict(self.variants), self.warnings))

    @property
    def ok(self) -> bool:
        return True

    def to_json_obj(self) -> dict[str, object]:
        obj: dict[str, object] = {
            "path": self.path,
            "md5": self.md5,
            "sha256": self.sha256,
            "pdq": None if self.pdq is None else self.pdq.value,
            "quality": None if self.pdq is None else self.pdq.quality,
        }
        if self.kind is Kind.VIDEO:
            obj["frames"] = [frame.to_json_obj() for frame in self.frames]
        return obj


def _rebuild(path, kind, format, md5, sha256, pdq, frames, variants, warnings) -> MediaHash:  # noqa: A002
    return MediaHash(path=path, kind=kind, format=format, md5=md5, sha256=sha256, pdq=pdq,
                     frames=frames, variants=variants, warnings=warnings)


@dataclass(frozen=True, slots=True)
class HashFailure:
    """A file that could not be hashed: ``message`` is one line, without the path or any
    library's wording; ``detail`` is what the library said, if anything."""

    path: str
    message: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def to_json_obj(self) -> dict[str, object]:
        return {"path": self.path, "error": self.message}


HashResult = MediaHash | HashFailure


def csv_rows(result: MediaHash) -> Iterator[tuple[str, str]]:
    """The ``(type, value)`` rows of a hashed file, for ``hashfed import``'s CSV."""
    yield ("md5", result.md5)
    yield ("sha256", result.sha256)
    if result.pdq is not None:
        yield ("pdq", result.pdq.value)
    seen: set[str] = set()
    for frame in result.frames:
        if frame.pdq.value not in seen:
            seen.add(frame.pdq.value)
            yield ("pdq", frame.pdq.value)


__all__ = ["FramePdq", "MediaHash", "HashFailure", "HashResult", "csv_rows"]
