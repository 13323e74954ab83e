"""Item keyword summaries: frame store rows -> what the chain-of-thought MLLM says each video shows -> keywords, plus
each item's related keywords from the logs -> a new version of the keywords artifact.

Incremental like batch planning (:mod:`ray_jobs.plans_job`): the previous version's ``keywords.parquet``
(item_id, content_sha256, model_version) says what was summarised; an item is summarised again only when it is
new, its content hash changed, or the model version changed -- a new model summarises every item again and drops
the old model's keywords. The other rows are carried over, including items that left the frame store. Items the
model cannot summarise go to ``errors.parquet`` and are retried by the next run.

Summaries run on a Ray Data actor pool, one planner engine per actor (:class:`PlanShardWorker`'s), shard by
shard, each shard committed to the run's staging dir; a killed run restarts where it stopped
(:mod:`ray_jobs.sharded_run`). Then ``related.parquet`` is computed from the world's interactions and the merged
keywords (:func:`serendip.offline.item_keywords.related_keywords`) and the version is published with
``publish_keywords``. With no item to summarise a version is published only when the world changed.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ray_jobs.plans_job import (
    DEFAULT_SHARD_SIZE,
    FrameStoreModelShards,
    PlanningModel,
    PlanShardWorker,
    check_store_for_model,
    concat_rows,
    read_committed_shards,
)
from ray_jobs.ray_runtime import StageStats
from ray_jobs.sharded_run import CommittedShards, PublishedRun, ShardedJob, ShardPool
from serendip.artifacts.frames import read_rows, read_store_index, row_pixels
from serendip.artifacts.keywords import (
    KEYWORD_COLUMNS,
    KEYWORD_ERROR_COLUMNS,
    KEYWORDS_FILE,
    KEYWORDS_KIND,
    publish_keywords,
)
from serendip.artifacts.store import input_record, read_manifest
from serendip.core.errors import ArtifactError, ConfigError
from serendip.models.mllm.planner_spec import PlannerSpec
from serendip.offline.item_keywords import related_keywords, summary_keywords

LOGGER = logging.getLogger(__name__)
KEYWORD_LIMIT = 10
"""Keywords kept per item (the first distinct content words of its description)."""
RELATED_ITEMS = 3
"""Co-engaged items whose keywords make an item's related keywords."""
RELATED_WORDS = 12
"""Related keywords kept per item."""
WORLD_INTERACTIONS = "interactions.parquet"
SHARD_SCHEMA = pa.schema(
    [("item_id", pa.string()), ("content_sha256", pa.string()), ("keywords", pa.string()), ("error", pa.string())]
)
"""A committed shard: one row per item, ``keywords`` space-joined or ``error`` set."""


def require_cot_planner(model: PlanningModel) -> None:
    """Fail unless the model reasons before answering without related keywords: its reasoning is the video
    description summarised (a video_cot_rag model would summarise from its own keyword input)."""
    variant = PlannerSpec.load(model.directory).variant
    if not variant.is_cot or variant.uses_related:
        raise ConfigError(f"item keywords need a chain-of-thought planner (video_cot); {model.version} is {variant}")


@dataclass(frozen=True)
class KeywordWork:
    """What a run must summarise and what it carries over from the previous version."""

    work: pd.DataFrame
    """item_id, content_sha256, shard_file of the items to summarise, sorted by item id."""
    kept: pd.DataFrame
    """KEYWORD_COLUMNS rows of the previous version carried over."""
    mode: str
    """``full`` (no usable previous version) or ``incremental``."""


def _previous_usable(previous_dir: Path, model: PlanningModel) -> str | None:
    """Why a previous keywords version cannot be merged with this run (None when it can)."""
    if not (previous_dir / KEYWORDS_FILE).is_file():
        return f"{previous_dir.name} has no {KEYWORDS_FILE}"
    parameters = read_manifest(previous_dir)["parameters"]
    if parameters.get("model_version") != model.version:
        return f"model changed ({parameters.get('model_version')} -> {model.version})"
    if parameters.get("keyword_limit") != KEYWORD_LIMIT:
        return f"keyword limit changed ({parameters.get('keyword_limit')} -> {KEYWORD_LIMIT})"
    return None


