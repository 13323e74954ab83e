"""Batch planning job: frame store rows -> ranked serendipitous clusters -> a new version of the plan table.

Incremental by default. The previous plans version carries ``processed.parquet`` (item_id, content_sha256,
model_version): an item is planned again only when it is new, its content hash changed (title, video,
thumbnail or decode settings), or the model version or the plan settings (top n) changed -- a new model
re-plans everything and drops every plan of the old one. Plans of unchanged items are carried over from the
previous version, including items that left the corpus (they stay valid for the same model).

Planning runs on a Ray Data actor pool (one model per actor, ``num_gpus=1`` each on a GPU cluster), shard by
shard, each shard committed to the run's staging dir; a killed run restarts where it stopped
(:mod:`ray_jobs.staging`). Items the model cannot plan (e.g. unusable pixels) go to ``errors.parquet``
and are retried by the next run. The new version is published atomically with ``publish_plan_table``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ray_jobs.ray_runtime import StageStats
from ray_jobs.sharded_run import CommittedShards, PublishedRun, ShardedJob, ShardPool, ShardWorker
from serendip.artifacts.curation import CURATION_KIND, load_curation
from serendip.artifacts.frames import read_rows, read_store_index, row_pixels
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.overlay import read_overlay
from serendip.artifacts.plans import PLAN_COLUMNS, PLANS_FILE, PLANS_KIND, publish_plan_table
from serendip.artifacts.store import input_record, read_manifest, resolve_artifact
from serendip.core.cluster_tree import ClusterTree
from serendip.core.errors import ArtifactError, ConfigError

LOGGER = logging.getLogger(__name__)
PROCESSED_FILE = "processed.parquet"
PLAN_ERRORS_FILE = "errors.parquet"
PROCESSED_COLUMNS = ["item_id", "content_sha256", "model_version"]
DEFAULT_TOP_N = 5
DEFAULT_SHARD_SIZE = 32
SHARD_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("content_sha256", pa.string()),
        ("rank", pa.int32()),
        ("cluster_id", pa.string()),
        ("score", pa.float64()),
        ("reasoning", pa.string()),
        ("error", pa.string()),
    ]
)
"""A committed planning shard: one row per planned cluster, or one row with ``error`` set per failed item."""


@dataclass(frozen=True)
class PlanningModel:
    """An MLLM artifact with the tree it was trained on: what the batch planner plans with."""

    directory: Path
    version: str
    content_sha256: str
    level: int
    delta: int
    visual_frames: int | None
    """Frames the prompts carry (None: text only or thumbnail)."""
    tree: ClusterTree
    curation_dir: Path

    @classmethod
    def load(
        cls, mllm_path: str | os.PathLike[str], curation_path: str | os.PathLike[str] | None = None
    ) -> PlanningModel:
        """Load an MLLM artifact (version, kind dir or artifacts root) and the curation its manifest names."""
        from serendip.models.mllm.planner_spec import PlannerSpec

        directory = resolve_artifact(mllm_path, MLLM_KIND)
        manifest = read_manifest(directory)
        spec = PlannerSpec.load(directory)
        if curation_path is None:
            recorded = manifest.get("inputs", {}).get("curation")
            if recorded is None:
                raise ArtifactError(f"{directory}: manifest names no curation; pass the curation artifact")
            curation_path = Path(recorded["path"])
            if not curation_path.exists():  # recorded relative to another working directory
                curation_path = directory.parent.parent / CURATION_KIND / recorded["version"]
        curation = load_curation(curation_path)
        curation_level = int(curation.manifest["parameters"]["level"])
        curation_delta = int(curation.manifest["parameters"]["delta"])
        if (curation_level, curation_delta) != (spec.level, spec.delta):
            raise ArtifactError(
                f"{directory} plans at level {spec.level}, delta {spec.delta} but curation {curation.dir} "
                f"was curated at level {curation_level}, delta {curation_delta}"
            )
        uses_frames = spec.variant.uses_video and spec.visual is not None and not spec.visual.thumbnail
        return cls(
            directory=directory,
            version=manifest["version"],
            content_sha256=manifest["content_sha256"],
            level=spec.level,
            delta=spec.delta,
            visual_frames=spec.visual.frames if uses_frames else None,
            tree=curation.tree,
            curation_dir=curation.dir,
        )

    def candidates(self, item_id: str) -> list[str] | None:
        """Serendipitous candidate clusters of an item: its level-l node's siblings at δ (None: not in the tree,
        every cluster is a candidate, as for the LIVE planner)."""
        if item_id not in self.tree:
            return None
        return self.tree.siblings(self.tree.node_of(item_id, self.level), self.delta)  # type: ignore[arg-type]


def check_store_for_model(store_dir: Path, model: PlanningModel) -> None:
    """Fail when the frame store's frame count is not the model's (plans would differ from LIVE ones)."""
    settings = read_manifest(store_dir)["parameters"]["settings"]
    if model.visual_frames is not None and settings["num_frames"] != model.visual_frames:
        raise ConfigError(
            f"frame store {store_dir} holds {settings['num_frames']} frames per item but model {model.version} "
            f"was trained on {model.visual_frames}; run decode_frames with --frames {model.visual_frames}"
        )


@dataclass(frozen=True)
class IncrementalWork:
    """What a run must plan and what it carries over from the previous version."""

    work: pd.DataFrame
    """item_id, content_sha256, shard_file of the items to plan, sorted by item id."""
    kept_plans: pd.DataFrame
    kept_processed: pd.DataFrame
    mode: str
    """``full`` (no usable previous version) or ``incremental``."""
    from_overlay: int = 0
    """Items the Planner already planned with this model (its overlay plan table): taken over, not planned."""


def _previous_usable(previous_dir: Path, model: PlanningModel, top_n: int) -> str | None:
    """Why a previous plans version cannot be merged with this run (None when it can)."""
    if not (previous_dir / PROCESSED_FILE).is_file():
        return f"{previous_dir.name} has no {PROCESSED_FILE}"
    parameters = read_manifest(previous_dir)["parameters"]
    if parameters.get("model_version") != model.version:
        return f"model changed ({parameters.get('model_version')} -> {model.version})"
    if parameters.get("top_n") != top_n:
        return f"top n changed ({parameters.get('top_n')} -> {top_n})"
    return None


def incremental_work(
    store_index: pd.DataFrame,
    previous_dir: Path | None,
    model: PlanningModel,
    top_n: int,
    overlay: pd.DataFrame | None = None,
) -> IncrementalWork:
    """Split the frame store's items into those to plan and the rows to keep: the previous version's, and the
    overlay's (plans the Planner made with this same model since the last batch table)."""
    empty_plans = pd.DataFrame(columns=PLAN_COLUMNS)
    empty_processed = pd.DataFrame(columns=PROCESSED_COLUMNS)
    why_full = "no previous plans version" if previous_dir is None else _previous_usable(previous_dir, model, top_n)
    if why_full is not None:
        LOGGER.info("planning every item: %s", why_full)
        work, kept_plans, kept_processed, mode = (
            store_index.sort_values("item_id"),
            empty_plans,
            empty_processed,
            "full",
        )
    else:
        processed = pd.read_parquet(previous_dir / PROCESSED_FILE)
        done = set(zip(processed["item_id"], processed["content_sha256"], strict=True))
        fresh = [
            (item_id, content) not in done
            for item_id, content in zip(store_index["item_id"], store_index["content_sha256"], strict=True)
        ]
        work = store_index[fresh].sort_values("item_id")
        redo = set(work["item_id"])
        plans = pd.read_parquet(previous_dir / PLANS_FILE, columns=PLAN_COLUMNS)
        kept_plans = plans[~plans["item_id"].isin(redo)]
        kept_processed = processed.loc[~processed["item_id"].isin(redo), PROCESSED_COLUMNS]
        mode = "incremental"
    if overlay is None or overlay.empty or work.empty:
        return IncrementalWork(work, kept_plans, kept_processed, mode)
    taken = work[work["item_id"].isin(set(overlay["item_id"]))]
    overlay_plans = overlay[overlay["item_id"].isin(set(taken["item_id"])) & (overlay["rank"] < top_n)]
    overlay_processed = taken[["item_id", "content_sha256"]].assign(model_version=model.version)
    LOGGER.info("%d items taken over from the Planner's overlay plan table", len(taken))
    return IncrementalWork(
        work[~work["item_id"].isin(set(taken["item_id"]))],
        concat_rows([kept_plans, overlay_plans[PLAN_COLUMNS]], PLAN_COLUMNS),
        concat_rows([kept_processed, overlay_processed[PROCESSED_COLUMNS]], PROCESSED_COLUMNS),
        mode,
        from_overlay=len(taken),
    )


