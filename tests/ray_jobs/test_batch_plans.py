"""The batch planning job: full then incremental runs, model changes, and a run killed with SIGKILL and resumed."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from ray_jobs import batch_plans, decode_frames
from ray_jobs.plans_job import PROCESSED_FILE, PlanningModel, incremental_work
from ray_jobs.staging import STAGING_DIR
from serendip.artifacts.frames import read_store_index
from serendip.artifacts.overlay import OverlayStore
from serendip.artifacts.plans import PLAN_COLUMNS, PLANS_FILE, PLANS_KIND, PlanTable, plan_rows
from serendip.artifacts.store import LATEST_NAME
from tests.ray_jobs.conftest import Chain, write_items


def _decode(catalogue: Path, chain: Chain, root: Path) -> decode_frames.DecodeResult:
    return decode_frames.main(
        ["--items", str(catalogue), "--all-items", "--mllm", str(chain.mllm)]
        + ["--shard-size", "8", "--workers", "1", "--artifacts", str(root), "--quiet"]
    )


def _plan(chain: Chain, root: Path, *extra: str, shard_size: int = 4) -> batch_plans.PlansResult:
    return batch_plans.main(
        ["--mllm", str(chain.mllm), "--shard-size", str(shard_size), "--artifacts", str(root), "--quiet", *extra]
    )


def _plans(plans_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(plans_dir / PLANS_FILE).sort_values(["item_id", "rank"], ignore_index=True)


@dataclass(frozen=True)
class IncrementalRuns:
    """A full run over 12 items, then a run after 4 items were added and 1 retitled."""

    root: Path
    first: pd.DataFrame
    touched: set[str]
    full: batch_plans.PlansResult
    decoded: decode_frames.DecodeResult
    incremental: batch_plans.PlansResult


@pytest.fixture(scope="module")
def runs(chain: Chain, ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> IncrementalRuns:
    root = tmp_path_factory.mktemp("incremental")
    catalogue = chain.items.sort_values("item_id", ignore_index=True)
    first, added = catalogue.head(12), catalogue.iloc[12:16]
    _decode(write_items(first, root / "v1" / "items.parquet"), chain, root)
    full = _plan(chain, root, "--workers", "2")
    changed_id = first["item_id"].iloc[3]
    second = pd.concat([first, added], ignore_index=True)
    second.loc[second["item_id"] == changed_id, "title"] = "a new title for this video"
    decoded = _decode(write_items(second, root / "v2" / "items.parquet"), chain, root)
    incremental = _plan(chain, root, "--workers", "2", shard_size=8)  # 5 items: split 3 + 2, not one shard of 5
    return IncrementalRuns(root, first, {changed_id, *added["item_id"]}, full, decoded, incremental)


def test_full_run_plans_every_item_among_its_serendipitous_siblings(runs: IncrementalRuns, chain: Chain) -> None:
    assert (runs.full.mode, runs.full.counts["planned"], runs.full.counts["carried"]) == ("full", 12, 0)
    model = PlanningModel.load(chain.mllm)
    plans = _plans(runs.full.directory)
    assert sorted(plans["item_id"].unique()) == sorted(runs.first["item_id"])
    for item_id, clusters in plans.groupby("item_id")["cluster_id"]:
        assert set(clusters) == set(model.candidates(item_id))


def test_incremental_run_plans_only_new_and_changed_items(runs: IncrementalRuns, chain: Chain) -> None:
    assert (runs.decoded.counts["decoded"], runs.decoded.counts["carried"]) == (5, 11)
    assert runs.incremental.mode == "incremental"
    assert (runs.incremental.counts["planned"], runs.incremental.counts["carried"]) == (5, 11)
    assert runs.incremental.stages[0].items == 5, "the planning stage saw only the new and changed items"
    assert (runs.incremental.counts["shards_run"], runs.incremental.stages[0].workers) == (2, 2), "both workers plan"
    before, after = _plans(runs.full.directory), _plans(runs.incremental.directory)
    pd.testing.assert_frame_equal(
        after[~after["item_id"].isin(runs.touched)].reset_index(drop=True),
        before[~before["item_id"].isin(runs.touched)].reset_index(drop=True),
    )
    processed = pd.read_parquet(runs.incremental.directory / PROCESSED_FILE)
    store = read_store_index(runs.decoded.store_dir)
    assert dict(zip(processed["item_id"], processed["content_sha256"], strict=True)) == dict(
        zip(store["item_id"], store["content_sha256"], strict=True)
    )
    assert set(processed["model_version"]) == {PlanningModel.load(chain.mllm).version}
    assert len(PlanTable.load(runs.root)) == 16  # what the Planner serves from


def test_unchanged_inputs_publish_nothing(runs: IncrementalRuns, chain: Chain) -> None:
    assert not _decode(runs.root / "v2" / "items.parquet", chain, runs.root).published
    unchanged = _plan(chain, runs.root)
    assert not unchanged.published and unchanged.directory == runs.incremental.directory


def test_model_or_setting_change_replans_everything(runs: IncrementalRuns, chain: Chain) -> None:
    model = PlanningModel.load(chain.mllm)
    index = read_store_index(runs.decoded.store_dir)
    previous = runs.incremental.directory
    same = incremental_work(index, previous, model, top_n=5)
    assert (same.mode, len(same.work), len(same.kept_processed)) == ("incremental", 0, 16)
    retrained = incremental_work(index, previous, dataclasses.replace(model, version="next-model"), top_n=5)
    assert (retrained.mode, len(retrained.work), len(retrained.kept_plans)) == ("full", 16, 0)
    assert incremental_work(index, previous, model, top_n=3).mode == "full"


def test_killed_run_resumes_without_loss_duplication_or_redone_shards(
    chain: Chain, ray_address: str, tmp_path: Path
) -> None:
    items = chain.items.sort_values("item_id", ignore_index=True).head(24)
    _decode(write_items(items, tmp_path / "items.parquet"), chain, tmp_path)
    command = [sys.executable, "-m", "ray_jobs.batch_plans", "--mllm", str(chain.mllm), "--shard-size", "2"]
    command += ["--workers", "1", "--artifacts", str(tmp_path), "--address", ray_address, "--quiet"]
    job = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = tmp_path / PLANS_KIND / STAGING_DIR
    deadline = time.monotonic() + 180
    while len(list(staging.glob("*/shard-*.parquet"))) < 2:
        assert job.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline, "no shard committed in time"
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    assert job.wait(timeout=30) == -signal.SIGKILL
    committed = _settled(staging)
    assert 2 <= len(committed) < 12, "killed halfway: some shards committed, not all"
    assert not (tmp_path / PLANS_KIND / LATEST_NAME).exists(), "nothing published by the killed run"
    committed_rows = pd.concat([pd.read_parquet(path) for path in committed.values()], ignore_index=True)

    resumed = _plan(chain, tmp_path, "--workers", "1", shard_size=2)
    assert resumed.counts["shards_resumed"] == len(committed)
    assert resumed.counts["shards_run"] == 12 - len(committed)
    assert resumed.stages[0].items == 24 - 2 * len(committed), "finished shards were not planned again"
    plans = _plans(resumed.directory)
    processed = pd.read_parquet(resumed.directory / PROCESSED_FILE)
    assert sorted(processed["item_id"]) == sorted(items["item_id"]), "every item once: none lost or duplicated"
    assert set(plans["item_id"]) == set(items["item_id"])
    assert not plans.duplicated(["item_id", "rank"]).any()
    from_killed_run = plans[plans["item_id"].isin(committed_rows["item_id"])].reset_index(drop=True)
    expected = committed_rows[PLAN_COLUMNS].sort_values(["item_id", "rank"], ignore_index=True)
    pd.testing.assert_frame_equal(from_killed_run, expected, check_dtype=False)
    assert not staging.exists() or not any(path.is_dir() for path in staging.iterdir()), "staging cleaned up"


def _settled(staging: Path, quiet_s: float = 3.0) -> dict[str, Path]:
    """Committed shard files once none has appeared for ``quiet_s`` (the killed driver's actor is gone)."""
    seen: dict[str, Path] = {}
    last_change = time.monotonic()
    while time.monotonic() - last_change < quiet_s:
        current = {path.name: path for path in staging.glob("*/shard-*.parquet")}
        if current.keys() != seen.keys():
            seen, last_change = current, time.monotonic()
        time.sleep(0.1)
    return seen


def test_items_the_planner_already_planned_are_taken_from_its_overlay(
    chain: Chain, ray_address: str, tmp_path: Path
) -> None:
    items = chain.items.sort_values("item_id", ignore_index=True).head(8)
    _decode(write_items(items, tmp_path / "items.parquet"), chain, tmp_path)
    model = PlanningModel.load(chain.mllm)
    nearline = items["item_id"].head(3).tolist()
    overlay = OverlayStore(tmp_path, model.content_sha256)
    for item_id in nearline:
        overlay.append(
            plan_rows(item_id, [(cluster, -1.0, "from the overlay") for cluster in model.candidates(item_id)])
        )
    OverlayStore(tmp_path, "f" * 64).append(plan_rows(items["item_id"].iloc[5], [("c-other", 0.0, "other model")]))
    result = _plan(chain, tmp_path, "--workers", "1")
    assert (result.counts["planned"], result.counts["from_overlay"]) == (5, 3)
    plans = _plans(result.directory)
    assert sorted(plans["item_id"].unique()) == sorted(items["item_id"])
    assert set(plans[plans["item_id"].isin(nearline)]["reasoning"]) == {"from the overlay"}
    assert "other model" not in set(plans["reasoning"])  # another MLLM's overlay is never read
    processed = pd.read_parquet(result.directory / PROCESSED_FILE)
    assert set(processed["item_id"]) == set(items["item_id"])