def keyword_work(store_index: pd.DataFrame, previous_dir: Path | None, model: PlanningModel) -> KeywordWork:
    """Split the frame store's items into those to summarise and the previous version's rows to keep."""
    why_full = "no previous keywords version" if previous_dir is None else _previous_usable(previous_dir, model)
    if why_full is not None:
        LOGGER.info("summarising every item: %s", why_full)
        return KeywordWork(store_index.sort_values("item_id"), pd.DataFrame(columns=KEYWORD_COLUMNS), "full")
    previous = pd.read_parquet(previous_dir / KEYWORDS_FILE, columns=KEYWORD_COLUMNS)
    done = set(zip(previous["item_id"], previous["content_sha256"], strict=True))
    fresh = [
        (item_id, content) not in done
        for item_id, content in zip(store_index["item_id"], store_index["content_sha256"], strict=True)
    ]
    work = store_index[fresh].sort_values("item_id")
    return KeywordWork(work, previous[~previous["item_id"].isin(set(work["item_id"]))], "incremental")


def _keywords_or_error(outcome: list[Any] | str) -> tuple[str | None, str | None]:
    """(space-joined keywords, None) from an item's ranking, or (None, why it has none)."""
    if isinstance(outcome, str):
        return None, outcome
    if not outcome:
        return None, "the model ranked no candidate cluster, so it gave no description"
    words = summary_keywords(outcome[0].reasoning or "", KEYWORD_LIMIT)
    if not words:
        return None, "the model's description of the video has no content word"
    return " ".join(words), None


class KeywordShardWorker(PlanShardWorker):
    """Ray actor holding one loaded chain-of-thought planner engine; commits the keywords of a shard's items."""

    def process(self, spec: dict[str, Any]) -> int:
        from serendip.models.mllm.contexts import PlanningContext

        items = spec["items"]
        rows = read_rows(self.store_dir, spec["shard_files"], [item["item_id"] for item in items])
        contexts = []
        for item in items:
            row = rows[item["item_id"]]
            contexts.append(PlanningContext(item["item_id"], row["title"], *row_pixels(row), item["candidates"]))
        records = []
        for context, outcome in zip(contexts, self._rank(contexts), strict=True):
            keywords, error = _keywords_or_error(outcome)
            item = {"item_id": context.item_id, "content_sha256": rows[context.item_id]["content_sha256"]}
            records.append(item | {"keywords": keywords, "error": error})
        self.staging.commit(spec["shard_id"], pa.Table.from_pylist(records, schema=SHARD_SCHEMA))
        return sum(record["error"] is not None for record in records)


class KeywordsResult(PublishedRun):
    """The keywords version a run published (or found up to date) and what the run did."""

    OUTPUT = "keywords"


def _same_world(previous_dir: Path, world_dir: Path) -> bool:
    """Whether the previous version's related keywords were computed from this world."""
    recorded = read_manifest(previous_dir).get("inputs", {}).get("world", {})
    return recorded.get("content_sha256") == read_manifest(world_dir)["content_sha256"]


