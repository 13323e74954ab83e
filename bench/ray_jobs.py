"""Ray job figures of ``make bench``: incremental vs full planning, Ray decoding vs a plain PyAV loop, 2 vs 1 workers.

``measure()`` builds a small trained chain in a scratch dir (world with real mp4s -> tree -> curation -> a
video_cot MLLM on 2 frames, 4 training steps), starts a local Ray on 127.0.0.1 (2 CPUs) unless one is running,
and times the jobs' own library entry points. Ray start-up is not counted (a cluster is up before a job runs);
every actor start-up and model load is.

* decoding: the whole decode job (hash, Ray Data actor pool, publish) with 1 and with 2 workers, against a plain
  single-process loop doing the same work (hash, the same ``decode_item``, one Parquet file). The catalogue is
  the world's videos, each under ``decode_copies`` item ids (more work per run without encoding more mp4s).
  Each configuration runs twice, interleaved, and its faster run counts (the machine is shared).
  Goals: Ray with 1 worker >= 0.8x the loop; 2 workers >= 1.7x 1 worker.
* machine ceiling: the same decoding split over 2 plain processes vs 1 process, timed from a barrier (no
  start-up, no Ray): what 2 workers can gain on this machine at best, to read the Ray ratio against.
* planning: a full run over ``plan_items`` items (2 workers); the previous version of an incremental run is that
  table without 10 % of its items (what a run over the other 90 % produces: same model, same content); the
  incremental run then plans those 10 %. Goal: >= 8x. A per-run fixed cost (actor start, torch/transformers
  import, model load: seconds) bounds the ratio, so ``plan_items`` is sized for it to be a small share of a
  full run (minutes). Also 1 vs 2 planning workers over the first ``scaling_plan_items`` items.

Every job run reports the seconds before its first actor was ready, so the fixed per-run cost (worker start,
imports, model load) can be told from the per-item cost; the corpus size at which 8x would be reached follows.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from ray_jobs.decode_job import DecodeResult, run_decode, settings_for_model
from ray_jobs.plans_job import PROCESSED_FILE, PlanningModel, PlansResult, run_batch_plans
from ray_jobs.ray_runtime import ray_session
from serendip.artifacts.frames import DecodeSettings, ItemMedia, decode_items, fingerprint_items, frames_table
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.plans import PLANS_FILE, publish_plan_table
from serendip.artifacts.store import read_manifest
from serendip.artifacts.world import WORLD_KIND
from serendip.jobs.make_world import MakeWorldJob
from serendip.pipeline import SMALL, run_pipeline

GOALS = {"incremental_vs_full": 8.0, "ray_decode_vs_plain_loop": 0.8, "two_vs_one_workers": 1.7}
NEW_FRACTION = 0.1
PLAN_SHARD_SIZE = 16
"""One engine batch (``TorchPlannerEngine`` batches 16 prompts) per shard."""
CEILING_COPIES = 2
"""The machine-ceiling measurement decodes each distinct video this many times (a ratio: fewer items suffice)."""


def _build_chain(root: Path, items: int) -> tuple[Path, Path]:
    """World (``items`` videos) -> tree -> curation -> MLLM; returns (world dir, MLLM dir)."""
    config = dataclasses.replace(SMALL, world=MakeWorldJob(items=items, users=items, seed=11))
    built = run_pipeline(root, config, until=MLLM_KIND, log=lambda _: None)
    return built[WORLD_KIND], built[MLLM_KIND]


def _copies(catalogue: pd.DataFrame, copies: int) -> pd.DataFrame:
    """Each item under ``copies`` ids (``<id>~<k>``), same video and thumbnail."""
    return pd.concat(
        [catalogue.assign(item_id=catalogue["item_id"] + f"~{copy}") for copy in range(copies)], ignore_index=True
    )


def _timed_decode(
    root: Path, items: pd.DataFrame, settings: DecodeSettings, workers: int
) -> tuple[DecodeResult, float]:
    """A decode job run (nothing to carry over) and its wall seconds."""
    started = time.perf_counter()
    result = run_decode(root, items, settings, {}, workers=workers, progress=False)
    return result, time.perf_counter() - started


def _plain_decode_seconds(items: pd.DataFrame, settings: DecodeSettings, directory: Path) -> float:
    """The same work as the decode job in one process, one thread: hash, decode, write one Parquet file."""
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    media, _errors = fingerprint_items(items, settings, threads=1)
    rows, _failed = decode_items(media, settings)
    pq.write_table(frames_table(rows), directory / "frames.parquet")
    return time.perf_counter() - started


def _decode_between_barriers(
    media: list[ItemMedia], settings: DecodeSettings, barrier: Any, seconds: Any, slot: int
) -> None:
    """A plain process's share of the ceiling measurement: wait for every process, decode, record the seconds."""
    barrier.wait()
    started = time.perf_counter()
    decode_items(media, settings)
    seconds[slot] = time.perf_counter() - started


