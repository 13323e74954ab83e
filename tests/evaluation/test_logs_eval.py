"""``python -m serendip.jobs.evaluate`` on an imported catalogue (items.parquet + interactions.parquet, no world):
the log-based evaluation runs every arm that needs no simulator and writes the report, with no traceback."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from serendip.artifacts.plans import plan_rows, publish_plan_table
from serendip.artifacts.tree import load_tree
from serendip.evaluation.logs_eval import fallback_candidates, training_log, transitions
from serendip.evaluation.simulator import EvaluationRequest
from serendip.jobs import build_tree, curate, evaluate, train_sasrec
from serendip.offline.world import generate_world
from tests.data.worlds import TEST_WORLD

QUICK = ["--users", "60", "--resamples", "20", "--seed", "1"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 200-item test world (no videos) imported as a user catalogue, with its k-means tree and curation."""
    scratch = tmp_path_factory.mktemp("world")
    world_dir = generate_world(dataclasses.replace(TEST_WORLD, with_video=False), scratch, log=lambda _: None)
    root = tmp_path_factory.mktemp("catalogue")
    items = pd.read_parquet(world_dir / "items.parquet")
    items.drop(columns=["taxonomy", "video_path", "thumbnail_path"], errors="ignore").to_parquet(root / "items.parquet")
    pd.read_parquet(world_dir / "interactions.parquet").to_parquet(root / "interactions.parquet")
    build_tree.main(["--artifacts", str(root), "--method", "kmeans", "--branching", "2,2,3,2", "--quiet"])
    curate.main(["--artifacts", str(root), "--top-k", "5", "--variants", "text_only", "--quiet"])
    return root


def test_imported_catalogue_is_evaluated_on_its_logs(
    imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = evaluate.main(["--artifacts", str(imported), "--report-dir", str(tmp_path / "r"), *QUICK])
    console = capsys.readouterr().out
    assert "Traceback" not in console
    assert "NOTE: not computed without a simulator: positive-feedback ratio (PFR)" in console
    assert "arm exploitation skipped: no sasrec artifact" in console
    results = json.loads((report / "metrics.json").read_text())
    assert results["mode"] == "logs" and results["requests"] == 60
    assert [arm["name"] for arm in results["arms"]] == ["popular_in_cluster", "fallback", "random_sibling"]
    assert set(results["skipped_arms"]) == {"exploitation", "context_similar", "bandit", "plan_table"}
    for arm in results["arms"]:
        record = results["metrics"][arm["name"]]["cluster_hit"]
        assert 0 <= record["low"] <= record["value"] <= record["high"] <= 1
        assert f"logs_{arm['name']}_serendipitous_hit:" in console
    # popularity stays in the context's cluster: never novel, never a serendipitous hit
    assert results["metrics"]["popular_in_cluster"]["novelty"]["value"] == 0
    assert results["metrics"]["popular_in_cluster"]["serendipitous_hit"]["value"] == 0
    # a sibling arm names the target's cluster only when the target is serendipitous
    fallback = results["metrics"]["fallback"]
    assert fallback["serendipitous_hit"]["value"] == fallback["cluster_hit"]["value"] > 0
    table = (report / "table.md").read_text()
    assert "**Needs a simulator.**" in table and "| FALLBACK policy (best logged sibling) |" in table
    assert "logs_serendipitous_target_share:" in table


def test_missing_tree_is_one_line(tmp_path: Path, imported: Path) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    for name in ("items.parquet", "interactions.parquet"):
        (root / name).write_bytes((imported / name).read_bytes())
    with pytest.raises(SystemExit) as exited:
        evaluate.main(["--artifacts", str(root), "--report-dir", str(tmp_path / "r"), *QUICK])
    message = str(exited.value.code)  # SystemExit(message): the interpreter prints it and exits with status 1
    assert message.startswith("evaluate: ") and "\n" not in message
    assert "has no tree artifact; run python -m serendip.jobs.build_tree" in message


def test_fallback_prior_uses_only_the_logs_before_each_target(imported: Path) -> None:
    interactions = pd.DataFrame(
        {
            "user_id": ["u"] * 4,
            "item_id": ["a", "b", "c", "d"],
            "ts": [1, 2, 3, 4],
            "satisfaction": [0.9, 0.8, 0.7, 0.6],
            "context_item_id": [None, "a", None, "c"],
        }
    )
    request = EvaluationRequest("r0", "u", "b", ("a", "b"), "c")
    log = training_log(interactions, [request])
    assert log["item_id"].tolist() == ["a", "b"]
    moves = transitions(interactions)
    assert list(zip(moves["context_item_id"], moves["item_id"], strict=True)) == [("a", "b"), ("b", "c"), ("c", "d")]
    tree = load_tree(imported / "tree")
    item = tree.item_ids[0]
    sibling_item = tree.items_in(tree.siblings(tree.node_of(item, 3))[0])[0]
    same_cluster = next(i for i in tree.items_in(tree.node_of(item, 3)) if i != item)
    moves = pd.DataFrame(
        {"context_item_id": [item, item, item], "item_id": [sibling_item, sibling_item, same_cluster]}
    ).assign(satisfaction=[1.0, 0.5, 0.9])
    candidates = fallback_candidates(moves, tree, 3, 1)
    assert candidates.to_dict("records") == [
        {"context_item_id": item, "cluster_id": tree.node_of(sibling_item, 3), "satisfaction": 0.75, "pairs": 2}
    ]


@pytest.mark.slow  # ~10 s: trains a small SASRec on the imported logs
def test_sasrec_and_plan_table_arms(imported: Path, tmp_path: Path) -> None:
    root = tmp_path / "full"
    root.mkdir()
    for name in ("items.parquet", "interactions.parquet"):
        (root / name).write_bytes((imported / name).read_bytes())
    build_tree.main(["--artifacts", str(root), "--method", "kmeans", "--branching", "2,2,3,2", "--quiet"])
    train_sasrec.main(["--data", str(root), "--artifacts", str(root), "--epochs", "3", "--hidden", "16"])
    tree = load_tree(root / "tree")
    rows = [
        row
        for item in tree.item_ids
        for row in plan_rows(item, [(c, 1.0, "") for c in tree.siblings(tree.node_of(item, 3))])
    ]
    publish_plan_table(root, rows, {"test": True})
    report = evaluate.main(["--artifacts", str(root), "--report-dir", str(tmp_path / "r"), *QUICK, "--quiet"])
    results = json.loads((report / "metrics.json").read_text())
    assert [arm["name"] for arm in results["arms"]] == [
        "popular_in_cluster",
        "exploitation",
        "context_similar",
        "fallback",
        "bandit",
        "plan_table",
        "random_sibling",
    ]
    assert results["skipped_arms"] == {}
    assert results["metrics"]["exploitation"]["item_hit"]["value"] > 0
    assert "sasrec" in results["inputs"] and "plans" in results["inputs"]