class KeywordsJob(FrameStoreModelShards, ShardedJob[dict[str, Any], KeywordsResult]):
    """One keywords run: the frame store's new or changed items summarised, merged with the previous keywords."""

    job = "item_keywords"
    top_n = 1
    """One ranked cluster is enough: the description is the reasoning before it."""
    stage = "describe"
    worker_class = KeywordShardWorker

    def __init__(
        self,
        root: Path,
        store_dir: Path,
        model: PlanningModel,
        world_dir: Path,
        previous_dir: Path | None,
        engine: str,
        shard_size: int,
        pool: ShardPool,
        progress: bool,
    ) -> None:
        super().__init__(root / KEYWORDS_KIND, shard_size, pool, progress)
        self.root, self.store_dir, self.model, self.world_dir = root, store_dir, model, world_dir
        self.previous_dir, self.engine = previous_dir, engine
        self.plan = KeywordWork(pd.DataFrame(), pd.DataFrame(), "full")
        """Set by select."""

    def select(self) -> list[dict[str, Any]] | None:
        """Rows (item_id, content_sha256, shard_file) of the items to summarise; None when every item is."""
        self.plan = keyword_work(read_store_index(self.store_dir), self.previous_dir, self.model)
        return None if self.plan.work.empty else self.plan.work.to_dict("records")

    def unchanged(self) -> KeywordsResult:
        """Nothing to summarise: up to date, or only the world changed (its related keywords published now)."""
        if self.previous_dir is None or not _same_world(self.previous_dir, self.world_dir):
            empty = pd.DataFrame(columns=SHARD_SCHEMA.names)
            return self._merge_and_publish(empty, {"shards_run": 0, "shards_resumed": 0}, [])
        LOGGER.info("keywords are up to date: no new or changed item, same world")
        counts = {"items": len(self.plan.kept), "summarised": 0, "carried": len(self.plan.kept)}
        return KeywordsResult(self.previous_dir, False, self.plan.mode, counts)

    def run_settings(self) -> dict[str, Any]:
        return {"keyword_limit": KEYWORD_LIMIT}

    def publish(self, shards: CommittedShards) -> KeywordsResult:
        """The new keywords merged with the kept ones, related keywords from the logs, published as one version."""
        return self._merge_and_publish(
            read_committed_shards(shards), shards.counts(), [shards.stats], shards.staging.key
        )

    def _merge_and_publish(
        self, staged: pd.DataFrame, shard_counts: dict[str, int], stages: list[StageStats], run: str = ""
    ) -> KeywordsResult:
        started = time.perf_counter()
        failed = staged["error"].notna()
        summarised = staged.loc[~failed].assign(model_version=self.model.version)
        keywords = concat_rows([self.plan.kept, summarised], KEYWORD_COLUMNS).sort_values("item_id", ignore_index=True)
        if keywords["item_id"].duplicated().any():
            raise ArtifactError(f"run {run}: an item was summarised twice")
        errors = staged.loc[failed, KEYWORD_ERROR_COLUMNS].reset_index(drop=True)
        interactions = pd.read_parquet(self.world_dir / WORLD_INTERACTIONS)
        words = {item_id: text.split() for item_id, text in zip(keywords["item_id"], keywords["keywords"], strict=True)}
        related = related_keywords(interactions, words, RELATED_ITEMS, RELATED_WORDS)
        counts = {"summarised": len(summarised), "carried": len(self.plan.kept), "errors": len(errors)} | shard_counts
        inputs = {
            "frames": input_record(self.store_dir),
            "mllm": input_record(self.model.directory),
            "world": input_record(self.world_dir),
        }
        if self.previous_dir is not None:
            inputs["previous"] = input_record(self.previous_dir)
        parameters = {
            "model_version": self.model.version,
            "keyword_limit": KEYWORD_LIMIT,
            "related_items": RELATED_ITEMS,
            "related_words": RELATED_WORDS,
            "shard_size": self.shard_size,
            "mode": self.plan.mode,
        }
        keywords_dir = publish_keywords(self.root, keywords, related, errors, parameters, inputs, counts)
        merging = StageStats("merge+related+publish", len(keywords), time.perf_counter() - started)
        LOGGER.info(merging.line())
        counts |= {"items": len(keywords), "related_items": len(related)}
        return KeywordsResult(keywords_dir, True, self.plan.mode, counts, [*stages, merging])


def run_item_keywords(
    root: str | os.PathLike[str],
    store_dir: Path,
    model: PlanningModel,
    world_dir: Path,
    previous_dir: Path | None,
    engine: str = "torch",
    shard_size: int = DEFAULT_SHARD_SIZE,
    workers: int = 1,
    cpus_per_worker: float = 1,
    num_gpus: float = 0,
    progress: bool = True,
) -> KeywordsResult:
    """Summarise the frame store's new or changed items and publish a merged keywords version under ``root``.

    ``previous_dir``: the keywords version to merge with (None summarises everything). Ray must be initialised.
    """
    require_cot_planner(model)
    check_store_for_model(store_dir, model)
    if not (world_dir / WORLD_INTERACTIONS).is_file():
        raise ArtifactError(f"{world_dir / WORLD_INTERACTIONS} does not exist: no logs to find related keywords in")
    pool = ShardPool(workers, cpus_per_worker, num_gpus)
    job = KeywordsJob(Path(root), store_dir, model, world_dir, previous_dir, engine, shard_size, pool, progress)
    return job.run()
