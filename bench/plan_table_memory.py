"""``python -m bench.plan_table_memory``: load time, resident memory per item and hot-reload peak of the plan table.

For each size a synthetic plan table (``DEFAULT_TOP_N`` clusters per item, ids like ``v0001234``, ~80-character
reasonings) is published twice with ``publish_plan_table`` (versions A and B). A fresh process per size and mode
then loads A, times ``get``, requests every item once (all pages the lookups need become resident), switches
``LATEST`` to B and reloads, the way the Planner does. Modes:

- ``arrow``: ``PlanTableWatcher`` on versions with ``plans.arrow`` (memory-mapped; the Planner's path);
- ``parquet``: ``PlanTableWatcher`` on the same versions without ``plans.arrow`` (published before it existed);
- ``dict``: the former table, every row parsed into ``dict[item_id, list[CachedCluster]]``, the old dict held
  while the new one is built.

Figures: ``load_s``; ``loaded_bytes_per_item`` (RSS growth from the load / items) and ``warm_bytes_per_item``
(after every item was requested; split into anonymous and file-backed pages, the latter shared page cache);
``get_us`` (mean ``get`` of a present item, best of interleaved rounds) against ``dict_get_and_build_us`` (a
dict lookup plus building the item's list of CachedCluster, in the same process); ``hot_reload_peak_over_steady``
= peak RSS during the reload (``VmHWM`` after resetting it) / RSS once B is loaded and every item was requested
again (goal <= 1.3). Freed Python objects are not all handed back to the system, so for ``dict`` the steady RSS
stays near the peak and the ratio flatters it: ``reload_peak_bytes_per_item`` (peak RSS growth over the process
before the first load / items) is the figure to compare across modes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bench.load.machine import process_status_bytes
from planner.plan_watcher import PlanTableWatcher
from serendip.artifacts.plans import (
    DEFAULT_TOP_N,
    PLANS_FILE,
    PLANS_KIND,
    SERVING_FILE,
    CachedCluster,
    plans_by_item,
    publish_plan_table,
)
from serendip.artifacts.store import LATEST_NAME

MODES = ("arrow", "parquet", "dict")
CLUSTERS = 512
TIMED_GETS = 5_000
TIMING_ROUNDS = 7
RELOAD_GOAL = 1.3
DEFAULT_OUTPUT = Path("bench/results/plan_table_memory.json")
_REASONS = [
    "The video shows a street food stall at night; viewers who liked it may enjoy regional cooking",
    "A calm tutorial on watercolour landscapes, so the nearby craft and DIY clusters are a fresh fit",
    "Fast-paced football highlights suggest the viewer could try other team sports they have not seen",
    "An acoustic cover in a small room: live folk sessions are related but new to this viewer",
]


def synthetic_plans(items: int, seed: int) -> pa.Table:
    """Plan rows for ``items`` items, ``DEFAULT_TOP_N`` ranked clusters each."""
    rng = np.random.default_rng(seed)
    rows = items * DEFAULT_TOP_N
    item_ids = pa.array([f"v{index:07d}" for index in range(items)]).take(np.repeat(np.arange(items), DEFAULT_TOP_N))
    ranks = np.tile(np.arange(DEFAULT_TOP_N), items)
    cluster_names = pa.array([f"c3-{index:03d}" for index in range(CLUSTERS)])
    reasons = pa.array([reason[:72] for reason in _REASONS]).take(rng.integers(0, len(_REASONS), rows))
    return pa.table(
        {
            "item_id": item_ids,
            "rank": ranks,
            "cluster_id": cluster_names.take(rng.integers(0, CLUSTERS, rows)),
            "score": -(ranks + rng.random(rows)),
            "reasoning": pc.binary_join_element_wise(reasons, item_ids, " ("),
        }
    )


def _point_latest(kind_dir: Path, version: str) -> None:
    """Switch LATEST to ``version`` the way a publish does (atomic replace)."""
    staged = kind_dir / f".{LATEST_NAME}.bench"
    staged.write_text(version + "\n")
    os.replace(staged, kind_dir / LATEST_NAME)


def publish_versions(root: Path, items: int) -> tuple[Path, Path, list[str]]:
    """Publish versions A and B; returns the kind dir, a copy without ``plans.arrow`` and the version names."""
    kind_dir = root / "arrow" / PLANS_KIND
    versions = [
        publish_plan_table(
            root / "arrow", synthetic_plans(items, seed), {"bench": "plan_table_memory", "seed": seed}
        ).name
        for seed in (0, 1)
    ]
    legacy_dir = root / "parquet" / PLANS_KIND
    for version in versions:
        shutil.copytree(
            kind_dir / version, legacy_dir / version, ignore=shutil.ignore_patterns(SERVING_FILE), copy_function=os.link
        )
    return kind_dir, legacy_dir, versions


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


class _WatcherTables:
    """The Planner's path: ``PlanTableWatcher`` following LATEST."""

    def __init__(self, kind_dir: Path) -> None:
        self.kind_dir = kind_dir
        self.watcher = PlanTableWatcher(kind_dir)

    def switch(self, version: str) -> None:
        _point_latest(self.kind_dir, version)
        self.watcher.reload_if_changed()

    def getter(self) -> Callable[[str], Any]:
        """The index lookup behind ``PlanTable.get`` (its memo of recent items would time dict hits)."""
        return self.watcher.table.index.lookup


class _DictTables:
    """The former plan table: ``plans.parquet`` parsed into a dict; the old dict lives until the new one is built."""

    def __init__(self, kind_dir: Path) -> None:
        self.kind_dir = kind_dir
        self.plans: dict[str, list[CachedCluster]] = {}

    def switch(self, version: str) -> None:
        self.plans = plans_by_item(pd.read_parquet(self.kind_dir / version / PLANS_FILE))

    def getter(self) -> Callable[[str], Any]:
        return self.plans.get


