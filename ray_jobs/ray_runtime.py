"""Ray plumbing shared by the batch jobs: connect or start Ray on loopback, size the pool, run shards.

Both jobs hand :func:`run_shards` a list of shard specs (JSON-ready dicts); Ray Data maps them through a pool
of actors (``compute=ActorPoolStrategy``), one shard per call, each actor built once (a decoder's settings, a
model's weights). The driver only sees one small summary per shard, from which it shows items/s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

LOGGER = logging.getLogger(__name__)
SUMMARY_COLUMNS = ("shard_id", "items", "errors", "seconds", "ready_at", "node_id")
"""What an actor returns per shard; ``ready_at`` is the wall time (epoch s) its constructor finished, ``node_id``
the Ray node it ran on (``ray.get_runtime_context().get_node_id()``)."""
ACTOR_START_TIMEOUT_S = 600
"""How long a stage waits for its whole actor pool before any shard is handed out (Ray Data's
``wait_for_min_actors_s``); a pool the cluster cannot hold fails after this instead of running on fewer actors."""


LOCAL_START_ATTEMPTS = 3


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Use the running Ray, else connect to ``address`` (or ``$RAY_ADDRESS``, set by ``ray job submit``), else
    start a local one on 127.0.0.1 with ``num_cpus``. True when this call connected or started Ray.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind loopback only (docs/platform.md)
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        # "local": a new Ray of our own, even when a `ray start` cluster (or its stale address file) is around.
        # Ray gives its raylet a fixed 30 s to register; on an overloaded machine one more try usually succeeds.
        for attempt in range(LOCAL_START_ATTEMPTS):
            try:
                ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
                break
            except Exception as error:  # Ray raises a bare Exception for this timeout
                ray.shutdown()
                if attempt + 1 == LOCAL_START_ATTEMPTS or "timed out during startup" not in str(error):
                    raise
    _quiet_ray_data()
    return True


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """``init_ray`` for the block; shuts Ray down afterwards only if this block started or joined it."""
    started = init_ray(address, num_cpus)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def _quiet_ray_data() -> None:
    """The jobs show their own per-stage progress; Ray Data's bars and stats would interleave with it."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_auto_log_stats = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    logging.getLogger("ray.data._internal.execution.streaming_executor").setLevel(logging.WARNING)


def cluster_resource(name: str) -> int:
    """Total amount of a resource (``"CPU"``, ``"GPU"``) in the connected cluster."""
    import ray

    return int(ray.cluster_resources().get(name, 0))


@dataclass(frozen=True)
class ShardRun:
    """One shard run by an actor in this attempt: where it ran and how long it took."""

    shard_id: int
    node_id: str
    items: int
    errors: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record."""
        return {
            "shard_id": self.shard_id,
            "node_id": self.node_id,
            "items": self.items,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class StageStats:
    """Wall time and throughput of one stage of a job."""

    stage: str
    items: int
    seconds: float
    workers: int = 1
    startup_seconds: float = 0.0
    """Part of ``seconds`` before the first actor was ready (process start, imports, model load)."""
    shards: tuple[ShardRun, ...] = ()
    """The shards an actor stage ran, in shard order (empty for driver stages)."""

    @property
    def shards_per_node(self) -> dict[str, int]:
        """How many of ``shards`` each Ray node ran."""
        return dict(Counter(shard.node_id for shard in self.shards))

    @property
    def items_per_s(self) -> float:
        """Items per wall-clock second (0 for an empty stage)."""
        return self.items / self.seconds if self.seconds > 0 else 0.0

    @property
    def items_per_s_after_startup(self) -> float:
        """Items per second once the first actor was ready."""
        working = self.seconds - self.startup_seconds
        return self.items / working if working > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "items": self.items,
            "seconds": round(self.seconds, 3),
            "items_per_s": round(self.items_per_s, 2),
            "startup_seconds": round(self.startup_seconds, 3),
            "items_per_s_after_startup": round(self.items_per_s_after_startup, 2),
            "workers": self.workers,
        } | ({"shards_per_node": self.shards_per_node} if self.shards else {})

    def line(self) -> str:
        """One log line."""
        workers = f"{self.workers} worker{'s' if self.workers != 1 else ''}"
        startup = f", {self.startup_seconds:.1f} s to the first ready actor" if self.startup_seconds else ""
        nodes = len(self.shards_per_node)
        spread = f", {len(self.shards)} shards on {nodes} node{'s' if nodes != 1 else ''}" if self.shards else ""
        return (
            f"{self.stage}: {self.items} items in {self.seconds:.2f} s "
            f"({self.items_per_s:.1f} items/s, {workers}{startup}{spread})"
        )


def _multi_node() -> bool:
    """Whether the connected Ray cluster has more than one live node."""
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive")) > 1


def shard_report(stages: Sequence[StageStats]) -> list[dict[str, Any]]:
    """The run report's ``shards``: one record per shard the stages ran (shard id, node id, items, seconds)."""
    return [shard.to_dict() for stats in stages for shard in stats.shards]


