"""``python -m bench.scale`` (``make bench-scale``): build worlds of several sizes and measure how every stage's cost
grows with the catalogue.

For each size (default 10k, 100k and 1M items, 0.75 users per item, no videos) the stages run in order, each a call
of the project's own job in a child process of this one: world, tree, curation, one SASRec epoch (sampled
softmax), popular corpus, ANN indexes, plan table write (a synthetic table covering every item), the Planner (load
time, resident memory, hot-reload peak, CACHE p50/p99) and the Retriever with ANN (p50/p99, QPS). A stage that runs
out of memory or time is recorded as "did not fit: <why>" and the run goes on; stages that need its output are
skipped at that size. Writes bench/results/scale-<UTC stamp>.json (after every stage), a PNG of cost against items
(log-log, the fitted exponent per stage) and a section of BENCHMARKS.md. See docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.load.machine import machine_info, utc_now
from bench.load.stack import has_artifact
from bench.scale.context import USERS_PER_ITEM, SizeContext, size_label
from bench.scale.isolation import OK, StageOutcome, run_isolated
from bench.scale.report import acceptance_rows, plot, write_json, write_markdown
from bench.scale.stages import PRODUCER, STAGE_NAMES, STAGES, Stage

SKIPPED = "skipped"
MEMORY_FRACTION = 0.9


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    total_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="catalogue items per world"
    )
    parser.add_argument(
        "--stages",
        nargs="+",
        choices=STAGE_NAMES,
        default=list(STAGE_NAMES),
        help="run only these (the others' artifacts are read from --work-dir when an earlier run left them)",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("bench/results"), help="default: %(default)s")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("bench/scratch/scale"),
        help="artifact roots, one per size, and stage logs; kept for reruns with --stages; running the world "
        "stage empties a size's root first (default: %(default)s)",
    )
    parser.add_argument("--markdown", type=Path, default=Path("BENCHMARKS.md"), help="default: %(default)s")
    parser.add_argument(
        "--users-per-item", type=float, default=USERS_PER_ITEM, help="users per item (default: %(default)s)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop workers (default: %(default)s)")
    parser.add_argument("--duration-s", type=float, default=10.0, help="measured seconds per load (default: 10)")
    parser.add_argument(
        "--stage-timeout-s", type=float, default=3600.0, help="a stage running longer did not fit (default: 3600)"
    )
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=round(MEMORY_FRACTION * total_gib, 1),
        help="address-space cap of each offline stage's process: above it a stage ends in MemoryError, recorded as "
        "did not fit, before the machine swaps (0: none; default: %(default)s, 90%% of this machine's memory)",
    )
    parser.add_argument(
        "--tree-method",
        choices=("kmeans", "taxonomy"),
        default="kmeans",
        help="kmeans: build the tree; taxonomy: import the world's true taxonomy, linear, so that the stages after "
        "the tree run at sizes where k-means does not fit (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="world, training and request seed (default: 0)")
    parser.add_argument(
        "--merge-from",
        type=Path,
        help="an earlier run's JSON: the stages not run now are taken from it (same sizes and work dir), so a "
        "rerun of some stages still writes a complete table, plot and acceptance rows",
    )
    return parser.parse_args(argv)


def merge_earlier(results: dict[str, Any], earlier_path: Path) -> None:
    """Copy into ``results`` every stage outcome of ``earlier_path``'s run that this run did not measure."""
    earlier = json.loads(earlier_path.read_text())
    for items, entry in earlier["sizes"].items():
        stages = results["sizes"].setdefault(items, {"users": entry["users"], "stages": {}})["stages"]
        for name, outcome in entry["stages"].items():
            stages.setdefault(name, outcome)
        stages_in_order = {stage.name: stages[stage.name] for stage in STAGES if stage.name in stages}
        results["sizes"][items]["stages"] = stages_in_order
    results["settings"]["merged_from"] = {"json": str(earlier_path), "date": earlier["date"]}


