"""``python -m serendip.models.sasrec.ann``: per-cluster ANN indexes (FAISS) over a sasrec artifact's item embeddings.

The clusters are one level of a tree artifact (the Retriever's planning level). The index type follows the
cluster's size: none below ``--exact-below`` items (the Retriever ranks those exactly); from there up to
``--ivf-from`` a scan of 4-bit product-quantised codes (``IndexPQFastScan``, one sub-quantiser per dimension) whose
best ``--refine-factor`` x k candidates are rescored exactly (``IndexRefineFlat``), or HNSW with ``--mid-index
hnsw``; IVF-Flat (about sqrt(n) lists) from ``--ivf-from`` on. All search the inner product (see
:func:`build_index`); search settings (``k_factor``, ``efSearch``, ``nprobe``) are stored in each index.

Defaults, from measurements on a 1M-item world's SASRec embeddings (docs/scale.md): exact below 5,000 items (a
scan of the float rows is as fast there); the quantised scan up to 100,000 items (at 28k items recall@10 0.995 in
0.15-0.2 ms against 0.7-1 ms exact; 0.98 at 100k random items); IVF-Flat with nprobe 128 above (recall@10
0.98-0.99 at 100k-1M, 1-3 ms against 3-60 ms exact). HNSW's recall stayed lower (0.87 at efSearch 384).
Publishes a ``sasrec_ann`` artifact (layout: ``serendip.artifacts.sasrec``) whose inputs record both versions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from serendip.artifacts.sasrec import (
    ANN_INDEX_DIR,
    SASREC_ANN_KIND,
    SASREC_KIND,
    SASRecArtifact,
    cluster_members,
    write_ann_indexes,
)
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, ArtifactWriter, input_record, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.core.cli import run_job
from serendip.core.cluster_tree import DEFAULT_PLANNING_LEVEL, ClusterTree

PQ_BITS = 4
"""bits per code of the quantised scan (FAISS's fast scan takes 4)"""


@dataclass(frozen=True)
class AnnOptions:
    """Which index a cluster gets, and its build and search settings."""

    exact_below: int = 5_000
    """clusters with fewer items get no index (exact top-k)"""
    ivf_from: int = 100_000
    """clusters with at least this many items get IVF-Flat instead of the --mid-index"""
    mid_index: Literal["pq_fastscan", "hnsw"] = "pq_fastscan"
    """index of the clusters from --exact-below up to --ivf-from: quantised scan with exact rescoring, or HNSW"""
    refine_factor: int = 50
    """quantised scan: candidates per wanted item that are rescored exactly"""
    hnsw_m: int = 32
    """HNSW links per node"""
    ef_construction: int = 160
    """HNSW candidate list while building"""
    ef_search: int = 384
    """HNSW candidate list while searching (raised to k by FAISS when k is larger)"""
    nprobe: int = 128
    """IVF lists searched per query"""
    seed: int = 0
    """IVF k-means seed"""

    def __post_init__(self) -> None:
        if not 1 <= self.exact_below <= self.ivf_from:
            raise ValueError(f"need 1 <= --exact-below <= --ivf-from, not {self.exact_below} and {self.ivf_from}")
        if self.refine_factor < 1:
            raise ValueError(f"--refine-factor must be at least 1, not {self.refine_factor}")


def build_index(embeddings: np.ndarray, options: AnnOptions) -> faiss.Index | None:
    """A maximum-inner-product index over ``embeddings`` (``[n, D]``; id ``i`` = row ``i``), None below
    ``exact_below`` (and below the 16 items a 4-bit quantiser needs to train).

    The quantised scan searches the inner product directly. For HNSW and IVF, inner product is reduced to L2
    (Bachrach et al. 2014): each item gets the extra coordinate ``sqrt(max_norm² - |x|²)`` and the query 0, through
    a ``LinearTransform`` stored in front of the index, so a caller searches with the plain ``D``-dimensional user
    embedding. HNSW built on raw inner products links high-norm items only and misses neighbours (recall@10 about
    0.9 even at ``efSearch`` = n).
    """
    count, dimension = embeddings.shape
    if count < options.exact_below:
        return None
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    if count < options.ivf_from and options.mid_index == "pq_fastscan":
        return _refined_quantised_scan(vectors, options.refine_factor)
    norms = np.linalg.norm(vectors, axis=1)
    extra = np.sqrt(np.maximum(norms.max() ** 2 - norms**2, 0.0))
    augmented = np.ascontiguousarray(np.hstack([vectors, extra[:, None]]), dtype=np.float32)
    if count < options.ivf_from:
        index = faiss.IndexHNSWFlat(dimension + 1, options.hnsw_m)
        index.hnsw.efConstruction = options.ef_construction
        index.hnsw.efSearch = options.ef_search
    else:
        lists = round(math.sqrt(count))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dimension + 1), dimension + 1, lists)
        index.cp.seed = options.seed
        index.train(augmented)
        index.nprobe = min(options.nprobe, lists)
    index.add(augmented)
    append_zero = faiss.LinearTransform(dimension, dimension + 1, False)
    faiss.copy_array_to_vector(np.eye(dimension + 1, dimension, dtype=np.float32).ravel(), append_zero.A)
    append_zero.is_trained = True
    return faiss.IndexPreTransform(append_zero, index)