def _get_timings(get: Callable[[str], Any], item_ids: list[str]) -> dict[str, float]:
    """Best mean µs per call over interleaved rounds: ``get``, and today's dict lookup + list build as baseline.

    The baseline is a dict holding the timed items' plans, each lookup followed by building the list of
    CachedCluster that a columnar table has to build per call.
    """
    plans = {item_id: get(item_id) for item_id in item_ids}

    def dict_get_and_build(item_id: str) -> list[CachedCluster]:
        return [CachedCluster(c.cluster_id, c.score, c.reasoning) for c in plans.get(item_id, [])]

    best = {"get_us": float("inf"), "dict_get_and_build_us": float("inf")}
    for _ in range(TIMING_ROUNDS):
        for name, function in (("get_us", get), ("dict_get_and_build_us", dict_get_and_build)):
            start = time.perf_counter()
            for item_id in item_ids:
                function(item_id)
            best[name] = min(best[name], (time.perf_counter() - start) / len(item_ids) * 1e6)
    return {
        **{name: round(value, 2) for name, value in best.items()},
        "get_over_dict_get_and_build": round(best["get_us"] / best["dict_get_and_build_us"], 2),
    }


def _request_all(function: Callable[[str], Any], items: int) -> None:
    for index in range(items):
        function(f"v{index:07d}")


def measure(mode: str, kind_dir: Path, versions: list[str], items: int) -> dict[str, Any]:
    """Figures of one mode at one size; run it in a fresh process (it reads this process's RSS)."""
    tables = _DictTables(kind_dir) if mode == "dict" else _WatcherTables(kind_dir)
    first, second = versions
    timed_ids = [f"v{index:07d}" for index in np.random.default_rng(2).integers(0, items, TIMED_GETS)]
    gc.collect()
    base = process_status_bytes("VmRSS")["VmRSS"]
    start = time.perf_counter()
    tables.switch(first)
    load_s = time.perf_counter() - start
    gc.collect()
    loaded = process_status_bytes("VmRSS")["VmRSS"]
    figures: dict[str, Any] = {"items": items, "mode": mode, "load_s": round(load_s, 3)}
    figures.update(_get_timings(tables.getter(), timed_ids))
    _request_all(tables.getter(), items)
    warm = process_status_bytes("VmRSS", "RssAnon", "RssFile")
    gc.collect()
    _reset_peak()
    start = time.perf_counter()
    tables.switch(second)
    reload_s = time.perf_counter() - start
    gc.collect()
    peak = process_status_bytes("VmHWM")["VmHWM"]
    _request_all(tables.getter(), items)
    steady = process_status_bytes("VmRSS")["VmRSS"]
    return {
        **figures,
        "loaded_bytes_per_item": round((loaded - base) / items, 1),
        "warm_bytes_per_item": round((warm["VmRSS"] - base) / items, 1),
        "warm_rss_anon_mb": round(warm["RssAnon"] / 2**20, 1),
        "warm_rss_file_mb": round(warm["RssFile"] / 2**20, 1),
        "reload_s": round(reload_s, 3),
        "reload_peak_bytes_per_item": round((peak - base) / items, 1),
        "steady_bytes_per_item": round((steady - base) / items, 1),
        "hot_reload_peak_over_steady": round(peak / steady, 3),
    }


def _measure_in_child(mode: str, kind_dir: Path, versions: list[str], items: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.plan_table_memory", "--child", mode, str(kind_dir), *versions]
    completed = subprocess.run(
        [*command, "--items", str(items)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run(sizes: list[int], modes: list[str]) -> list[dict[str, Any]]:
    """Publish and measure every size in every mode, each measurement in a fresh process."""
    results = []
    for items in sizes:
        with tempfile.TemporaryDirectory(prefix="plan-table-memory-") as scratch:
            start = time.perf_counter()
            kind_dir, legacy_dir, versions = publish_versions(Path(scratch), items)
            publish_s = time.perf_counter() - start
            for mode in modes:
                figures = _measure_in_child(mode, legacy_dir if mode == "parquet" else kind_dir, versions, items)
                results.append({**figures, "publish_two_versions_s": round(publish_s, 2)})
                print(_row(results[-1]), flush=True)
    return results


_COLUMNS = [
    "items", "mode", "load_s", "loaded_bytes_per_item", "warm_bytes_per_item", "warm_rss_anon_mb", "warm_rss_file_mb",
    "get_us", "get_over_dict_get_and_build", "reload_s", "reload_peak_bytes_per_item", "hot_reload_peak_over_steady",
]  # fmt: skip


def _row(figures: dict[str, Any]) -> str:
    return "  ".join(f"{figures[column]!s:>12}" for column in _COLUMNS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.plan_table_memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="table sizes")
    parser.add_argument("--modes", choices=MODES, nargs="+", default=list(MODES), help="what to measure")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results (default: %(default)s)")
    parser.add_argument(
        "--child", nargs=4, metavar=("MODE", "KIND_DIR", "VERSION_A", "VERSION_B"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        mode, kind_dir, *versions = args.child
        print(json.dumps(measure(mode, Path(kind_dir), versions, args.items[0])))
        return
    print("  ".join(f"{column[:12]:>12}" for column in _COLUMNS), flush=True)
    results = run(args.items, args.modes)
    arrow = [figures["hot_reload_peak_over_steady"] for figures in results if figures["mode"] == "arrow"]
    summary = {
        "results": results,
        "hot_reload_peak_over_steady": max(arrow) if arrow else None,
        "goal": RELOAD_GOAL,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
