"""PDQ of every Pillow mode in every image format equals the reference on the RGB pixels
the rules of ``hashfed.media.pixels`` say, bit for bit.

The expected RGB is computed here from the decoded image with numpy, written apart from
the implementation: palette lookups by hand, compositing in floats, the 16-bit and float
rules as the docstring states them. Only CMYK and LAB use Pillow's conversion on both
sides, because that is the documented rule for them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pdqhash
import pytest
from PIL import Image

from hashfed.media import HashOptions, MediaHash, hash_file, pdq_of_rgb
from hashfed.media.pdq import bits_to_hex
from hashfed.media.pixels import composite_on_white, to_rgb

from .media_images import photo

OPTIONS = HashOptions(min_quality=0)


def _alpha_image() -> Image.Image:
    base = photo(11, (160, 120))
    rgba = np.dstack([np.asarray(base), np.zeros((120, 160), np.uint8)])
    rgba[:, :, 3] = np.linspace(0, 255, 160, dtype=np.uint8)[np.newaxis, :]  # every alpha level
    rgba[:40, :, 3] = 0
    rgba[:40, :, :3] = 0  # fully transparent, black underneath: must hash as white
    rgba[80:, :, 3] = 255
    return Image.fromarray(rgba)


def _source(mode: str) -> Image.Image:
    """A structured image in ``mode`` (quality well above zero)."""
    rgb = photo(7, (160, 120))
    grey = np.asarray(rgb.convert("L")).astype(np.float64)
    if mode in ("1", "L", "RGB", "CMYK"):
        return rgb.convert(mode)
    if mode == "P":
        return rgb.quantize(64)
    if mode == "P+transparency":
        image = rgb.quantize(64)
        image.info["transparency"] = 3
        return image
    if mode == "RGBA":
        return _alpha_image()
    if mode == "LA":
        return _alpha_image().convert("LA")
    if mode == "LAB":
        bands = [Image.fromarray(band) for band in np.asarray(rgb).transpose(2, 0, 1)]
        return Image.merge("LAB", bands)
    if mode == "I;16":
        return Image.fromarray((grey * 257).astype(np.uint16))
    if mode == "I":
        return Image.fromarray((grey * 200 + 1000).astype(np.int32))
    if mode == "F":
        return Image.fromarray((grey / 255 * 3.5 - 1).astype(np.float32))
    raise AssertionError(mode)


def _expected_rgb(path: Path) -> np.ndarray:
    """The RGB that the documented rules give for the decoded file (no EXIF here)."""
    with Image.open(path) as image:
        image.load()
        mode = image.mode
        if mode == "RGB":
            return np.asarray(image)
        if mode in ("L", "1"):
            grey = np.asarray(image).astype(np.uint8) * (255 if mode == "1" else 1)
            return np.dstack([grey] * 3)
        if mode == "P":
            palette = np.array(image.getpalette("RGB"), np.uint8).reshape(-1, 3)
            indexes = np.asarray(image)
            rgb = palette[indexes]
            key = image.info.get("transparency")
            if key is None:
                return rgb
            if isinstance(key, bytes):
                alpha_of = np.full(256, 255, np.uint8)
                alpha_of[: len(key)] = np.frombuffer(key, np.uint8)
            else:
                alpha_of = np.full(256, 255, np.uint8)
                alpha_of[key] = 0
            return _float_composite(rgb, alpha_of[indexes])
        if mode in ("RGBA", "LA"):
            array = np.asarray(image)
            colour = array[:, :, :3] if mode == "RGBA" else np.dstack([array[:, :, 0]] * 3)
            return _float_composite(colour, array[:, :, -1])
        if mode in ("CMYK", "LAB"):
            return np.asarray(image.convert("RGB"))
        if mode.startswith("I;16"):
            return np.dstack([(np.asarray(image) // 256).astype(np.uint8)] * 3)
        if mode == "I":
            return np.dstack([(np.clip(np.asarray(image), 0, 65535) // 256).astype(np.uint8)] * 3)
        if mode == "F":
            values = np.asarray(image).astype(np.float64)
            scaled = np.rint((values - values.min()) / (values.max() - values.min()) * 255)
            return np.dstack([scaled.astype(np.uint8)] * 3)
    raise AssertionError(f"no expectation for decoded mode {mode}")


def _float_composite(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[:, :, np.newaxis] / 255
    return np.rint(colour * a + 255 * (1 - a)).astype(np.uint8)


# (format, source mode, save options): every mode each format can store.
CASES = [
    ("JPEG", "1", {}), ("JPEG", "L", {}), ("JPEG", "RGB", {}), ("JPEG", "CMYK", {}),
    ("PNG", "1", {}), ("PNG", "L", {}), ("PNG", "P", {}), ("PNG", "P+transparency", {}),
    ("PNG", "RGB", {}), ("PNG", "RGBA", {}), ("PNG", "LA", {}), ("PNG", "I;16", {}),
    ("WEBP", "RGB", {"lossless": True}), ("WEBP", "RGBA", {"lossless": True}), ("WEBP", "RGB", {"quality": 80}),
    ("GIF", "P", {}), ("GIF", "P+transparency", {}), ("GIF", "L", {}),
    ("TIFF", "1", {}), ("TIFF", "L", {}), ("TIFF", "P", {}), ("TIFF", "RGB", {}), ("TIFF", "RGBA", {}),
    ("TIFF", "LA", {}), ("TIFF", "CMYK", {}), ("TIFF", "LAB", {}), ("TIFF", "I;16", {}), ("TIFF", "I", {}),
    ("TIFF", "F", {}),
    ("BMP", "1", {}), ("BMP", "L", {}), ("BMP", "P", {}), ("BMP", "RGB", {}),
]


@pytest.mark.parametrize(("fmt", "mode", "save"), CASES, ids=[f"{f}-{m}-{i}" for i, (f, m, _) in enumerate(CASES)])
def test_pdq_equals_reference_on_documented_rgb(tmp_path: Path, fmt: str, mode: str, save: dict) -> None:
    path = tmp_path / f"image.{fmt.lower()}"
    _source(mode).save(path, fmt, **save)
    result = hash_file(str(path), OPTIONS)
    assert isinstance(result, MediaHash), result
    bits, quality = pdqhash.compute(_expected_rgb(path))
    assert result.pdq is not None
    assert (result.pdq.value, result.pdq.quality) == (bits_to_hex(bits), quality)
    assert result.format == {"WEBP": "WebP"}.get(fmt, fmt)


def test_the_cases_cover_every_mode_the_module_documents() -> None:
    modes = {mode for _, mode, _ in CASES}
    assert {"1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "LAB", "I;16", "I", "F"} <= modes


def test_transparent_pixels_hash_as_white_whatever_lies_under_them() -> None:
    rgba = np.asarray(_alpha_image()).copy()
    other = rgba.copy()
    other[:40, :, :3] = 200  # different colour under fully transparent pixels
    assert np.array_equal(composite_on_white(rgba), composite_on_white(other))
    assert (composite_on_white(rgba)[:40] == 255).all()


def test_composite_rounds_like_exact_arithmetic() -> None:
    colour, alpha = np.meshgrid(np.arange(256), np.arange(256))
    rgba = np.dstack([colour, colour, colour, alpha]).astype(np.uint8)
    assert np.array_equal(composite_on_white(rgba), _float_composite(rgba[:, :, :3], rgba[:, :, 3]))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    shown = photo(3, (200, 150))
    stored = shown.transpose(Image.Transpose.ROTATE_90)  # a quarter turn counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "turned.png"
    stored.save(path, exif=exif)
    result = hash_file(str(path), OPTIONS)
    assert isinstance(result, MediaHash) and result.pdq is not None
    assert result.pdq == pdq_of_rgb(np.asarray(shown))


def test_first_frame_of_an_animated_gif(tmp_path: Path) -> None:
    frames = [photo(seed, (120, 90)).quantize(64) for seed in (1, 2)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    first = tmp_path / "first.gif"
    frames[0].save(first)
    one, two = hash_file(str(path), OPTIONS), hash_file(str(first), OPTIONS)
    assert isinstance(one, MediaHash) and isinstance(two, MediaHash)
    assert one.pdq == two.pdq


def test_float_images_stretch_their_finite_range() -> None:
    values = np.array([[np.nan, -2.0, 0.0], [2.0, np.inf, -np.inf]], np.float32)
    grey = to_rgb(Image.fromarray(values))[:, :, 0]
    assert grey.tolist() == [[0, 0, 128], [255, 0, 0]]
    assert not to_rgb(Image.fromarray(np.full((4, 4), 7.5, np.float32))).any()


BAD_OPTIONS = {
    "zero-pixels": ({"max_image_pixels": 0}, "max_image_pixels must be a positive int"),
    "quality-over-100": ({"min_quality": 101}, "min_quality must be an int in 0..100"),
    "float-seconds": ({"max_video_seconds": 1.5}, "max_video_seconds must be a positive int"),
    "dihedral-not-bool": ({"dihedral": 1}, "dihedral must be a bool"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS), ids=list(BAD_OPTIONS))
def test_options_are_checked(case: str) -> None:
    changes, message = BAD_OPTIONS[case]
    with pytest.raises(ValueError, match=message):
        HashOptions(**changes)
