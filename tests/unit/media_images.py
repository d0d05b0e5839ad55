"""Generated pictures for the media tests: seeded, so every run makes the same pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def photo(seed: int, size: tuple[int, int] = (1024, 768)) -> Image.Image:
    """A photo-like RGB image: smooth gradients, soft shapes, sensor-like noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.zeros((height, width, 3))
    for channel in range(3):
        fx, fy = rng.uniform(0.2, 1.0, 2)
        phase = rng.uniform(0, 2 * np.pi)
        base[:, :, channel] = 128 + 90 * np.sin(2 * np.pi * (fx * x / width + fy * y / height) + phase)
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        w, h = rng.integers(width // 6, width // 2), rng.integers(height // 6, height // 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = (int(x0), int(y0), int(x0 + w), int(y0 + h))
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(4))
    noisy = np.asarray(image).astype(np.int16) + rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))
