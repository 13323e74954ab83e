"""The skeleton of an incremental, resumable, sharded Ray job, written once for frame decoding and batch planning.

:meth:`ShardedJob.run`, with the kind dir's run lock held (:func:`ray_jobs.staging.exclusive_run`):

1. select: the job diffs its inputs against the previous artifact version; when that version is up to date the
   run ends with the job's ``unchanged()`` result;
2. key: the run key hashes the job's inputs, the items per shard and the work list
   (:func:`ray_jobs.staging.run_key`), so a restart with the same inputs finds the same staging dir and the same
   shard boundaries;
3. resume: shards committed by an earlier attempt are skipped; the others go through a Ray actor pool
   (:func:`ray_jobs.ray_runtime.run_shards`) of the job's :class:`ShardWorker`, which commits one file per shard;
4. publish: the job builds the new version from the committed shards; then the staging dir, and those of
   abandoned runs, are deleted.

A job subclasses :class:`ShardedJob` with what differs: its work items and their identity, the shard specs, the
actor class and its arguments, and how it publishes.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from ray_jobs.ray_runtime import StageStats, run_shards, shard_report, shard_size_for, spec_of, summary_batch
from ray_jobs.staging import ShardStaging, exclusive_run, remove_stale_staging, run_key

LOGGER = logging.getLogger(__name__)
WorkItem = TypeVar("WorkItem")
Result = TypeVar("Result")


class ShardWorker(ABC):
    """A Ray actor of a sharded run: computes the shards it is handed and commits each to the run's staging dir.

    Subclasses load what they need (a decoder's settings, a model) and then call ``super().__init__``: the time
    it is called is ``ready_at``, when the actor was ready to work. Each shard's summary names the Ray node the
    actor runs on (``node_id``), which the run report lists per shard.
    """

    def __init__(self, staging_dir: str, staging_key: str) -> None:
        import ray

        self.staging = ShardStaging(Path(staging_dir), staging_key)
        self.node_id = ray.get_runtime_context().get_node_id()
        self.ready_at = time.time()

    @abstractmethod
    def process(self, spec: dict[str, Any]) -> int:
        """Compute the shard ``spec`` and commit it with ``self.staging.commit``; returns how many items failed."""

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        summaries = []
        for spec in spec_of(batch):
            started = time.perf_counter()
            errors = 0
            if not self.staging.shard_path(spec["shard_id"]).exists():  # a retried task must not redo a shard
                errors = self.process(spec)
            summaries.append(
                {
                    "shard_id": spec["shard_id"],
                    "items": len(spec["items"]),
                    "errors": errors,
                    "seconds": time.perf_counter() - started,
                    "ready_at": self.ready_at,
                    "node_id": self.node_id,
                }
            )
        return summary_batch(summaries)


@dataclass(frozen=True)
class PublishedRun:
    """The version an incremental run published (or found up to date) and what the run did."""

    OUTPUT: ClassVar[str] = "output"
    """The report's key for ``directory``."""

    directory: Path | None
    published: bool
    mode: str
    """``full`` or ``incremental``."""
    counts: dict[str, int]
    stages: list[StageStats] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """JSON-ready summary: counts, per-stage items/s and shards per node, and the node that ran each shard."""
        return {
            self.OUTPUT: str(self.directory) if self.directory else None,
            "published": self.published,
            "mode": self.mode,
            "counts": self.counts,
            "stages": {stats.stage: stats.to_dict() for stats in self.stages},
            "shards": shard_report(self.stages),
        }


@dataclass(frozen=True)
class ShardPool:
    """The actor pool a run maps its shards through."""

    workers: int = 1
    cpus_per_worker: float = 1
    gpus_per_worker: float = 0


@dataclass(frozen=True)
class CommittedShards:
    """Every shard of a run, committed: what a job publishes from."""

    staging: ShardStaging
    specs: list[dict[str, Any]]
    """The shard specs in shard order; ``staging.shard_path(spec["shard_id"])`` is a shard's file."""
    stats: StageStats
    """The sharded stage of this attempt: the shards it ran (and on which node), not the resumed ones."""
    shards_run: int
    shards_resumed: int

    def counts(self) -> dict[str, int]:
        """The shard counts a published version records."""
        return {"shards_run": self.shards_run, "shards_resumed": self.shards_resumed}


class ShardedJob(ABC, Generic[WorkItem, Result]):
    """One run of an incremental sharded job over a kind dir; subclasses supply the job-specific pieces."""

    job: ClassVar[str]
    """The job's name in its run key."""
    stage: ClassVar[str]
    """Name of the sharded stage in logs and stats."""
    worker_class: ClassVar[type[ShardWorker]]

    def __init__(self, kind_dir: Path, shard_size: int, pool: ShardPool, progress: bool = True) -> None:
        self.kind_dir = kind_dir
        self.shard_size = shard_size
        self.pool = pool
        self.progress = progress

    @abstractmethod
    def select(self) -> Sequence[WorkItem] | None:
        """The items this run must process, from diffing the inputs against the previous version.

        None when the previous version is up to date (nothing to publish). Called with the run lock held.
        """

    @abstractmethod
    def unchanged(self) -> Result:
        """What the run returns when ``select`` found the previous version up to date."""

    @abstractmethod
    def run_inputs(self) -> dict[str, Any]:
        """What besides the work list and the shard boundaries determines the output (part of the run key)."""

    @abstractmethod
    def item_key(self, item: WorkItem) -> Sequence[str]:
        """A work item's identity in the run key (its id and content hash)."""

    @abstractmethod
    def shard_spec(self, items: Sequence[WorkItem]) -> dict[str, Any]:
        """The JSON-ready spec an actor gets for a shard of ``items``; its ``items`` has one entry per item."""

    @abstractmethod
    def worker_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of ``worker_class`` besides the staging dir and key."""

    @abstractmethod
    def publish(self, shards: CommittedShards) -> Result:
        """Publish the new version from the committed shards (and what the job carries from the previous one)."""

    def run(self) -> Result:
        """Select, shard, resume, run and publish (see the module docstring). Ray must be initialised."""
        with exclusive_run(self.kind_dir):
            work = self.select()
            if work is None:
                return self.unchanged()
            shard_items = shard_size_for(len(work), self.shard_size, self.pool.workers)
            key = run_key(
                self.run_inputs()
                | {"job": self.job, "shard_items": shard_items, "items": [self.item_key(item) for item in work]}
            )
            staging = ShardStaging.for_run(self.kind_dir, key)
            specs = [
                {"shard_id": shard_id} | self.shard_spec(work[start : start + shard_items])
                for shard_id, start in enumerate(range(0, len(work), shard_items))
            ]
            committed = staging.committed()
            pending = [spec for spec in specs if spec["shard_id"] not in committed]
            if committed:
                LOGGER.info(
                    "resuming: %d of %d shards were committed by an earlier attempt", len(committed), len(specs)
                )
            stats = run_shards(
                self.stage,
                pending,
                self.worker_class,
                {"staging_dir": str(staging.directory), "staging_key": key} | self.worker_kwargs(),
                self.pool.workers,
                self.pool.cpus_per_worker,
                self.pool.gpus_per_worker,
                self.progress,
            )
            resumed = len(committed & {spec["shard_id"] for spec in specs})
            result = self.publish(CommittedShards(staging, specs, stats, len(pending), resumed))
            staging.remove()
            remove_stale_staging(self.kind_dir)
            return result
