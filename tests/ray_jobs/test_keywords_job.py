"""The item keywords job: the CoT model's descriptions summarised, a run resumed from its shards, incremental and
unchanged runs, related keywords from the logs, a model change, and a model without chain of thought refused."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from ray_jobs import decode_frames, item_keywords
from ray_jobs.keywords_job import KEYWORD_LIMIT, WORLD_INTERACTIONS, KeywordsJob, keyword_work
from ray_jobs.plans_job import PlanningModel
from ray_jobs.sharded_run import CommittedShards
from serendip.artifacts.frames import read_rows, read_store_index, row_pixels
from serendip.artifacts.keywords import (
    KEYWORDS_FILE,
    RELATED_FILE,
    load_item_keywords,
    load_related_keywords,
)
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.store import MANIFEST_NAME, ArtifactWriter, read_manifest
from serendip.artifacts.world import WORLD_KIND, load_world
from serendip.core.errors import ArtifactError
from serendip.models.mllm.planner_spec import PLANNER_FILE, PlannerSpec
from serendip.models.mllm.prompts import PromptVariant
from serendip.offline.item_keywords import related_keywords, summary_keywords
from serendip.pipeline import SMALL, run_pipeline
from tests.ray_jobs.conftest import Chain, write_items

SHARD_SIZE = 4


@pytest.fixture(scope="module")
def cot_chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """The package chain's 96-item world with a video_cot MLLM on 2 frames, trained just enough (15 steps) to
    name its videos' colours, its reasoning bounded to 60 characters."""
    root = tmp_path_factory.mktemp("cot-chain")
    config = dataclasses.replace(
        SMALL,
        world=dataclasses.replace(SMALL.world, items=96, users=200, seed=3),
        mllm=dataclasses.replace(
            SMALL.mllm, steps=15, batch_size=8, checkpoint_every=15, heldout_limit=2, max_reasoning_chars=60
        ),
    )
    built = run_pipeline(root, config, MLLM_KIND)
    return Chain(root, built[WORLD_KIND], built[MLLM_KIND], load_world(built[WORLD_KIND]).items)


def _decode(catalogue: Path, chain: Chain, root: Path) -> decode_frames.DecodeResult:
    return decode_frames.main(
        ["--items", str(catalogue), "--all-items", "--mllm", str(chain.mllm)]
        + ["--shard-size", "8", "--workers", "1", "--artifacts", str(root), "--quiet"]
    )


def _keywords(chain: Chain, root: Path, *extra: str) -> item_keywords.KeywordsResult:
    return item_keywords.main(
        ["--mllm", str(chain.mllm), "--world", str(chain.world), "--shard-size", str(SHARD_SIZE)]
        + ["--workers", "1", "--artifacts", str(root), "--quiet", *extra]
    )