def _plain_processes_seconds(media: list[ItemMedia], settings: DecodeSettings, processes: int) -> float:
    """Wall seconds to decode ``media`` split over ``processes`` plain (spawned) processes, from a common start."""
    context = multiprocessing.get_context("spawn")
    barrier, seconds = context.Barrier(processes), context.Array("d", processes)
    workers = [
        context.Process(
            target=_decode_between_barriers, args=(media[slot::processes], settings, barrier, seconds, slot)
        )
        for slot in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"a plain decoding process exited with code {worker.exitcode}")
    return max(seconds[:])


def _machine_ceiling(catalogue: pd.DataFrame, settings: DecodeSettings) -> dict[str, Any]:
    """Best of two interleaved runs of the decoding in 1 plain process and split over 2."""
    media, _errors = fingerprint_items(catalogue, settings)
    seconds = {"one_process": float("inf"), "two_processes": float("inf")}
    for _attempt in range(2):
        for name, processes in (("one_process", 1), ("two_processes", 2)):
            seconds[name] = min(seconds[name], _plain_processes_seconds(media, settings, processes))
    return {
        "items": len(media),
        "decode_seconds": {name: round(value, 2) for name, value in seconds.items()},
        "two_vs_one_processes": seconds["one_process"] / seconds["two_processes"],
    }


def _timed_plans(
    root: Path, store: Path, model: PlanningModel, previous: Path | None, workers: int
) -> tuple[PlansResult, float]:
    """A batch planning job run and its wall seconds."""
    started = time.perf_counter()
    result = run_batch_plans(root, store, model, previous, shard_size=PLAN_SHARD_SIZE, workers=workers, progress=False)
    return result, time.perf_counter() - started


def _previous_without(plans_dir: Path, root: Path, left_out: set[str]) -> Path:
    """Publish under ``root`` the plans version ``plans_dir`` without the ``left_out`` items."""
    plans = pd.read_parquet(plans_dir / PLANS_FILE)
    processed = pd.read_parquet(plans_dir / PROCESSED_FILE)
    return publish_plan_table(
        root,
        plans[~plans["item_id"].isin(left_out)],
        read_manifest(plans_dir)["parameters"],
        extra_tables={PROCESSED_FILE: processed[~processed["item_id"].isin(left_out)]},
    )


def _stage(result: DecodeResult | PlansResult, name: str) -> dict[str, Any]:
    return next(stats.to_dict() for stats in result.stages if stats.stage == name)


def _decode_figures(scratch: Path, catalogue: pd.DataFrame, settings: DecodeSettings) -> dict[str, Any]:
    """Best of two interleaved runs of the plain loop, Ray with 1 worker and Ray with 2 workers."""
    seconds: dict[str, float] = {}
    stages: dict[str, dict[str, Any]] = {}
    for attempt in range(2):
        for name in ("plain_loop", "ray_1_worker", "ray_2_workers"):
            directory = scratch / f"decode-{name}-{attempt}"
            if name == "plain_loop":
                elapsed = _plain_decode_seconds(catalogue, settings, directory)
            else:
                result, elapsed = _timed_decode(directory, catalogue, settings, 1 if name == "ray_1_worker" else 2)
            if elapsed < seconds.get(name, float("inf")):
                seconds[name] = elapsed
                if name != "plain_loop":
                    stages[name] = _stage(result, "decode")
    return {
        "items_per_s": {name: round(len(catalogue) / value, 1) for name, value in seconds.items()},
        "job_seconds": {name: round(value, 2) for name, value in seconds.items()},
        "decode_stage": stages,
    }


