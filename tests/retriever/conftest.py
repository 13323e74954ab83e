"""A hand-built world for the Retriever: 8 leaf clusters of 5 items, users who walk item chains."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from retriever.export import SASRecArtifact, write_sasrec_files
from retriever.ranking_metrics import popularity_scores
from retriever.sasrec import SASRecConfig
from retriever.sequences import ItemVocabulary, leave_last_out, positive_sequences
from retriever.training import TrainingOptions, train_sasrec
from serendip.data.cluster_tree import ClusterNode, ClusterTree
from triton_models.launcher import TritonServer
from triton_models.seqrec import write_seqrec_model

ITEMS_PER_LEAF = 5


def build_tree() -> ClusterTree:
    """2 level-1 nodes x 2 children x 2 children x 1 leaf each; items ``i00``..``i39``."""
    nodes, leaves = [], {}
    for a in range(2):
        nodes.append(ClusterNode(f"c1-{a}", 1, None, f"topic {a}"))
        for b in range(2):
            nodes.append(ClusterNode(f"c2-{a}{b}", 2, f"c1-{a}", f"topic {a} area {b}"))
            for c in range(2):
                level3 = f"c3-{a}{b}{c}"
                nodes.append(ClusterNode(level3, 3, f"c2-{a}{b}", f"topic {a} area {b} niche {c}"))
                nodes.append(ClusterNode(f"c4-{a}{b}{c}", 4, level3, f"topic {a} area {b} niche {c} leaf"))
                leaf_number = a * 4 + b * 2 + c
                for i in range(ITEMS_PER_LEAF):
                    leaves[f"i{leaf_number * ITEMS_PER_LEAF + i:02d}"] = f"c4-{a}{b}{c}"
    return ClusterTree(nodes, leaves)


def chain_interactions(num_users: int = 400, length: int = 12, seed: int = 0) -> pd.DataFrame:
    """Each user starts anywhere and steps item k -> k + 3 (mod 40): a learnable next-item rule."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        item = int(rng.integers(40))
        for step in range(length):
            rows.append((f"u{user}", f"i{item:02d}", step, 0.9))
            item = (item + 3) % 40
    return pd.DataFrame(rows, columns=["user_id", "item_id", "ts", "satisfaction"])


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
    directory = tmp_path_factory.mktemp("sasrec") / "v-test"
    directory.mkdir()
    write_sasrec_files(directory, result.model, config, vocabulary, popularity_scores(split.train, len(vocabulary)))
    return result, split, SASRecArtifact.load(directory)


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
