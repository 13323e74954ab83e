"""``python -m serendip.models.sasrec.ann``: per-cluster ANN indexes (FAISS) over a sasrec artifact's item embeddings.

The clusters are one level of a tree artifact (the Retriever's planning level). The index type follows the
cluster's size: none below ``--exact-below`` items (the Retriever ranks those exactly), HNSW (``IndexHNSWFlat``)
from there up to ``--ivf-from``, IVF-Flat (about sqrt(n) lists) from ``--ivf-from`` on; both search the inner
product (see :func:`build_index`). Search settings (``efSearch``, ``nprobe``) are stored in each index.

Defaults, from measurements on a 1M-item world's SASRec embeddings (docs/scale.md): exact below 50,000 items
(exact top-k takes about 1 ms at 28k rows, and an IVF search reaching recall@10 0.98 there probes most lists and
costs as much); IVF-Flat with nprobe 128 from 50,000 on (recall@10 0.98-0.99 at 100k-1M, 1-3 ms against 3-60 ms
exact; its build time grows linearly, HNSW's faster, and HNSW's recall was lower: 0.87 at efSearch 384). HNSW
stays available with ``--ivf-from`` above ``--exact-below``.
Publishes a ``sasrec_ann`` artifact (layout: ``serendip.artifacts.sasrec``) whose inputs record both versions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class AnnOptions:
    """Which index a cluster gets, and its build and search settings."""

    exact_below: int = 50_000
    """clusters with fewer items get no index (exact top-k)"""
    ivf_from: int = 50_000
    """clusters with at least this many items get IVF-Flat instead of HNSW"""
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


def build_index(embeddings: np.ndarray, options: AnnOptions) -> faiss.Index | None:
    """A maximum-inner-product index over ``embeddings`` (``[n, D]``; id ``i`` = row ``i``), None below
    ``exact_below``.

    Inner product is reduced to L2 (Bachrach et al. 2014): each item gets the extra coordinate
    ``sqrt(max_norm² - |x|²)`` and the query 0, through a ``LinearTransform`` stored in front of the index, so a
    caller searches with the plain ``D``-dimensional user embedding. HNSW built on raw inner products links
    high-norm items only and misses neighbours (recall@10 about 0.9 even at ``efSearch`` = n).
    """
    count, dimension = embeddings.shape
    if count < options.exact_below:
        return None
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
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
