"""PDQ behaves as a perceptual hash on generated photo-like images: edited copies stay
within the match distance, unrelated images do not; dihedral variants name the right
transform; low-quality hashes are dropped with a warning."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from hashfed.media import (
    Dihedral,
    HashOptions,
    MediaHash,
    dihedral_of_rgb,
    hamming,
    hash_file,
    pdq_of_rgb,
)
from hashfed.protocol.hashtypes import PDQ_MATCH_DISTANCE

from .media_images import photo

ORIGINAL = photo(1)  # 1024 x 768


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _crop_area(image: Image.Image, fraction: float) -> Image.Image:
    """A centred crop that removes ``fraction`` of the area."""
    keep = (1 - fraction) ** 0.5
    width, height = image.size
    dx, dy = round(width * (1 - keep) / 2), round(height * (1 - keep) / 2)
    return image.crop((dx, dy, width - dx, height - dy))


EDITS = {
    "resize-half": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "jpeg-quality-50": lambda im: _jpeg(im, 50),
    "crop-5-percent-of-area": lambda im: _crop_area(im, 0.05),
    "brightness-plus-20-percent": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
}


def _pdq(image: Image.Image) -> str:
    return pdq_of_rgb(np.asarray(image.convert("RGB"))).value


def test_the_original_has_full_quality() -> None:
    assert pdq_of_rgb(np.asarray(ORIGINAL)).quality >= 80


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_edited_copies_match(edit: str) -> None:
    assert hamming(_pdq(ORIGINAL), _pdq(EDITS[edit](ORIGINAL))) <= PDQ_MATCH_DISTANCE


@pytest.mark.parametrize("seed", [2, 3, 4, 5, 6])
def test_unrelated_images_do_not_match(seed: int) -> None:
    assert hamming(_pdq(ORIGINAL), _pdq(photo(seed))) > PDQ_MATCH_DISTANCE


# What each variant means, as numpy transforms of the pixel rows and columns.
TRANSFORMS = {
    Dihedral.ROTATE90: lambda a: np.rot90(a, 1),
    Dihedral.ROTATE180: lambda a: np.rot90(a, 2),
    Dihedral.ROTATE270: lambda a: np.rot90(a, -1),
    Dihedral.FLIPX: lambda a: a[::-1],
    Dihedral.FLIPY: lambda a: a[:, ::-1],
    Dihedral.FLIP_PLUS1: lambda a: a.swapaxes(0, 1),
    Dihedral.FLIP_MINUS1: lambda a: np.rot90(a, 2).swapaxes(0, 1),
}


@pytest.mark.parametrize("variant", list(TRANSFORMS), ids=[v.value for v in TRANSFORMS])
def test_a_turned_copy_matches_its_named_variant(tmp_path: Path, variant: Dihedral) -> None:
    small = photo(1, (400, 300))
    path = tmp_path / "turned.png"
    Image.fromarray(np.ascontiguousarray(TRANSFORMS[variant](np.asarray(small)))).save(path)
    original = hash_file(str(_saved(small, tmp_path / "original.png")), HashOptions(dihedral=True))
    turned = hash_file(str(path), HashOptions())
    assert isinstance(original, MediaHash) and isinstance(turned, MediaHash) and turned.pdq
    distances = {name: hamming(value, turned.pdq.value) for name, value in original.variants.items()}
    assert min(distances, key=distances.__getitem__) is variant
    assert distances[variant] <= 16  # the reference's filter is not exactly symmetric


def _saved(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


def test_variants_come_from_one_pass_and_the_original_is_the_hash() -> None:
    rgb = np.asarray(photo(1, (400, 300)))
    pdq, variants = dihedral_of_rgb(rgb)
    assert list(variants) == list(Dihedral)
    assert variants[Dihedral.ORIGINAL] == pdq.value == pdq_of_rgb(rgb).value


def test_flat_image_is_dropped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (256, 256), 128).save(path)
    result = hash_file(str(path), HashOptions(dihedral=True))
    assert isinstance(result, MediaHash)
    assert (result.pdq, dict(result.variants)) == (None, {})
    assert result.warnings == ("PDQ quality 0 is under 50: PDQ left out (it would match unrelated images)",)
    assert result.to_json_obj()["pdq"] is None and result.to_json_obj()["quality"] is None


def test_the_quality_bound_is_an_option(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (256, 256), 128).save(path)
    result = hash_file(str(path), HashOptions(min_quality=0))
    assert isinstance(result, MediaHash) and result.pdq is not None
    assert (result.pdq.quality, result.warnings) == (0, ())