def shard_size_for(items: int, shard_size: int, workers: int) -> int:
    """Items per shard: at most ``shard_size``, as even as possible, and a shard count that is a multiple of
    ``workers``, so that no worker idles while another works through the last shard (16 items over 2 workers:
    2 shards of 8, not one of 16; 240 items at 16 over 2 workers: 16 shards of 15, not 15 of 16).
    """
    workers = max(1, workers)
    shards = math.ceil(max(1, math.ceil(items / shard_size)) / workers) * workers
    return max(1, math.ceil(items / shards))


def run_shards(
    stage: str,
    specs: Sequence[dict[str, Any]],
    worker_class: type,
    worker_kwargs: dict[str, Any],
    workers: int,
    num_cpus: float,
    num_gpus: float = 0,
    progress: bool = True,
) -> StageStats:
    """Map shard specs through an actor pool of ``workers`` ``worker_class(**worker_kwargs)`` actors.

    A spec needs ``shard_id`` and ``items`` (a list); the actor's ``__call__`` receives a batch with one spec
    (``batch["spec"]``, JSON) and returns SUMMARY_COLUMNS. Returns the stage figures, with one :class:`ShardRun`
    per shard (the node that ran it).

    Shards go to the whole pool, on every node: Ray Data places the actors with its default ``SPREAD`` strategy,
    the stage waits until every actor is up (``ACTOR_START_TIMEOUT_S``) so the first one ready cannot take all
    the shards of a short run, and on a cluster of several nodes each actor holds one shard at a time, so data
    locality (the shard specs live on the driver's node) cannot queue a second shard on an actor next to the
    driver while an actor on another node idles. On one node locality means nothing, and each actor holds two
    shards, so it never waits for the driver between shards (one at a time cost a quarter of the two-worker
    decoding throughput on 2 cores, where a shard is a fraction of a second).
    """
    import ray.data
    from ray.data import ActorPoolStrategy, DataContext

    total_items = sum(len(spec["items"]) for spec in specs)
    started, started_at = time.perf_counter(), time.time()
    summaries: list[dict[str, Any]] = []
    if specs:
        workers = max(1, min(workers, len(specs)))
        context = DataContext.get_current()
        wait_before = context.wait_for_min_actors_s
        context.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
        try:
            dataset = ray.data.from_items(
                [{"spec": json.dumps(spec)} for spec in specs], override_num_blocks=len(specs)
            ).map_batches(
                worker_class,
                fn_constructor_kwargs=worker_kwargs,
                compute=ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1 if _multi_node() else 2),
                batch_size=1,
                num_cpus=num_cpus,
                num_gpus=num_gpus,
            )
            with tqdm(total=total_items, desc=stage, unit="item", disable=not progress, smoothing=0.1) as bar:
                for row in dataset.iter_rows():
                    summary = {column: row[column] for column in SUMMARY_COLUMNS}
                    summaries.append(summary)
                    bar.update(int(summary["items"]))
        finally:
            context.wait_for_min_actors_s = wait_before
    startup = min(summary["ready_at"] for summary in summaries) - started_at if summaries else 0.0
    shards = tuple(
        ShardRun(int(s["shard_id"]), str(s["node_id"]), int(s["items"]), int(s["errors"]), float(s["seconds"]))
        for s in sorted(summaries, key=lambda summary: summary["shard_id"])
    )
    elapsed = time.perf_counter() - started
    stats = StageStats(stage, total_items, elapsed, workers if specs else 0, max(0.0, startup), shards)
    LOGGER.info(stats.line())
    return stats


def spec_of(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The shard specs of an actor's batch."""
    return [json.loads(text) for text in batch["spec"]]


def summary_batch(summaries: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """An actor's return value for the shards it processed."""
    return {column: [summary[column] for summary in summaries] for column in SUMMARY_COLUMNS}
