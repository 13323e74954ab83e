"""Assemble the Retriever's serving state from a ``sasrec`` artifact and a ``tree`` artifact."""

from __future__ import annotations

from pathlib import Path

from retriever.cluster_index import ClusterIndex
from retriever.seqrec_client import SeqrecClient
from retriever.service import RetrievalModel
from serendip.artifacts.sasrec import SASREC_KIND, SASRecArtifact
from serendip.artifacts.store import resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.core.cluster_tree import DEFAULT_PLANNING_LEVEL, ClusterTree


def load_retrieval_model(
    sasrec_path: Path, tree_path: Path, triton_url: str, planning_level: int = DEFAULT_PLANNING_LEVEL
) -> RetrievalModel:
    """Index the model's items by their planning-level cluster and connect to Triton lazily.

    ``sasrec_path`` and ``tree_path`` may be version directories, kind directories (their LATEST is
    used) or the artifacts root.
    """
    artifact = SASRecArtifact.load(resolve_artifact(sasrec_path, SASREC_KIND))
    tree = ClusterTree.load(resolve_artifact(tree_path, TREE_KIND))
    return RetrievalModel(
        vocabulary=artifact.vocabulary,
        index=ClusterIndex.build(artifact, tree, planning_level),
        max_len=artifact.config.max_len,
        client=SeqrecClient(triton_url),
        version=artifact.version,
    )
