"""Assemble the Retriever's serving state from a ``sasrec`` artifact and a ``tree`` artifact."""

from __future__ import annotations

from pathlib import Path

from retriever.cluster_index import ClusterIndex
from retriever.seqrec_client import SeqrecClient
from retriever.service import RetrievalModel
from serendip.artifacts.sasrec import SASREC_KIND, SASRecAnnIndexes, SASRecArtifact
from serendip.artifacts.store import resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.core.cluster_tree import DEFAULT_PLANNING_LEVEL, ClusterTree


def load_retrieval_model(
    sasrec_path: Path,
    tree_path: Path,
    triton_url: str,
    planning_level: int = DEFAULT_PLANNING_LEVEL,
    ann_path: Path | None = None,
) -> RetrievalModel:
    """Index the model's items by their planning-level cluster and connect to Triton lazily.

    ``sasrec_path``, ``tree_path`` and ``ann_path`` may be version directories, kind directories (their LATEST is
    used) or the artifacts root. With ``ann_path`` the clusters it indexes are searched approximately; it must have
    been built from these sasrec and tree versions at this level (ArtifactError otherwise).
    """
    sasrec_dir = resolve_artifact(sasrec_path, SASREC_KIND)
    tree_dir = resolve_artifact(tree_path, TREE_KIND)
    artifact = SASRecArtifact.load(sasrec_dir)
    tree = ClusterTree.load(tree_dir)
    ann = None
    if ann_path is not None:
        ann = SASRecAnnIndexes.load(ann_path)
        ann.check_built_from(sasrec_dir, tree_dir, planning_level)
    return RetrievalModel(
        vocabulary=artifact.vocabulary,
        index=ClusterIndex.build(artifact, tree, planning_level, ann),
        max_len=artifact.config.max_len,
        client=SeqrecClient(triton_url),
        version=artifact.version,
    )