def measure(
    items: int = 1200,
    plan_items: int = 2400,
    scaling_plan_items: int = 160,
    decode_copies: int = 8,
    scratch_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the Ray job measurements; returns figures, ratios and goals (JSON-ready)."""
    with tempfile.TemporaryDirectory(prefix="bench-ray-jobs-", dir=scratch_dir) as scratch_name:
        scratch = Path(scratch_name)
        world_dir, mllm_dir = _build_chain(scratch / "chain", max(items, plan_items))
        from serendip.artifacts.world import load_world

        catalogue = load_world(world_dir).items.sort_values("item_id", ignore_index=True)
        settings = settings_for_model(mllm_dir)
        model = PlanningModel.load(mllm_dir)
        load_at_start = os.getloadavg()[0]
        decode_catalogue = _copies(catalogue.head(items), decode_copies)
        ceiling = _machine_ceiling(_copies(catalogue.head(items), CEILING_COPIES), settings)
        with ray_session(num_cpus=2):
            decode = _decode_figures(scratch, decode_catalogue, settings)

            plan_catalogue = catalogue.head(plan_items)
            new_ids = set(plan_catalogue["item_id"].iloc[round(plan_items * (1 - NEW_FRACTION)) :])
            store = _timed_decode(scratch / "plans", plan_catalogue, settings, 2)[0].store_dir
            full, full_s = _timed_plans(scratch / "plans-full", store, model, None, workers=2)
            previous = _previous_without(full.directory, scratch / "plans", new_ids)  # type: ignore[arg-type]
            incremental, incremental_s = _timed_plans(scratch / "plans", store, model, previous, workers=2)

            scaling_store = _timed_decode(scratch / "scaling", catalogue.head(scaling_plan_items), settings, 2)[
                0
            ].store_dir
            scaling = {
                workers: _timed_plans(scratch / f"scaling-{workers}", scaling_store, model, None, workers=workers)
                for workers in (1, 2)
            }
    full_plan, incremental_plan = _stage(full, "plan"), _stage(incremental, "plan")
    per_item_s = (full_plan["seconds"] - full_plan["startup_seconds"]) / full_plan["items"]
    fixed_s = incremental_s - incremental_plan["items"] * per_item_s
    decode_seconds = decode["job_seconds"]
    ratios = {
        "incremental_vs_full": full_s / incremental_s,
        "ray_decode_vs_plain_loop": decode_seconds["plain_loop"] / decode_seconds["ray_1_worker"],
        "two_vs_one_workers": decode_seconds["ray_1_worker"] / decode_seconds["ray_2_workers"],
        "two_vs_one_plain_processes": ceiling["two_vs_one_processes"],
        "two_vs_one_planning_workers": scaling[1][1] / scaling[2][1],
    }
    return {
        "setup": {
            "decode_items": len(decode_catalogue),
            "distinct_videos": min(items, len(catalogue)),
            "plan_items": plan_items,
            "new_items": len(new_ids),
            "scaling_plan_items": scaling_plan_items,
            "model": "tiny Qwen2-VL video_cot, 2 frames, 4 training steps (reasoning runs to its token bound)",
            "ray": "local, 2 CPUs, 127.0.0.1; Ray start-up not counted",
            "cores": os.cpu_count(),
            "load_average_1m_at_start": round(load_at_start, 2),
        },
        "decode": decode,
        "machine_ceiling": {key: value for key, value in ceiling.items() if key != "two_vs_one_processes"},
        "plans": {
            "full_2_workers": {"job_seconds": round(full_s, 2), **full_plan},
            "incremental_2_workers": {
                "job_seconds": round(incremental_s, 2),
                "planned": incremental.counts["planned"],
                "carried": incremental.counts["carried"],
                **incremental_plan,
            },
            "scaling": {
                f"{workers}_worker{'s' if workers > 1 else ''}": {
                    "job_seconds": round(seconds, 2),
                    **_stage(result, "plan"),
                }
                for workers, (result, seconds) in scaling.items()
            },
            "fixed_seconds_per_run": round(fixed_s, 2),
            "seconds_per_item_2_workers": round(per_item_s, 4),
            "full_run_items_for_8x": _items_for_speedup(8.0, fixed_s, per_item_s),
        },
        "ratios": {name: round(value, 3) for name, value in ratios.items()},
        "goals": GOALS,
    }


def _items_for_speedup(speedup: float, fixed_s: float, per_item_s: float) -> int | None:
    """Corpus size at which a 10 %-new incremental run is ``speedup`` x faster than a full one, given the fixed
    per-run cost F and the per-item cost c: (F + N c) / (F + 0.1 N c) = s  =>  N = F (s - 1) / (c (1 - 0.1 s))."""
    denominator = per_item_s * (1 - NEW_FRACTION * speedup)
    if denominator <= 0 or fixed_s <= 0:
        return None
    return round(fixed_s * (speedup - 1) / denominator)


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=1))