def missing_input(stage: Stage, root: Path, outcomes: dict[str, dict[str, Any]]) -> str | None:
    """Why ``stage`` cannot run at this size (an input that failed here, or is absent), or None."""
    for kind in stage.reads:
        producer = PRODUCER[kind]
        status = outcomes.get(producer, {}).get("status")
        if status is not None and status != OK:
            return f"needs {kind}, but {producer} {status} at this size"
        if status is None and not has_artifact(root, kind):
            return f"needs the {kind} artifact: add the {producer} stage (or reuse a --work-dir holding it)"
    return None


def measure_size(
    context: SizeContext, stages: list[Stage], args: argparse.Namespace, progress: tqdm, on_stage: Any
) -> dict[str, dict[str, Any]]:
    """Run ``stages`` at one size in order; returns stage name -> its outcome (as JSON)."""
    if any(stage.name == "world" for stage in stages):
        shutil.rmtree(context.root, ignore_errors=True)
    context.root.mkdir(parents=True, exist_ok=True)
    memory_limit = int(args.memory_limit_gb * 2**30) or None
    outcomes: dict[str, dict[str, Any]] = {}
    for stage in stages:
        progress.set_description(f"{context.label} {stage.name}")
        why = missing_input(stage, context.root, outcomes)
        log = args.work_dir / "logs" / context.label / f"{stage.name}.log"
        if why is not None:
            outcome = StageOutcome(SKIPPED, reason=why)
        else:
            outcome = run_isolated(
                stage.function, context, log, args.stage_timeout_s, memory_limit if stage.offline else None
            )
        outcomes[stage.name] = outcome.to_dict()
        shown = f"{outcome.figures.get('seconds', 0):.1f} s" if outcome.status == OK else outcome.to_dict()["reason"]
        progress.write(f"{context.label:>5} {stage.name:<13} {shown}", file=sys.stderr)
        progress.update()
        on_stage()
    return outcomes


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every size, then write the JSON, the PNG and the BENCHMARKS.md section; returns the results."""
    args = parse_args(argv)
    stamp = utc_now()
    json_path = args.output_dir / f"scale-{stamp.replace(':', '')}.json"
    png_path = json_path.with_suffix(".png")
    stages = [stage for stage in STAGES if stage.name in args.stages]
    results: dict[str, Any] = {
        "date": stamp,
        "machine": machine_info(),
        "settings": {
            "sizes": args.sizes,
            "stages": [stage.name for stage in stages],
            "users_per_item": args.users_per_item,
            "tree_method": args.tree_method,
            "concurrency": args.concurrency,
            "duration_s": args.duration_s,
            "stage_timeout_s": args.stage_timeout_s,
            "memory_limit_gb": args.memory_limit_gb,
            "work_dir": str(args.work_dir),
        },
        "json": str(json_path),
        "png": str(png_path),
        "sizes": {},
    }
    with tqdm(total=len(args.sizes) * len(stages), unit="stage", file=sys.stderr) as progress:
        for items in sorted(args.sizes):
            context = SizeContext(
                items=items,
                users=max(1, round(items * args.users_per_item)),
                root=(args.work_dir / size_label(items)).resolve(),
                seed=args.seed,
                concurrency=args.concurrency,
                duration_s=args.duration_s,
                startup_timeout_s=args.stage_timeout_s,
                tree_method=args.tree_method,
            )
            entry: dict[str, Any] = {"users": context.users, "stages": {}}
            results["sizes"][str(items)] = entry
            entry["stages"] = measure_size(context, stages, args, progress, lambda: write_json(results, json_path))
            write_json(results, json_path)
    if args.merge_from is not None:
        merge_earlier(results, args.merge_from)
    results["acceptance"] = acceptance_rows(results)
    write_json(results, json_path)
    plot(results, png_path)
    write_markdown(results, args.markdown)
    for row in results["acceptance"]:
        print(f"{row['name']:<45} {row['value']!s:>10}  goal {row['goal'] or '-':<8} sizes {row['sizes']}")
    print(f"wrote {json_path}, {png_path} and {args.markdown}")
    return results
