"""Result values: their JSON shape, CSV rows, strictness and pickling (they cross the
pool's process boundary)."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashfed.media import Dihedral, FramePdq, HashFailure, Kind, MediaHash, Pdq, csv_rows
from hashfed.media.sniff import SNIFF_BYTES, Sniffed, Unrecognised, sniff

MD5, SHA = "0" * 32, "a" * 64
P1, P2 = "1" * 64, "2" * 64

hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)


def test_image_json_has_exactly_the_agreed_keys() -> None:
    image = MediaHash(path="a.jpg", kind=Kind.IMAGE, format="JPEG", md5=MD5, sha256=SHA, pdq=Pdq(P1, 90))
    assert image.to_json_obj() == {"path": "a.jpg", "md5": MD5, "sha256": SHA, "pdq": P1, "quality": 90}
    assert list(csv_rows(image)) == [("md5", MD5), ("sha256", SHA), ("pdq", P1)]


def test_dropped_image_json_and_rows() -> None:
    image = MediaHash(path="g.png", kind=Kind.IMAGE, format="PNG", md5=MD5, sha256=SHA, warnings=("low",))
    assert image.to_json_obj() == {"path": "g.png", "md5": MD5, "sha256": SHA, "pdq": None, "quality": None}
    assert list(csv_rows(image)) == [("md5", MD5), ("sha256", SHA)]


def test_video_json_and_distinct_frame_rows() -> None:
    frames = (FramePdq(0.0, Pdq(P1, 80)), FramePdq(1.0, Pdq(P2, 70)), FramePdq(2.0, Pdq(P1, 81)))
    video = MediaHash(path="v.mp4", kind=Kind.VIDEO, format="MP4", md5=MD5, sha256=SHA, frames=frames)
    assert video.to_json_obj() == {
        "path": "v.mp4", "md5": MD5, "sha256": SHA, "pdq": None, "quality": None,
        "frames": [{"seconds": 0.0, "pdq": P1, "quality": 80}, {"seconds": 1.0, "pdq": P2, "quality": 70},
                   {"seconds": 2.0, "pdq": P1, "quality": 81}],
    }
    assert list(csv_rows(video)) == [("md5", MD5), ("sha256", SHA), ("pdq", P1), ("pdq", P2)]


def test_failure_json() -> None:
    failure = HashFailure("x.gif", "corrupt or truncated GIF image", "OSError: broken")
    assert failure.to_json_obj() == {"path": "x.gif", "error": "corrupt or truncated GIF image"}
    assert str(failure) == "x.gif: corrupt or truncated GIF image"
    assert not failure.ok


BAD_VALUES = {
    "md5-upper-case": (dict(md5="A" * 32), "md5 must be 32 lowercase hex digits"),
    "sha256-short": (dict(sha256="a" * 63), "sha256 must be 64 lowercase hex digits"),
    "video-with-image-pdq": (dict(kind=Kind.VIDEO, pdq=Pdq(P1, 60)), "a video has per-frame PDQs only"),
    "image-with-frames": (dict(frames=(FramePdq(0.0, Pdq(P1, 60)),)), "an image has no frames"),
    "some-variants": (dict(pdq=Pdq(P1, 60), variants={Dihedral.ORIGINAL: P1}), "variants are all eight or none"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES), ids=list(BAD_VALUES))
def test_results_are_strict(case: str) -> None:
    changes, message = BAD_VALUES[case]
    fields = dict(path="p", kind=Kind.IMAGE, format="PNG", md5=MD5, sha256=SHA) | changes
    with pytest.raises(ValueError, match=message):
        MediaHash(**fields)


@pytest.mark.parametrize(("value", "quality"), [("G" * 64, 50), (P1[:-1], 50), (P1, 101), (P1, -1), (P1, 50.0)])
def test_pdq_values_are_strict(value: str, quality: int) -> None:
    with pytest.raises(ValueError):
        Pdq(value, quality)


@given(pdq=hex64, quality=st.integers(0, 100), hashes=st.lists(hex64, min_size=8, max_size=8),
       warnings=st.lists(st.text(max_size=20), max_size=3))
def test_results_survive_pickling(pdq: str, quality: int, hashes: list[str], warnings: list[str]) -> None:
    variants = dict(zip(Dihedral, hashes, strict=True))
    image = MediaHash(path="p", kind=Kind.IMAGE, format="PNG", md5=MD5, sha256=SHA, pdq=Pdq(pdq, quality),
                      variants=variants, warnings=tuple(warnings))
    again = pickle.loads(pickle.dumps(image))
    assert again == image and dict(again.variants) == variants


def test_variants_cannot_be_changed_after_the_fact() -> None:
    variants = {name: P1 for name in Dihedral}
    image = MediaHash(path="p", kind=Kind.IMAGE, format="PNG", md5=MD5, sha256=SHA, pdq=Pdq(P1, 60), variants=variants)
    variants[Dihedral.ROTATE90] = P2
    assert image.variants[Dihedral.ROTATE90] == P1
    with pytest.raises(TypeError):
        image.variants[Dihedral.ROTATE90] = P2  # type: ignore[index]


SNIFFS = {
    "jpeg": (b"\xff\xd8\xff\xe0", Sniffed(Kind.IMAGE, "JPEG")),
    "png": (b"\x89PNG\r\n\x1a\n", Sniffed(Kind.IMAGE, "PNG")),
    "gif87": (b"GIF87a", Sniffed(Kind.IMAGE, "GIF")),
    "webp": (b"RIFF\x00\x00\x00\x00WEBPVP8 ", Sniffed(Kind.IMAGE, "WebP")),
    "tiff-le": (b"II*\x00", Sniffed(Kind.IMAGE, "TIFF")),
    "tiff-be": (b"MM\x00*", Sniffed(Kind.IMAGE, "TIFF")),
    "bmp": (b"BM" + b"\x00" * 12 + (40).to_bytes(4, "little"), Sniffed(Kind.IMAGE, "BMP")),
    "bm-text": (b"BM is not a bitmap, just text here", Unrecognised.UNKNOWN),
    "avi": (b"RIFF\x00\x00\x00\x00AVI LIST", Sniffed(Kind.VIDEO, "AVI")),
    "mp4": (b"\x00\x00\x00\x20ftypisom", Sniffed(Kind.VIDEO, "MP4")),
    "mov": (b"\x00\x00\x00\x14ftypqt  ", Sniffed(Kind.VIDEO, "MOV")),
    "old-mov": (b"\x00\x00\x00\x08wide", Sniffed(Kind.VIDEO, "MOV")),
    "webm": (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", Sniffed(Kind.VIDEO, "WebM")),
    "mkv": (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", Sniffed(Kind.VIDEO, "MKV")),
    "avif": (b"\x00\x00\x00\x1cftypavif", Unrecognised.HEIF),
    "html-named-jpg": (b"<!doctype html>", Unrecognised.UNKNOWN),
    "empty": (b"", Unrecognised.UNKNOWN),
}


@pytest.mark.parametrize("case", list(SNIFFS), ids=list(SNIFFS))
def test_sniff(case: str) -> None:
    head, expected = SNIFFS[case]
    assert sniff(head[:SNIFF_BYTES]) == expected


@given(st.binary(max_size=SNIFF_BYTES))
def test_sniff_takes_any_bytes(head: bytes) -> None:
    assert isinstance(sniff(head), Sniffed | Unrecognised)
