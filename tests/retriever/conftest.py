"""Fixtures of the Retriever tests: a SASRec trained on the chain world, served by a real tritonserver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serendip.artifacts.sasrec import SASREC_KIND, ItemVocabulary, SASRecArtifact, SASRecConfig
from serendip.artifacts.store import ArtifactWriter
from serendip.core.cluster_tree import ClusterTree
from serendip.models.sasrec.export import write_sasrec_files
from serendip.models.sasrec.ranking_metrics import popularity_scores
from serendip.models.sasrec.sequences import leave_last_out, positive_sequences
from serendip.models.sasrec.training import TrainingOptions, train_sasrec
from tests.retriever.chain_world import build_tree, chain_interactions
from triton_models.launcher import TritonServer
from triton_models.seqrec import write_seqrec_model


@pytest.fixture(scope="session")
def cluster_tree() -> ClusterTree:
    return build_tree()


@pytest.fixture(scope="session")
def trained_sasrec(tmp_path_factory: pytest.TempPathFactory, cluster_tree: ClusterTree):
    """A SASRec trained for a few epochs on the chain world, exported to a sasrec directory."""
    vocabulary = ItemVocabulary(cluster_tree.item_ids)
    split = leave_last_out(positive_sequences(chain_interactions(), vocabulary, min_satisfaction=0.5))
    config = SASRecConfig(num_items=len(vocabulary), hidden=32, max_len=20, dropout=0.1)
    result = train_sasrec(split, config, TrainingOptions(epochs=12, batch_size=64, learning_rate=3e-3, eval_every=4))
    with ArtifactWriter(tmp_path_factory.mktemp("artifacts"), SASREC_KIND, {}, version="v-test") as writer:
        popularity = popularity_scores(split.train, len(vocabulary))
        write_sasrec_files(writer.dir, result.model, config, vocabulary, popularity)
    return result, split, SASRecArtifact.load(writer.final_dir)


@pytest.fixture(scope="session")
def seqrec_repository(tmp_path_factory: pytest.TempPathFactory, trained_sasrec) -> Path:
    repository = tmp_path_factory.mktemp("seqrec-repository")
    write_seqrec_model(repository, trained_sasrec[2])
    return repository


@pytest.fixture(scope="session")
def seqrec_triton(seqrec_repository: Path) -> Iterator[TritonServer]:
    """The real tritonserver serving the trained seqrec model."""
    with TritonServer(seqrec_repository) as server:
        yield server