def _refined_quantised_scan(vectors: np.ndarray, refine_factor: int) -> faiss.Index | None:
    """4-bit codes, one per dimension, scanned with SIMD lookup tables; the best ``refine_factor`` x k rescored on
    the float rows. None when there are fewer rows than a 4-bit quantiser's 16 centroids."""
    count, dimension = vectors.shape
    if count < 2**PQ_BITS:
        return None
    scan = faiss.IndexPQFastScan(dimension, dimension, PQ_BITS, faiss.METRIC_INNER_PRODUCT)
    scan.pq.cp.min_points_per_centroid = 1  # a cluster of a few hundred items trains well enough; no warning
    scan.train(vectors)
    index = faiss.IndexRefineFlat(scan)
    index.add(vectors)
    index.k_factor = refine_factor
    return index


@dataclass(frozen=True)
class BuildAnnJob(AnnOptions):
    """Options of one index build: the inputs, the cluster level and the index settings."""

    sasrec: Path | None = None
    """sasrec artifact (version or kind dir; None: <artifacts>/sasrec, LATEST)"""
    tree: Path | None = None
    """tree artifact (version or kind dir; None: <artifacts>/tree, LATEST)"""
    planning_level: int = DEFAULT_PLANNING_LEVEL
    """tree level whose nodes are the Retriever's clusters"""
    artifacts: Path = DEFAULT_ARTIFACTS_ROOT
    """artifacts root (the index is published under <artifacts>/sasrec_ann)"""


def run(job: BuildAnnJob) -> Path:
    """Build an index for every large enough cluster, publish; returns the artifact version directory."""
    sasrec_dir = resolve_artifact(job.sasrec or job.artifacts / SASREC_KIND, SASREC_KIND)
    tree_dir = resolve_artifact(job.tree or job.artifacts / TREE_KIND, TREE_KIND)
    artifact = SASRecArtifact.load(sasrec_dir)
    tree = ClusterTree.load(tree_dir)
    indexes = {}
    for cluster_id, rows in cluster_members(artifact.vocabulary, tree, job.planning_level):
        index = build_index(artifact.item_embeddings[rows], job)
        if index is not None:
            indexes[cluster_id] = index
    options = {name: value for name, value in asdict(job).items() if name in AnnOptions.__dataclass_fields__}
    parameters = {"planning_level": job.planning_level, "options": options}
    inputs = {"sasrec": input_record(sasrec_dir), "tree": input_record(tree_dir)}
    with ArtifactWriter(
        job.artifacts, SASREC_ANN_KIND, parameters, inputs=inputs, bulk_dirs=(ANN_INDEX_DIR,)
    ) as writer:
        write_ann_indexes(writer.dir, job.planning_level, indexes)
        writer.counts.update({"clusters": len(tree.nodes_at(job.planning_level)), "indexed_clusters": len(indexes)})
    print(f"{len(indexes)} of {writer.counts['clusters']} clusters indexed; published {writer.final_dir}")
    return writer.final_dir


def main(argv: list[str] | None = None) -> Path:
    """``run`` with options from the command line."""
    return run_job(run, BuildAnnJob, argv, __doc__, "python -m serendip.models.sasrec.ann")


if __name__ == "__main__":
    main()