class PlanShardWorker(ShardWorker):
    """Ray actor holding one loaded planner engine; plans a shard's items and commits them to the staging dir."""

    def __init__(
        self,
        staging_dir: str,
        staging_key: str,
        store_dir: str,
        mllm_dir: str,
        engine: str,
        device: str,
        top_n: int,
        threads: int,
    ) -> None:
        import torch

        from triton_models.engines import load_planner_engine

        torch.set_num_threads(threads)
        self.store_dir = Path(store_dir)
        self.engine = load_planner_engine(engine, mllm_dir, device)
        self.top_n = top_n
        super().__init__(staging_dir, staging_key)

    def _rank(self, contexts: list[Any]) -> list[list[Any] | str]:
        """Rankings per context, or the error message of a context the model cannot plan."""
        from serendip.models.mllm.errors import MllmError

        try:
            return list(self.engine.rank_clusters(contexts, self.top_n))
        except MllmError:  # find the bad contexts; the others are planned one by one
            outcomes: list[list[Any] | str] = []
            for context in contexts:
                try:
                    outcomes.append(self.engine.rank_clusters([context], self.top_n)[0])
                except MllmError as error:
                    outcomes.append(str(error))
            return outcomes

    def process(self, spec: dict[str, Any]) -> int:
        from serendip.models.mllm.contexts import PlanningContext

        items = spec["items"]
        rows = read_rows(self.store_dir, spec["shard_files"], [item["item_id"] for item in items])
        contexts = []
        for item in items:
            frames, thumbnail = row_pixels(rows[item["item_id"]])
            title = rows[item["item_id"]]["title"]
            contexts.append(PlanningContext(item["item_id"], title, frames, thumbnail, item["candidates"]))
        records, errors = [], 0
        for context, outcome in zip(contexts, self._rank(contexts), strict=True):
            content = rows[context.item_id]["content_sha256"]
            if isinstance(outcome, str) or not outcome:
                errors += 1
                message = outcome or "the model ranked no candidate cluster"
                records.append({"item_id": context.item_id, "content_sha256": content, "error": message})
                continue
            records += [
                {
                    "item_id": context.item_id,
                    "content_sha256": content,
                    "rank": rank,
                    "cluster_id": cluster.cluster_id,
                    "score": float(cluster.score),
                    "reasoning": cluster.reasoning or "",
                }
                for rank, cluster in enumerate(outcome)
            ]
        self.staging.commit(spec["shard_id"], pa.Table.from_pylist(records, schema=SHARD_SCHEMA))
        return errors


