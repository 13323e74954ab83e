"""``python -m serendip.jobs.evaluate`` end to end on a tiny world: the real stack for every arm (the text-only MLLM
through a second model repository), the report directory, and a replay of its logs giving the same numbers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.jobs import evaluate, train_mllm
from serendip.pipeline import SMALL, run_pipeline
from triton_models.build_engines import BuildEnginesJob


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """world (200 items) -> tree -> curation -> MLLM (video CoT, a few steps) -> SASRec -> model repository, and a
    text-only MLLM in a second root (so the first root's LATEST stays the video model)."""
    root, text_root = tmp_path_factory.mktemp("artifacts"), tmp_path_factory.mktemp("text-only")
    config = dataclasses.replace(
        SMALL,
        world=dataclasses.replace(SMALL.world, users=200),
        curation=dataclasses.replace(SMALL.curation, variants=("video_cot", "text_only")),
        repository=BuildEnginesJob(),
    )
    built = run_pipeline(root, config, until=REPOSITORY_KIND, log=lambda _: None)
    steps = ["--steps", "4", "--batch-size", "4", "--heldout-limit", "4", "--checkpoint-every", "4"]
    train_mllm.main(
        ["--curation", str(built[CURATION_KIND]), "--variant", "text_only", *steps]
        + ["--artifacts", str(text_root), "--quiet"]
    )
    return root, text_root / "mllm"


@pytest.mark.slow  # about a minute: the pieces have their own tests; `make test-all` runs this end to end
def test_evaluate_writes_the_report_and_replay_reproduces_it(artifacts: tuple[Path, Path], tmp_path: Path) -> None:
    root, text_only = artifacts
    options = ["--users", "60", "--resamples", "20", "--seed", "1", "--quiet"]
    arms_options = ["--text-only-mllm", str(text_only), "--bandit-scope", "novel"]  # the oracle arm is a default
    report = evaluate.main(["--artifacts", str(root), *arms_options, "--report-dir", str(tmp_path / "sim"), *options])
    for name in (
        "table.md",
        "metrics.json",
        "fig6_novelty_quality.png",
        "fig7_engagement.png",
        "fig8_visual_buckets.png",
    ):
        assert (report / name).stat().st_size > 0
    results = json.loads((report / "metrics.json").read_text())
    arms = {arm["name"]: arm for arm in results["arms"]}
    assert list(arms) == ["exploitation", "context_similar", "bandit", "mllm", "mllm_text_only", "oracle"]
    assert {arm["users"] for arm in arms.values()} == {10}  # 60 users in 6 equal segments
    assert all(90 <= arm["impressions"] <= 100 for arm in arms.values())  # a tiny cluster may hold < 10 new items
    for treatment in ("mllm", "mllm_text_only"):
        assert results["diagnostics"][treatment]["plan_source_shares"] == {"LIVE": 1.0}
    assert results["diagnostics"]["oracle"]["relation_shares"].get("affine", 0) > 0.5
    assert results["metrics"]["exploitation"]["serendipity"]["value"] == 0.0
    assert results["metrics"]["bandit"]["cluster_unexpectedness"]["value"] == 1.0  # always a novel cluster
    assert [row["bucket"] for row in results["buckets"][0]["rows"]] == [1, 2, 3, 4, 5]
    assert results["paper_shape"]["statements"]
    assert "Does the paper's shape hold?" in (report / "table.md").read_text()
    nominations = pd.read_parquet(report / "logs" / "nominations.parquet")
    # 60 head requests and, the world having fresh uploads, the same 60 users on a fresh upload each
    assert nominations.groupby("arm")["request_id"].nunique().to_dict() == {name: 120 for name in arms}
    lines = results["segments"]["lines"]
    for name in ("fresh_mllm_pfr", "fresh_best_baseline_pfr", "fresh_mllm_good_cluster_share", "head_mllm_pfr",
                 "head_bandit_pfr", "fresh_oracle_good_cluster_share"):  # fmt: skip
        assert lines[name]["value"] is not None, name
    assert lines["fresh_oracle_good_cluster_share"]["value"] > 0.5  # the uploads' true affine cluster
    assert "fresh_mllm_pfr: " in (report / "table.md").read_text()

    replayed = evaluate.main(
        ["--replay", str(report / "logs"), "--tree", str(root), "--report-dir", str(tmp_path / "replay"), *options]
    )
    again = json.loads((replayed / "metrics.json").read_text())
    for arm in arms:
        for metric in ("novel_impression_ratio", "positive_feedback_ratio", "serendipity", "recall@10"):
            assert again["metrics"][arm][metric] == results["metrics"][arm][metric]