def _keyword_rows(keywords_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(keywords_dir / KEYWORDS_FILE).sort_values("item_id", ignore_index=True)


def _engine_keywords(chain: Chain, store_dir: Path, item_ids: list[str]) -> dict[str, list[str]]:
    """What the job should find: the engine's reasoning for each item, ranked in the job's shards, summarised."""
    from serendip.models.mllm.contexts import PlanningContext
    from triton_models.engines import load_planner_engine

    model = PlanningModel.load(chain.mllm)
    engine = load_planner_engine("torch", chain.mllm, "cpu")
    index = read_store_index(store_dir)
    rows = read_rows(store_dir, index["shard_file"], item_ids)
    keywords = {}
    for start in range(0, len(item_ids), SHARD_SIZE):
        shard = item_ids[start : start + SHARD_SIZE]
        contexts = [
            PlanningContext(item_id, rows[item_id]["title"], *row_pixels(rows[item_id]), model.candidates(item_id))
            for item_id in shard
        ]
        for item_id, ranking in zip(shard, engine.rank_clusters(contexts, 1), strict=True):
            keywords[item_id] = summary_keywords(ranking[0].reasoning or "", KEYWORD_LIMIT)
    return keywords


def _die_before_publishing(job: KeywordsJob, shards: CommittedShards) -> None:
    raise RuntimeError(f"died after committing {len(shards.specs)} shards")


@dataclass(frozen=True)
class KeywordRuns:
    """A run over 8 items that died before publishing, its resumed run, a rerun with nothing changed, and a run
    after 2 items were added and 1 retitled."""

    root: Path
    store_dir: Path
    touched: set[str]
    full: item_keywords.KeywordsResult
    unchanged: item_keywords.KeywordsResult
    decoded: decode_frames.DecodeResult
    incremental: item_keywords.KeywordsResult


@pytest.fixture(scope="module")
def runs(cot_chain: Chain, ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> KeywordRuns:
    root = tmp_path_factory.mktemp("keywords")
    catalogue = cot_chain.items.sort_values("item_id", ignore_index=True)
    first, added = catalogue.head(8), catalogue.iloc[8:10]
    store_dir = _decode(write_items(first, root / "v1" / "items.parquet"), cot_chain, root).store_dir
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KeywordsJob, "publish", _die_before_publishing)
        with pytest.raises(RuntimeError, match="died"):
            _keywords(cot_chain, root)
    full = _keywords(cot_chain, root)
    unchanged = _keywords(cot_chain, root)
    changed_id = first["item_id"].iloc[2]
    second = pd.concat([first, added], ignore_index=True)
    second.loc[second["item_id"] == changed_id, "title"] = "a new title for this video"
    decoded = _decode(write_items(second, root / "v2" / "items.parquet"), cot_chain, root)
    incremental = _keywords(cot_chain, root)
    touched = {changed_id, *added["item_id"]}
    return KeywordRuns(root, store_dir, touched, full, unchanged, decoded, incremental)


def test_first_run_summarises_every_item_with_the_models_description(runs: KeywordRuns, cot_chain: Chain) -> None:
    counts = runs.full.counts
    assert (runs.full.mode, counts["summarised"], counts["carried"], counts["errors"]) == ("full", 8, 0, 0)
    rows = _keyword_rows(runs.full.directory)
    store = read_store_index(runs.store_dir)
    assert dict(zip(rows["item_id"], rows["content_sha256"], strict=True)) == dict(
        zip(store["item_id"], store["content_sha256"], strict=True)
    )
    assert set(rows["model_version"]) == {PlanningModel.load(cot_chain.mllm).version}
    expected = _engine_keywords(cot_chain, runs.store_dir, sorted(store["item_id"]))
    assert load_item_keywords(runs.full.directory) == expected
    assert all(expected.values()), "the model names what its videos show"


def test_a_run_that_died_before_publishing_resumes_from_its_shards(runs: KeywordRuns) -> None:
    assert (runs.full.counts["shards_resumed"], runs.full.counts["shards_run"]) == (2, 0)
    assert runs.full.stages[0].items == 0, "no item described again"
    assert not (runs.root / "keywords" / ".staging").exists() or not any(
        path.is_dir() for path in (runs.root / "keywords" / ".staging").iterdir()
    ), "staging cleaned up"


def test_related_keywords_come_from_the_worlds_interactions(runs: KeywordRuns, cot_chain: Chain) -> None:
    interactions = pd.read_parquet(cot_chain.world / WORLD_INTERACTIONS)
    related = pd.read_parquet(runs.full.directory / RELATED_FILE)
    expected = related_keywords(interactions, load_item_keywords(runs.full.directory), 3, 12)
    pd.testing.assert_frame_equal(related, expected)
    assert len(related) > 8, "items outside the frame store get their neighbours' keywords too"
    assert load_related_keywords(runs.full.directory) == dict(
        zip(expected["item_id"], expected["related_keywords"], strict=True)
    )
    with pytest.raises(ArtifactError, match=f"{runs.store_dir / RELATED_FILE} does not exist"):
        load_related_keywords(runs.store_dir)
    manifest = read_manifest(runs.full.directory)
    assert set(manifest["inputs"]) == {"frames", "mllm", "world"}
    assert manifest["counts"]["related_items"] == len(related)


def test_unchanged_inputs_publish_nothing(runs: KeywordRuns) -> None:
    assert not runs.unchanged.published and runs.unchanged.directory == runs.full.directory
    assert (runs.unchanged.counts["summarised"], runs.unchanged.counts["carried"]) == (0, 8)


def test_incremental_run_summarises_only_new_and_changed_items(runs: KeywordRuns) -> None:
    assert (runs.decoded.counts["decoded"], runs.decoded.counts["carried"]) == (3, 7)
    counts = runs.incremental.counts
    assert runs.incremental.mode == "incremental"
    assert (counts["summarised"], counts["carried"], counts["items"]) == (3, 7, 10)
    assert runs.incremental.stages[0].items == 3
    before, after = _keyword_rows(runs.full.directory), _keyword_rows(runs.incremental.directory)
    pd.testing.assert_frame_equal(
        after[~after["item_id"].isin(runs.touched)].reset_index(drop=True),
        before[~before["item_id"].isin(runs.touched)].reset_index(drop=True),
    )
    store = read_store_index(runs.decoded.store_dir)
    assert dict(zip(after["item_id"], after["content_sha256"], strict=True)) == dict(
        zip(store["item_id"], store["content_sha256"], strict=True)
    )
    assert read_manifest(runs.incremental.directory)["inputs"]["previous"]["version"] == runs.full.directory.name


def test_a_new_model_summarises_every_item_again(runs: KeywordRuns, cot_chain: Chain) -> None:
    model = PlanningModel.load(cot_chain.mllm)
    index = read_store_index(runs.decoded.store_dir)
    same = keyword_work(index, runs.incremental.directory, model)
    assert (same.mode, len(same.work), len(same.kept)) == ("incremental", 0, 10)
    retrained = keyword_work(index, runs.incremental.directory, dataclasses.replace(model, version="next-model"))
    assert (retrained.mode, len(retrained.work), len(retrained.kept)) == ("full", 10, 0)


def test_new_logs_republish_the_related_keywords_without_the_model(
    runs: KeywordRuns, cot_chain: Chain, tmp_path: Path
) -> None:
    root = tmp_path / "artifacts"
    shutil.copytree(runs.root / "frames", root / "frames")
    shutil.copytree(runs.incremental.directory, root / "keywords" / runs.incremental.directory.name)
    (root / "keywords" / "LATEST").write_text(runs.incremental.directory.name + "\n")
    interactions = pd.read_parquet(cot_chain.world / WORLD_INTERACTIONS)
    with ArtifactWriter(root, WORLD_KIND, {"logs": "first half"}) as writer:
        interactions.head(len(interactions) // 2).to_parquet(writer.dir / WORLD_INTERACTIONS, index=False)
    result = _keywords(cot_chain, root, "--world", str(writer.final_dir))
    assert result.published and (result.counts["summarised"], result.counts["carried"]) == (0, 10)
    pd.testing.assert_frame_equal(_keyword_rows(result.directory), _keyword_rows(runs.incremental.directory))
    expected = related_keywords(interactions.head(len(interactions) // 2), load_item_keywords(result.directory))
    pd.testing.assert_frame_equal(pd.read_parquet(result.directory / RELATED_FILE), expected)


def test_a_model_without_chain_of_thought_is_refused_in_one_line(
    runs: KeywordRuns, cot_chain: Chain, ray_address: str, tmp_path: Path
) -> None:
    direct = tmp_path / "video_only"
    direct.mkdir()
    shutil.copy(cot_chain.mllm / MANIFEST_NAME, direct / MANIFEST_NAME)
    spec = PlannerSpec.load(cot_chain.mllm)
    dataclasses.replace(spec, variant=PromptVariant.VIDEO_ONLY).save(direct)
    assert (direct / PLANNER_FILE).is_file()
    command = [sys.executable, "-m", "ray_jobs.item_keywords", "--mllm", str(direct), "--world", str(cot_chain.world)]
    command += ["--artifacts", str(runs.root), "--address", ray_address, "--quiet"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    version = read_manifest(cot_chain.mllm)["version"]
    expected = f"item_keywords: item keywords need a chain-of-thought planner (video_cot); {version} is video_only"
    assert (completed.returncode, completed.stderr.strip().splitlines()[-1]) == (1, expected)
    assert "Traceback" not in completed.stderr
