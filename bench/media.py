"""``python -m bench.media [--n N] [--runs R] [--workers W] [--json FILE]``: hashing speed.

N generated 1-megapixel JPEGs (1155 x 866, quality 90, eight distinct photo-like scenes)
are written to a temporary folder, then hashed by :func:`hashfed.media.hash_paths` (MD5,
SHA-256, decode, PDQ) with one worker (in process, no pool) and with every core (the
process pool, its start-up included: that is what a command pays). Each case runs
``--runs`` times (at least 3); the median is reported.

What bounds the speed: one core's time per image is split into its stages, each timed
alone over the same files (median of the runs): reading plus both digests, decoding to
RGB (Pillow's JPEG decoder and our mode conversion), and the reference PDQ (luma,
Jarosz filter, DCT). CPU time per image (this process plus the pool's workers) is
reported beside each rate: on a machine shared with other work the wall-clock rate of
the pool depends on what else runs, its CPU time per image does not, so comparing the
two CPU figures shows the pool's own overhead. Images are not written by the benchmark's timed part, and the files
sit in the page cache after the first run, so disk speed is not measured.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have exited (the pool's workers,
    once the pool is shut down)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def run_hash(paths: list[Path], workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to hash ``paths`` with ``workers``."""
    cpu = _cpu_seconds()
    started = time.perf_counter()
    results = list(hash_paths([str(p) for p in paths], workers=workers, options=HashOptions()))
    elapsed = time.perf_counter() - started
    if not all(r.ok for r in results):
        raise RuntimeError(f"a file failed: {next(r for r in results if not r.ok)}")
    return elapsed, _cpu_seconds() - cpu


def _median_run(paths: list[Path], workers: int, runs: int) -> tuple[float, float]:
    timings = [run_hash(paths, workers) for _ in range(runs)]
    return statistics.median(t[0] for t in timings), statistics.median(t[1] for t in timings)


def _pdqhash_luma(rgb: np.ndarray) -> np.ndarray:
    """The luma step ``pdqhash.compute`` runs in numpy (float64) before the reference
    C++, and its zeroed scratch buffer, timed alone to split the PDQ stage."""
    grey = (rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114).astype("float32")
    np.zeros_like(grey)
    return grey


def stage_times(paths: list[Path]) -> dict[str, float]:
    """Seconds per stage over all files, one core."""
    read = decode = pdq = luma = 0.0
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
        _pdqhash_luma(rgb)
        luma += time.perf_counter() - hashed
        read += read_done - started
        decode += decoded - read_done
        pdq += hashed - decoded
    return {"read+digests": read, "decode": decode, "pdq": pdq, "pdq: luma": luma}


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
        one, one_cpu = _median_run(paths, 1, runs)
        many, many_cpu = _median_run(paths, args.workers, runs)
        load = os.getloadavg()[0]
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
        "one_worker_cpu_ms_per_image": 1000 * one_cpu / args.n,
        "all_workers_cpu_ms_per_image": 1000 * many_cpu / args.n,
        "load_average_1min": load,
        "stage_ms_per_image": {name: 1000 * seconds / args.n for name, seconds in stages.items()},
    }
    print(f"images: {args.n} JPEGs, 1 MP; median of {runs} runs; {report['machine']}")
    print(f"  load average (1 min) at the end of the timed runs: {load:.2f}")
    print(f"  1 worker (in process):  {report['one_worker_images_per_s']:8.1f} images/s"
          f"  CPU {report['one_worker_cpu_ms_per_image']:6.1f} ms/image")
    print(f"  {args.workers} workers (pool):      {report['all_workers_images_per_s']:8.1f} images/s"
          f"  CPU {report['all_workers_cpu_ms_per_image']:6.1f} ms/image  ({report['speedup']:.2f}x)")
    stage_ms = report["stage_ms_per_image"]
    total = stage_ms["read+digests"] + stage_ms["decode"] + stage_ms["pdq"]
    for name in ("read+digests", "decode", "pdq"):
        print(f"  {name:<14} {stage_ms[name]:7.2f} ms/image  {100 * stage_ms[name] / total:5.1f}%")
    print(f"    of which pdqhash's numpy luma step {stage_ms['pdq: luma']:.2f} ms, the reference C++ the rest")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
