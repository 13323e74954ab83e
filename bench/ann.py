"""``python -m bench.ann``: recall@10 and per-query latency of the Retriever's per-cluster ANN search against exact.

One cluster per size (default 10k, 30k, 100k and 1M items; clusters under ``AnnOptions.exact_below`` get no index) of
SASRec-sized embeddings (64): ``--data sasrec --sasrec DIR`` draws the items from a trained sasrec artifact's item
table (``make bench-scale`` leaves a 1M-item one in bench/scratch/scale/1m/sasrec) and each query is the mean of 5
random items plus noise; ``clustered`` draws items and queries around 1,024 random centres with varied norms,
``random`` plain Gaussians (no structure: the hard case for IVF). The cluster gets the index the offline build would
give it (``serendip.models.sasrec.ann.build_index``, default options) and every query goes through
``ClusterIndex.top_k`` one at a time, with and without the index: the serving path, over-fetch, exclusions
(``--excluded`` random items of the cluster per query) and exact rescoring included. Recall@10 = |ANN top 10 ∩
exact top 10| / 10, averaged over the queries. Ends with the acceptance row ``retriever_ann_recall_at_10`` (the
smallest recall over the sizes; goal >= 0.98). ``bench.scale`` measures the same on its worlds' own clusters
(:func:`compare`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from retriever.cluster_index import ClusterIndex, ClusterInfo, ScoredItem
from serendip.artifacts.sasrec import SASRecArtifact, searched_index_name
from serendip.models.sasrec.ann import AnnOptions, build_index

HIDDEN = 64
CENTRES = 1024
RECALL_GOAL = 0.98
QUERY_ITEMS = 5
QUERY_NOISE = 0.05


def history_queries(embeddings: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` user-like queries: each the mean of QUERY_ITEMS random rows of ``embeddings`` plus Gaussian noise
    (a stand-in for the encoder's output over a short history)."""
    rows = rng.integers(0, len(embeddings), (count, QUERY_ITEMS))
    noise = rng.normal(scale=QUERY_NOISE, size=(count, embeddings.shape[1]))
    return (embeddings[rows].mean(axis=1) + noise).astype(np.float32)


