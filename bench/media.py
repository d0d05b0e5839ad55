"""``python -m bench.media [--n N] [--runs R] [--workers W] [--json FILE]``: hashing speed.

N generated 1-megapixel JPEGs (1155 x 866, quality 90, eight distinct photo-like scenes)
are written to a temporary folder, then hashed by :func:`hashfed.media.hash_paths` (MD5,
SHA-256, decode, PDQ) with one worker (in process, no pool) and with every core (the
process pool, its start-up included: that is what a command pays). Each case runs
``--runs`` times (at least 3); the median is reported.

What bounds the speed: one core's time per image is split into its stages, each timed
alone over the same files (median of the runs): reading plus both digests, decoding to
RGB (Pillow's JPEG decoder and our mode conversion), and the reference PDQ (luma,
Jarosz filter, DCT). Images are not written by the benchmark's timed part, and the files
sit in the page cache after the first run, so disk speed is not measured.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from hashfed.media import HashOptions, default_workers, hash_paths, pdq_of_rgb
from hashfed.media.pixels import to_rgb

SIZE = (1155, 866)  # 1.0 megapixel


def scene(seed: int) -> Image.Image:
    """A photo-like picture: gradients, soft shapes, noise."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 90 * np.sin(2 * np.pi * (rng.uniform(0.2, 1) * x / width + rng.uniform(0.2, 1) * y / height))
                     for _ in range(3)], axis=2)
    image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        box = (x0, y0, x0 + int(rng.integers(100, 500)), y0 + int(rng.integers(80, 400)))
        draw.ellipse(box, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    image = image.filter(ImageFilter.GaussianBlur(4))
    noisy = np.asarray(image).astype(np.int16) + rng.normal(0, 6, (height, width, 3)).astype(np.int16)
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def write_images(folder: Path, n: int) -> list[Path]:
    scenes = [scene(seed) for seed in range(8)]
    paths = []
    for index in range(n):
        path = folder / f"{index:06}.jpg"
        scenes[index % 8].save(path, "JPEG", quality=90 - index % 5)  # distinct bytes per file
        paths.append(path)
    return paths


def run_hash(paths: list[Path], workers: int) -> float:
    started = time.perf_counter()
    results = list(hash_paths([str(p) for p in paths], workers=workers, options=HashOptions()))
    elapsed = time.perf_counter() - started
    if not all(r.ok for r in results):
        raise RuntimeError(f"a file failed: {next(r for r in results if not r.ok)}")
    return elapsed


def stage_times(paths: list[Path]) -> dict[str, float]:
    """Seconds per stage over all files, one core."""
    read = decode = pdq = 0.0
    for path in paths:
        started = time.perf_counter()
        data = path.read_bytes()
        hashlib.md5(data, usedforsecurity=False).hexdigest()
        hashlib.sha256(data).hexdigest()
        read_done = time.perf_counter()
        with Image.open(path) as image:
            image.load()
            rgb = to_rgb(image)
        decoded = time.perf_counter()
        pdq_of_rgb(rgb)
        hashed = time.perf_counter()
        read += read_done - started
        decode += decoded - read_done
        pdq += hashed - decoded
    return {"read+digests": read, "decode": decode, "pdq": pdq}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.media", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images (default 200)")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (at least 3)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="for the all-cores case")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    runs = max(3, args.runs)
    with tempfile.TemporaryDirectory(prefix="hashfed-bench-media-") as folder:
        print(f"writing {args.n} JPEGs of {SIZE[0]}x{SIZE[1]} ...", file=sys.stderr)
        paths = write_images(Path(folder), args.n)
        one = statistics.median(run_hash(paths, 1) for _ in range(runs))
        many = statistics.median(run_hash(paths, args.workers) for _ in range(runs))
        stage_runs = [stage_times(paths) for _ in range(runs)]
        stages = {name: statistics.median(run[name] for run in stage_runs) for name in stage_runs[0]}
    report = {
        "n": args.n,
        "runs": runs,
        "machine": f"{platform.machine()}, {default_workers()} cores, Python {platform.python_version()}",
        "one_worker_images_per_s": args.n / one,
        "workers": args.workers,
        "all_workers_images_per_s": args.n / many,
        "speedup": one / many,
        "stage_ms_per_image": {name: 1000 * seconds / args.n for name, seconds in stages.items()},
    }
    print(f"images: {args.n} JPEGs, 1 MP; median of {runs} runs; {report['machine']}")
    print(f"  1 worker (in process):  {report['one_worker_images_per_s']:8.1f} images/s")
    print(f"  {args.workers} workers (pool):      {report['all_workers_images_per_s']:8.1f} images/s"
          f"  ({report['speedup']:.2f}x)")
    total = sum(report["stage_ms_per_image"].values())
    for name, ms in report["stage_ms_per_image"].items():
        print(f"  {name:<14} {ms:7.2f} ms/image  {100 * ms / total:5.1f}%")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
