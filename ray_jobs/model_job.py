"""Options and the run of a Ray job that runs the MLLM over the frame store, incrementally (batch plans, item
keywords): the inputs, incremental runs, the actor pool with its GPUs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from ray_jobs.cli import (
    IncrementalRunOptions,
    RayOptions,
    configure_logging,
    emit_report,
    gpus_or_detected,
    pool_size,
    previous_version,
)
from ray_jobs.plans_job import DEFAULT_SHARD_SIZE, PlanningModel
from ray_jobs.ray_runtime import ray_session
from serendip.artifacts.frames import FRAMES_KIND
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.store import resolve_artifact


class Reported(Protocol):
    def report(self) -> dict[str, Any]: ...


ResultT = TypeVar("ResultT", bound=Reported)


@dataclass(frozen=True)
class FrameStoreModelJob(IncrementalRunOptions, RayOptions):
    """The options every MLLM-over-frame-store job takes."""

    frame_store: Path | None = None
    """frame store artifact (None: <artifacts>/frames)"""
    mllm: Path | None = None
    """MLLM artifact (None: <artifacts>/mllm)"""
    curation: Path | None = None
    """curation with the model's tree (None: the one it names)"""
    engine: Literal["torch", "tensorrt_llm"] = "torch"
    """planner engine"""
    gpus_per_worker: float | None = None
    """GPUs per actor (None: 1 when the cluster has GPUs, else 0: CPU inference)"""
    shard_size: int = DEFAULT_SHARD_SIZE
    """items per committed shard; a small run is split so no worker idles"""

    def run_on_ray(self, output_kind: str, run: Callable[..., ResultT], *inputs: Path, **options: object) -> ResultT:
        """``run(artifacts, frame store, model, *inputs, previous version of output_kind, pool options, **options)``
        in a Ray session; prints (and with --report writes) its report and returns its result."""
        configure_logging(self.quiet)
        store_dir = resolve_artifact(self.frame_store or self.artifacts / FRAMES_KIND, FRAMES_KIND)
        model = PlanningModel.load(self.mllm or self.artifacts / MLLM_KIND, self.curation)
        previous = previous_version(self.previous, self.artifacts, output_kind, self.full)
        with ray_session(self.address, self.num_cpus):
            gpus_per_worker = gpus_or_detected(self.gpus_per_worker)
            result = run(
                self.artifacts,
                store_dir,
                model,
                *inputs,
                previous,
                engine=self.engine,
                shard_size=self.shard_size,
                workers=pool_size(self.workers, self.cpus_per_worker, gpus_per_worker),
                cpus_per_worker=self.cpus_per_worker,
                num_gpus=gpus_per_worker,
                progress=not self.quiet,
                **options,
            )
        emit_report(result.report(), self.report)
        return result