def synthetic(count: int, data: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` item embeddings and a generator-compatible centre table (empty for ``random``)."""
    if data == "random":
        return rng.standard_normal((count, HIDDEN), dtype=np.float32), np.empty((0, HIDDEN), dtype=np.float32)
    centres = rng.standard_normal((CENTRES, HIDDEN), dtype=np.float32)
    return _around(centres, count, rng), centres


def _around(centres: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    if len(centres) == 0:
        return rng.standard_normal((count, HIDDEN), dtype=np.float32)
    points = centres[rng.integers(0, len(centres), count)] + 0.5 * rng.standard_normal(
        (count, HIDDEN), dtype=np.float32
    )
    scale = rng.uniform(0.5, 1.5, (count, 1)).astype(np.float32) / np.linalg.norm(points, axis=1, keepdims=True)
    return points * scale


def _timed(index: ClusterIndex, user: np.ndarray, cluster: str, exclude: list[str]) -> tuple[list[ScoredItem], float]:
    """The top 10 of ``cluster`` and the milliseconds it took."""
    start = time.perf_counter()
    found = index.top_k(user, [cluster], 10, exclude_item_ids=exclude)
    return found, (time.perf_counter() - start) * 1e3


def compare(
    exact: ClusterIndex, approximate: ClusterIndex, requests: Sequence[tuple[str, np.ndarray, list[str]]]
) -> dict[str, float]:
    """Recall@10 of ``approximate`` against ``exact`` and both latencies over (cluster, user, excluded) requests."""
    recalls, exact_ms, ann_ms = [], [], []
    for cluster, user, exclude in requests:
        expected, exact_time = _timed(exact, user, cluster, exclude)
        found, ann_time = _timed(approximate, user, cluster, exclude)
        if expected:  # a request whose exclusions empty the cluster has no top 10 to recall
            recalls.append(len({i.item_id for i in found} & {i.item_id for i in expected}) / len(expected))
        exact_ms.append(exact_time)
        ann_ms.append(ann_time)
    return {
        "recall_at_10": float(np.mean(recalls)),
        "recall_at_10_p5": float(np.percentile(recalls, 5)),
        "exact_p50_ms": float(np.percentile(exact_ms, 50)),
        "exact_p99_ms": float(np.percentile(exact_ms, 99)),
        "ann_p50_ms": float(np.percentile(ann_ms, 50)),
        "ann_p99_ms": float(np.percentile(ann_ms, 99)),
    }


def measure(
    count: int, data: str, queries: int, excluded: int, seed: int = 0, sasrec: Path | None = None
) -> dict[str, float | int | str]:
    """Build one cluster of ``count`` items, index it, and compare ANN with exact top-10 on ``queries`` queries."""
    rng = np.random.default_rng(seed)
    if data == "sasrec":
        if sasrec is None:
            raise ValueError("--data sasrec needs --sasrec DIR")
        table = SASRecArtifact.load(sasrec).item_embeddings
        embeddings = table[np.sort(rng.choice(len(table), size=min(count, len(table)), replace=False))]
        users = history_queries(table, queries, rng)
    else:
        embeddings, centres = synthetic(count, data, rng)
        users = _around(centres, queries, rng)
    count = len(embeddings)
    started = time.perf_counter()
    index = build_index(embeddings, AnnOptions())
    build_seconds = time.perf_counter() - started
    if index is None:
        raise ValueError(f"{count} items is below the exact threshold: nothing to compare")
    item_ids = [f"i{row}" for row in range(count)]
    arguments = ([ClusterInfo("c", 3, "cluster")], [(0, count)], item_ids, embeddings, np.zeros(count))
    exact, approximate = ClusterIndex(*arguments), ClusterIndex(*arguments, ann={"c": index})
    requests = [("c", user, [item_ids[row] for row in rng.integers(0, count, excluded)]) for user in users]
    return {
        "items": count,
        "data": data,
        "index": searched_index_name(index).removeprefix("Index"),
        "build_s": build_seconds,
    } | compare(exact, approximate, requests)


def main(argv: list[str] | None = None) -> None:
    """Measure every size and print a markdown table and the acceptance row."""
    parser = argparse.ArgumentParser(prog="python -m bench.ann", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000, 1_000_000], help="items per cluster"
    )
    parser.add_argument(
        "--data", choices=["sasrec", "clustered", "random"], default="clustered", help="embedding distribution"
    )
    parser.add_argument("--sasrec", type=Path, help="sasrec artifact whose item table --data sasrec draws from")
    parser.add_argument("--queries", type=int, default=300, help="queries per size (default: %(default)s)")
    parser.add_argument("--excluded", type=int, default=20, help="excluded items per query (default: %(default)s)")
    args = parser.parse_args(argv)
    threadpool_limits(limits=1)  # top-k as the Retriever runs it (its --search-threads); the builds too
    print("| items | data | index | build s | recall@10 | exact p50 / p99 ms | ANN p50 / p99 ms | p50 speed-up |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    rows = []
    for count in args.sizes:
        row = measure(count, args.data, args.queries, args.excluded, sasrec=args.sasrec)
        rows.append(row)
        print(
            f"| {count:,} | {row['data']} | {row['index']} | {row['build_s']:.1f} | {row['recall_at_10']:.4f} | "
            f"{row['exact_p50_ms']:.3f} / {row['exact_p99_ms']:.3f} | "
            f"{row['ann_p50_ms']:.3f} / {row['ann_p99_ms']:.3f} | "
            f"{row['exact_p50_ms'] / row['ann_p50_ms']:.1f}x |",
            flush=True,
        )
    recall = min(float(row["recall_at_10"]) for row in rows)
    verdict = "met" if recall >= RECALL_GOAL else "not met"
    print(f"\nretriever_ann_recall_at_10 {recall:.4f} (goal >= {RECALL_GOAL}: {verdict})")


if __name__ == "__main__":
    main()
