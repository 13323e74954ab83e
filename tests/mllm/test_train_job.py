"""``serendip.jobs.train_mllm`` end to end on a small real world (mp4s): artifact layout, metrics, engine reload."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from serendip.artifacts.curation import load_curation
from serendip.artifacts.keywords import KEYWORD_COLUMNS, publish_keywords
from serendip.artifacts.store import read_manifest
from serendip.jobs import build_tree, curate, make_world, mllm_ablations, train_mllm
from serendip.models.mllm.contexts import load_context
from triton_models.torch_engine import TorchPlannerEngine


@pytest.fixture(scope="module")
def artifacts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96-item world (24 leaves, 32-pixel videos), its taxonomy tree and a 1/2-frame + thumbnail curation."""
    root = tmp_path_factory.mktemp("mllm-jobs")
    world_options = "--items 96 --users 160 --branching 2,2,3,2 --frame-size 32 --num-frames 8 --with-taxonomy"
    make_world.main([*world_options.split(), "--workers", "1", "--artifacts", str(root), "--quiet"])
    build_tree.main(["--world", str(root / "world"), "--workers", "1", "--artifacts", str(root), "--quiet"])
    curate.main(["--world", str(root / "world"), "--tree", str(root / "tree"), "--top-k", "3",
                 "--frame-counts", "1,2", "--artifacts", str(root), "--quiet"])  # fmt: skip
    return root


def test_train_job_publishes_a_servable_artifact(artifacts_root: Path) -> None:
    published = train_mllm.main(
        ["--curation", str(artifacts_root / "curation"), "--artifacts", str(artifacts_root), "--frames", "2",
         "--steps", "3", "--batch-size", "4", "--checkpoint-every", "2", "--max-reasoning-chars", "80",
         "--heldout-limit", "4", "--device", "cpu", "--quiet"]
    )  # fmt: skip
    expected_files = (
        "planner.json grammar.ebnf descriptions.json metrics.json train_log.jsonl curves_recall.png "
        "curves_match_rate.png model/config.json model/model.safetensors model/tokenizer.json model/vision.json "
        "model/preprocessor_config.json checkpoints/step-000002/config.json"
    )
    for name in expected_files.split():
        assert (published / name).is_file(), name
    manifest = read_manifest(published)
    assert manifest["kind"] == "mllm" and manifest["inputs"]["curation"]["kind"] == "curation"
    metrics = json.loads((published / "metrics.json").read_text())
    assert set(metrics["baselines"]) == {"popularity", "random"} and metrics["training"]["steps"] == 3
    assert 0 <= metrics["model"]["recall"] <= metrics["model"]["recall@5"] <= 1

    engine = TorchPlannerEngine.from_artifact(published, device="cpu")
    curation = load_curation(artifacts_root / "curation")
    row = curation.curation.examples.iloc[0]
    context = load_context(row["context_item_id"], row["title"], engine.spec.visual, row["video_path"])
    plan = engine.rank_clusters([context], n=3)[0]
    assert len(plan) == 3 and all(entry.cluster_id in engine.descriptions for entry in plan)


def test_ablation_runner_writes_table_and_figures(artifacts_root: Path, tmp_path: Path) -> None:
    report = mllm_ablations.main(
        ["--curation", str(artifacts_root / "curation"), "--figures", "fig5_thumbnail", "--report-dir",
         str(tmp_path), "--steps", "2", "--batch-size", "4", "--checkpoint-every", "1", "--max-reasoning-chars",
         "40", "--heldout-limit", "3", "--device", "cpu", "--quiet"]
    )  # fmt: skip
    table = json.loads((report / "table.json").read_text())
    assert [row["run"] for row in table["runs"]] == ["video_cot-thumbnail", "video_cot-1"]
    assert all(row["steps"] == 2 and 0 <= row["recall"] <= 1 for row in table["runs"])
    assert "popularity baseline" in (report / "table.md").read_text()
    for name in ("fig5_thumbnail_recall.png", "fig5_thumbnail_match_rate.png", "runs/video_cot-1/train_log.jsonl"):
        assert (report / name).is_file(), name
    assert not (report / "runs" / "video_cot-1" / "model").exists()


def test_rag_variant_trains_on_related_keywords_and_serves_them(artifacts_root: Path) -> None:
    curation = load_curation(artifacts_root / "curation")
    contexts = sorted(set(curation.curation.examples["context_item_id"]))
    related = pd.DataFrame(
        {"item_id": contexts[::2], "related_keywords": ["red accent golf"] * len(contexts[::2]), "neighbours": 1}
    )
    empty = pd.DataFrame(columns=KEYWORD_COLUMNS)
    errors = pd.DataFrame(columns=["item_id", "content_sha256", "error"])
    keywords = publish_keywords(artifacts_root, empty, related, errors, {"test": True})
    base = ["--curation", str(artifacts_root / "curation"), "--artifacts", str(artifacts_root), "--frames", "2",
            "--variant", "video_cot_rag", "--steps", "2", "--batch-size", "4", "--checkpoint-every", "2",
            "--max-reasoning-chars", "40", "--heldout-limit", "3", "--device", "cpu", "--quiet"]  # fmt: skip
    with pytest.raises(SystemExit, match="video_cot_rag needs --keywords"):
        train_mllm.main(base)

    published = train_mllm.main([*base, "--keywords", str(keywords)])
    assert read_manifest(published)["inputs"]["keywords"]["version"] == keywords.name
    assert json.loads((published / "planner.json").read_text())["variant"] == "video_cot_rag"
    engine = TorchPlannerEngine.from_artifact(published, device="cpu")
    assert engine.related_keywords == dict.fromkeys(contexts[::2], "red accent golf")
    rows = curation.curation.examples.drop_duplicates("context_item_id").set_index("context_item_id")
    for item_id, expected in ((contexts[0], "red accent golf"), (contexts[1], "none yet")):
        context = load_context(item_id, "", engine.spec.visual, rows.loc[item_id, "video_path"])
        prompt = engine.encoder.tokenizer.decode(engine.encode_context(context).input_ids)
        assert f"also engaged with: {expected}." in prompt
        assert len(engine.rank_clusters([context], n=2)[0]) == 2
