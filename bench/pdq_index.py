"""``python -m bench.pdq_index --n N --data uniform|clustered [--faiss]``: the PDQ index.

Measures, in one process: the build (``PdqIndex.from_arrays``, hashes/s), memory (the
index's own arrays, and the process's RSS after the build and at peak), single-query
latency at D (p50/p99 over ``--single`` queries, in-process; and p99 over those whose
answer has under 1,000 matches: a query near a very common value must return tens of
thousands, and its time is that of the answer, not of the search), bulk throughput
(``search_many`` over ``--queries`` queries), and exactness (answers compared with a
brute-force scan on ``--check`` queries). With ``--faiss``, the same for faiss's
IndexBinaryMultiHash (16 tables of 16 bits, 1 flip: exact for D <= 31 by pigeonhole) and
IndexBinaryHash (one 64-bit table, HMA-style: inexact), with their recall.

Data (numpy, seeded):
    uniform    N random 256-bit hashes
    clustered  families: N/100 centres, each with members 0..40 bits from it; plus 2% of
               rows within 0..3 bits of 5 very common values (near-blank images)
Queries: half near a stored hash or family (0..40 bits off), 1% near a common value, the
rest random (no match): the mix of an upload stream that sometimes matches.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time

import numpy as np

from hashfed.federation.merged.pdq_index import PdqIndex
from hashfed.protocol.hashtypes import PDQ_MATCH_DISTANCE


def flip_random_bits(rng: np.random.Generator, words: np.ndarray, most: int) -> np.ndarray:
    """A copy of ``words`` with each row moved 0..``most`` bits (uniformly; a position
    drawn twice cancels, so some rows move less)."""
    out = words.copy()
    n = len(out)
    moves = rng.integers(0, most + 1, n)
    for slot in range(most):
        pos = rng.integers(0, 256, n)
        bit = np.left_shift(np.uint64(1), (63 - pos % 64).astype(np.uint64))
        bit[moves <= slot] = 0
        word = pos // 64
        for j in range(4):
            out[:, j] ^= np.where(word == j, bit, np.uint64(0))
    return out


def make_data(rng: np.random.Generator, n: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, the centres queries are drawn near)."""
    if kind == "uniform":
        words = rng.integers(0, 2**64, (n, 4), dtype=np.uint64)
        return words, words
    common = rng.integers(0, 2**64, (5, 4), dtype=np.uint64)
    n_common = n // 50
    centres = rng.integers(0, 2**64, (max(1, (n - n_common) // 100), 4), dtype=np.uint64)
    members = centres[rng.integers(0, len(centres), n - n_common)]
    members = flip_random_bits(rng, members, 40)
    near_common = flip_random_bits(rng, common[rng.integers(0, 5, n_common)], 3)
    words = np.concatenate([members, near_common])
    return words[rng.permutation(n)], np.concatenate([centres, common])


def make_queries(rng: np.random.Generator, centres: np.ndarray, common: np.ndarray, count: int):
    queries = rng.integers(0, 2**64, (count, 4), dtype=np.uint64)
    near = count // 2
    queries[:near] = flip_random_bits(rng, centres[rng.integers(0, len(centres), near)], 40)
    n_common = max(1, count // 100)
    picks = common[rng.integers(0, len(common), n_common)]
    queries[near : near + n_common] = flip_random_bits(rng, picks, 10)
    return queries[rng.permutation(count)]


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def brute(words: np.ndarray, ids: np.ndarray, query: np.ndarray, d: int) -> list:
    distance = np.bitwise_count(words[:, 0] ^ query[0])
    for j in range(1, 4):
        distance += np.bitwise_count(words[:, j] ^ query[j])
    hit = np.flatnonzero(distance <= d)
    return sorted(zip(distance[hit].tolist(), ids[hit].tolist(), strict=True))


def bench_faiss(words, ids, queries, checks, expected, d: int) -> list[dict]:
    import faiss  # noqa: PLC0415  (optional: only for the comparison)

    faiss.omp_set_num_threads(1)
    codes = np.ascontiguousarray(words.astype(">u8")).view(np.uint8).reshape(-1, 32)
    qcodes = np.ascontiguousarray(queries.astype(">u8")).view(np.uint8).reshape(-1, 32)
    ccodes = np.ascontiguousarray(checks.astype(">u8")).view(np.uint8).reshape(-1, 32)
    rows = []
    for name, make in [
        ("faiss IndexBinaryMultiHash(16x16, nflip=1)", lambda: _multihash(faiss)),
        ("faiss IndexBinaryHash(b=64, nflip=0)", lambda: faiss.IndexBinaryHash(256, 64)),
    ]:
        before = rss_bytes()
        started = time.perf_counter()
        index = make()
        index.add(codes)
        build_s = time.perf_counter() - started
        index_rss = rss_bytes() - before
        found = 0
        want = 0
        for code, answer in zip(ccodes, expected, strict=True):
            lims, dist, labels = index.range_search(code[None], d + 1)
            got = set(zip(dist.tolist(), ids[labels].tolist(), strict=True))
            found += len(got & set(answer))
            want += len(answer)
        single = []
        for code in qcodes[:1000]:
            started = time.perf_counter()
            index.range_search(code[None], d + 1)
            single.append(time.perf_counter() - started)
        started = time.perf_counter()
        index.range_search(qcodes, d + 1)
        bulk_qps = len(qcodes) / (time.perf_counter() - started)
        rows.append(
            {
                "index": name,
                "build_hashes_per_s": round(len(words) / build_s),
                "rss_growth_bytes": index_rss,
                "p50_ms": round(1e3 * float(np.percentile(single, 50)), 3),
                "p99_ms": round(1e3 * float(np.percentile(single, 99)), 3),
                "bulk_queries_per_s": round(bulk_qps),
                "recall": round(found / want, 4) if want else None,
            }
        )
        del index
    return rows


def _multihash(faiss):
    index = faiss.IndexBinaryMultiHash(256, 16, 16)
    index.nflip = 1
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pdq_index", description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--data", choices=("uniform", "clustered"), default="uniform")
    parser.add_argument("--distance", type=int, default=PDQ_MATCH_DISTANCE)
    parser.add_argument("--queries", type=int, default=10_000, help="bulk queries")
    parser.add_argument("--single", type=int, default=1_000, help="single queries timed")
    parser.add_argument("--check", type=int, default=20, help="queries checked by brute force")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faiss", action="store_true")
    parser.add_argument("--json", help="write the figures to this file too")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    d = args.distance

    started = time.perf_counter()
    words, centres = make_data(rng, args.n, args.data)
    common = centres[-5:]
    ids = np.arange(1, args.n + 1, dtype=np.int64)
    queries = make_queries(rng, centres, common, args.queries)
    data_s = time.perf_counter() - started
    rss_data = rss_bytes()

    started = time.perf_counter()
    index = PdqIndex.from_arrays(ids, words)
    build_s = time.perf_counter() - started
    rss_built = rss_bytes()

    index.search_many(queries[:64], d)  # warm the plans
    single, small = [], []
    for query in queries[: args.single]:
        t0 = time.perf_counter()
        found = index.search(query, d)
        single.append(time.perf_counter() - t0)
        if len(found) < 1000:
            small.append(single[-1])
    started = time.perf_counter()
    answers = index.search_many(queries, d)
    bulk_s = time.perf_counter() - started

    checks = queries[: args.check]
    expected = [brute(words, ids, q, d) for q in checks]
    exact = all(answers[k] == expected[k] for k in range(len(checks)))

    figures = {
        "n": args.n,
        "data": args.data,
        "distance": d,
        "data_gen_s": round(data_s, 1),
        "build_s": round(build_s, 2),
        "build_hashes_per_s": round(args.n / build_s),
        "index_bytes": index.nbytes,
        "rss_data_bytes": rss_data,
        "rss_after_build_bytes": rss_built,
        "rss_peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "p50_ms": round(1e3 * statistics.median(single), 3),
        "p99_ms": round(1e3 * float(np.percentile(single, 99)), 3),
        "p99_ms_answers_under_1000": round(1e3 * float(np.percentile(small, 99)), 3),
        "bulk_queries_per_s": round(len(queries) / bulk_s),
        "mean_matches_per_query": round(sum(map(len, answers)) / len(answers), 1),
        "queries_with_a_match": round(sum(1 for a in answers if a) / len(answers), 3),
        "exact_on_checked": exact,
        "checked_queries": len(checks),
    }
    if args.faiss:
        del index
        figures["faiss"] = bench_faiss(words, ids, queries, checks, expected, d)
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