class PlansResult(PublishedRun):
    """The plans version a run published (or found up to date) and what the run did."""

    OUTPUT = "plans"


def read_committed_shards(shards: CommittedShards) -> pd.DataFrame:
    """All committed shard rows; each shard must hold exactly the items it was given."""
    parts = []
    for spec in shards.specs:
        table = pq.read_table(shards.staging.shard_path(spec["shard_id"])).to_pandas()
        expected = {item["item_id"] for item in spec["items"]}
        if set(table["item_id"]) != expected:
            raise ArtifactError(f"staged shard {spec['shard_id']} of run {shards.staging.key} does not hold its items")
        parts.append(table)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SHARD_SCHEMA.names)


def concat_rows(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """Rows of the non-empty ``frames`` (empty ones would decide no column type)."""
    parts = [frame[columns] for frame in frames if not frame.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


class FrameStoreModelShards:
    """What a sharded job that runs the planner over frame-store items (batch plans, item keywords) gives its
    shards and workers: items keyed by content, each with its serendipitous candidates, and the engine to load."""

    store_dir: Path
    model: PlanningModel
    previous_dir: Path | None
    engine: str
    pool: ShardPool
    top_n: int

    def run_settings(self) -> dict[str, Any]:
        """Settings that make another run (part of the run key besides model, store and previous version)."""
        return {"top_n": self.top_n}

    def run_inputs(self) -> dict[str, Any]:
        store = read_manifest(self.store_dir)
        return {
            "model": [self.model.version, self.model.content_sha256],
            "store": [store["version"], store["content_sha256"]],
            "previous": read_manifest(self.previous_dir)["version"] if self.previous_dir else None,
        } | self.run_settings()

    def item_key(self, item: dict[str, Any]) -> tuple[str, str]:
        return item["item_id"], item["content_sha256"]

    def shard_spec(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        candidates = self.model.candidates
        return {
            "items": [{"item_id": row["item_id"], "candidates": candidates(row["item_id"])} for row in items],
            "shard_files": sorted({row["shard_file"] for row in items}),
        }

    def worker_kwargs(self) -> dict[str, Any]:
        return {
            "store_dir": str(self.store_dir),
            "mllm_dir": str(self.model.directory),
            "engine": self.engine,
            "device": "cuda" if self.pool.gpus_per_worker else "cpu",
            "top_n": self.top_n,
            "threads": max(1, int(self.pool.cpus_per_worker)),
        }


class PlansJob(FrameStoreModelShards, ShardedJob[dict[str, Any], PlansResult]):
    """One batch planning run: the frame store's new or changed items planned, merged with the previous plans."""

    job = "batch_plans"
    stage = "plan"
    worker_class = PlanShardWorker

    def __init__(
        self,
        root: Path,
        store_dir: Path,
        model: PlanningModel,
        previous_dir: Path | None,
        engine: str,
        top_n: int,
        shard_size: int,
        pool: ShardPool,
        progress: bool,
    ) -> None:
        super().__init__(root / PLANS_KIND, shard_size, pool, progress)
        self.root, self.store_dir, self.model, self.previous_dir = root, store_dir, model, previous_dir
        self.engine, self.top_n = engine, top_n
        self.plan = IncrementalWork(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), "full")
        """Set by select."""

    def select(self) -> list[dict[str, Any]] | None:
        """Rows (item_id, content_sha256, shard_file) of the items to plan; None when every item is planned."""
        overlay = read_overlay(self.root, self.model.content_sha256)
        self.plan = incremental_work(
            read_store_index(self.store_dir), self.previous_dir, self.model, self.top_n, overlay
        )
        return None if self.plan.work.empty else self.plan.work.to_dict("records")

    def unchanged(self) -> PlansResult:
        """Nothing to plan: up to date, or every remaining item taken over from the overlay (merged now)."""
        if self.plan.from_overlay:
            empty = pd.DataFrame(columns=SHARD_SCHEMA.names)
            return self._merge_and_publish(empty, {"shards_run": 0, "shards_resumed": 0}, [])
        LOGGER.info("plan table is up to date: no new or changed item")
        counts = {"items": self.plan.kept_processed["item_id"].nunique(), "planned": 0}
        return PlansResult(self.previous_dir, False, self.plan.mode, counts)

    def publish(self, shards: CommittedShards) -> PlansResult:
        """The new plans merged with the previous version's kept ones, published with ``publish_plan_table``."""
        return self._merge_and_publish(
            read_committed_shards(shards), shards.counts(), [shards.stats], shards.staging.key
        )

    def _merge_and_publish(
        self, staged: pd.DataFrame, shard_counts: dict[str, int], stages: list[StageStats], run: str = ""
    ) -> PlansResult:
        started = time.perf_counter()
        plan, model = self.plan, self.model
        failed = staged["error"].notna()
        new_plans = staged.loc[~failed, PLAN_COLUMNS]
        new_processed = staged.loc[~failed, ["item_id", "content_sha256"]].drop_duplicates("item_id")
        new_processed = new_processed.assign(model_version=model.version)
        plans = concat_rows([plan.kept_plans, new_plans], PLAN_COLUMNS).sort_values(["item_id", "rank"])
        processed = concat_rows([plan.kept_processed, new_processed], PROCESSED_COLUMNS).sort_values("item_id")
        errors = staged.loc[failed, ["item_id", "content_sha256", "error"]].reset_index(drop=True)
        if processed["item_id"].duplicated().any():
            raise ArtifactError(f"run {run}: an item was planned twice")
        counts = {
            "planned": len(new_processed),
            "carried": plan.kept_processed["item_id"].nunique() - plan.from_overlay,
            "from_overlay": plan.from_overlay,
            "errors": len(errors),
        } | shard_counts
        inputs = {"frames": input_record(self.store_dir), "mllm": input_record(model.directory)}
        if self.previous_dir is not None:
            inputs["previous"] = input_record(self.previous_dir)
        parameters = {
            "model_version": model.version,
            "top_n": self.top_n,
            "shard_size": self.shard_size,
            "mode": plan.mode,
        }
        plans_dir = publish_plan_table(
            self.root,
            plans.reset_index(drop=True),
            parameters,
            inputs,
            extra_tables={PROCESSED_FILE: processed.reset_index(drop=True), PLAN_ERRORS_FILE: errors},
            counts=counts,
        )
        merging = StageStats("merge+publish", len(processed), time.perf_counter() - started)
        LOGGER.info(merging.line())
        return PlansResult(plans_dir, True, plan.mode, counts | {"items": len(processed)}, [*stages, merging])


def run_batch_plans(
    root: str | os.PathLike[str],
    store_dir: Path,
    model: PlanningModel,
    previous_dir: Path | None,
    engine: str = "torch",
    top_n: int = DEFAULT_TOP_N,
    shard_size: int = DEFAULT_SHARD_SIZE,
    workers: int = 1,
    cpus_per_worker: float = 1,
    num_gpus: float = 0,
    progress: bool = True,
) -> PlansResult:
    """Plan the frame store's new or changed items and publish a merged plans version under ``root``.

    ``previous_dir``: the plans version to merge with (None plans everything). Ray must be initialised.
    """
    check_store_for_model(store_dir, model)
    pool = ShardPool(workers, cpus_per_worker, num_gpus)
    return PlansJob(Path(root), store_dir, model, previous_dir, engine, top_n, shard_size, pool, progress).run()
