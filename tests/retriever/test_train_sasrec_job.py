"""The train_sasrec job publishes a complete artifact that the Retriever loads with a tree artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from retriever.loading import load_retrieval_model
from serendip.artifacts.store import ArtifactWriter, read_manifest
from serendip.core.cluster_tree import ClusterTree
from serendip.jobs import train_sasrec
from tests.retriever.chain_world import chain_interactions


def test_job_publishes_artifact_the_retriever_loads(tmp_path: Path, cluster_tree: ClusterTree) -> None:
    data = tmp_path / "data"
    data.mkdir()
    items = pd.DataFrame({"item_id": cluster_tree.item_ids, "title": "t", "impressions": 10})
    items.to_parquet(data / "items.parquet", index=False)
    chain_interactions(num_users=60).to_parquet(data / "interactions.parquet", index=False)
    artifacts = tmp_path / "artifacts"
    version_dir = train_sasrec.main(["--data", str(data), "--artifacts", str(artifacts), "--epochs", "2"])

    metrics = json.loads((version_dir / "metrics.json").read_text())
    assert metrics["sasrec"]["cases"] == 60 and metrics["popularity"]["cases"] == 60
    assert "full ranking" in metrics["protocol"]
    assert len((version_dir / "training_log.jsonl").read_text().splitlines()) == 2
    manifest = read_manifest(version_dir)
    assert manifest["counts"]["items"] == 40 and "user_encoder.pt" in manifest["files"]

    with ArtifactWriter(artifacts, "tree", {"source": "test"}) as writer:
        cluster_tree.save(writer.dir)
    model = load_retrieval_model(artifacts, artifacts, triton_url="127.0.0.1:1")
    assert model.version == version_dir.name
    assert len(model.index) == 40 and set(model.index.clusters) == set(cluster_tree.nodes_at(3))
