"""``python -m serendip.jobs.mllm_ablations``: the paper's offline comparisons (Figs 3-5) on a curated world.

Trains one planner per configuration with identical data, tokenizer, seed and step budget (400 steps; no
wall-clock cap unless ``--max-minutes``), evaluates each on the same held-out contexts at every checkpoint,
and writes a report directory::

    table.md  table.json                    final and best held-out recall / match rate / recall@n per run,
                                            popularity and random baselines, steps/s
    fig3_prompt_{recall,match_rate}.png     text_only vs video_only vs video_text vs video_cot (4 frames)
    fig4_frames_{recall,match_rate}.png     video_cot with 1 / 2 / 4 / 8 uniformly sampled frames
    fig5_thumbnail_{recall,match_rate}.png  video_cot with the thumbnail vs one sampled frame
    runs/<run>/                             each run's train_log.jsonl, metrics.json, curves, planner files

Runs shared by several figures are trained once (video_cot/4 is in Figs 3 and 4, video_cot/1 in 4 and 5).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

from serendip.artifacts.store import resolve_artifact
from serendip.jobs.train_mllm import CURATION_KIND, add_training_arguments, model_choice, training_config
from serendip.models.mllm.evaluation import plot_curves
from serendip.models.mllm.pipeline import RunResult, train_planner
from serendip.models.mllm.prompts import PromptVariant, VisualSetting

DEFAULT_REPORTS_ROOT = Path("reports") / "mllm_ablations"


@dataclass(frozen=True)
class AblationRun:
    """One configuration: prompt variant and visual setting."""

    variant: PromptVariant
    visual: VisualSetting

    @property
    def name(self) -> str:
        """``video_cot-4``, ``video_cot-thumbnail``, ``text_only``."""
        return str(self.variant) if not self.variant.uses_video else f"{self.variant}-{self.visual.name}"


COT = PromptVariant.VIDEO_COT
FIGURES: dict[str, tuple[str, list[AblationRun]]] = {
    "fig3_prompt": (
        "prompt variants (4 frames)",
        [AblationRun(variant, VisualSetting(4)) for variant in PromptVariant],
    ),
    "fig4_frames": ("video CoT, uniformly sampled frames", [AblationRun(COT, VisualSetting(n)) for n in (1, 2, 4, 8)]),
    "fig5_thumbnail": (
        "video CoT, thumbnail vs one sampled frame",
        [AblationRun(COT, VisualSetting(thumbnail=True)), AblationRun(COT, VisualSetting(1))],
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m serendip.jobs.mllm_ablations",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--figures",
        default=",".join(FIGURES),
        help=f"comma list of {', '.join(FIGURES)} (default: all)",
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=None,
        help=f"where to write the report (default: {DEFAULT_REPORTS_ROOT}/<UTC timestamp>)",
    )
    parser.add_argument(
        "--keep-models", action="store_true", help="keep each run's model/ and checkpoints/ (about 13 MB each)"
    )
    add_training_arguments(parser)
    # Equal step budgets (no wall-clock cap) keep runs comparable when the machine is shared.
    parser.set_defaults(steps=400, checkpoint_every=50, max_minutes=None, keep_checkpoints=1)
    return parser.parse_args(argv)


def _selected_runs(figures: list[str]) -> list[AblationRun]:
    unknown = [name for name in figures if name not in FIGURES]
    if unknown:
        raise SystemExit(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    runs: list[AblationRun] = []
    for name in figures:
        runs += [run for run in FIGURES[name][1] if run not in runs]
    return runs


def _row(run: AblationRun, result: RunResult) -> dict[str, Any]:
    evals = result.summary.evals
    best = max(evals, key=lambda record: record["recall"]) if evals else {}
    final = result.metrics["model"]
    return {
        "run": run.name,
        "variant": str(run.variant),
        "frames": run.visual.name if run.variant.uses_video else "none",
        "steps": result.summary.steps,
        "recall": final.get("recall"),
        "match_rate": final.get("match_rate"),
        "recall@1": final.get("recall@1"),
        "recall@3": final.get("recall@3"),
        "recall@5": final.get("recall@5"),
        "best_recall": best.get("recall"),
        "best_recall_step": best.get("step"),
        "steps_per_second": result.summary.steps_per_second,
        "train_seconds": result.metrics["training"]["seconds"],
    }


def _markdown(rows: list[dict[str, Any]], baselines: dict[str, dict[str, float]], protocol: str) -> str:
    columns = ["run", "steps", "recall", "match_rate", "recall@1", "recall@3", "best_recall", "best_recall_step",
               "steps_per_second"]  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[key]:.3f}" if isinstance(row[key], float) else str(row[key]) for key in columns]
        lines.append("| " + " | ".join(cells) + " |")
    for name, values in baselines.items():
        cells = [f"{name} baseline", "-", f"{values['recall']:.3f}", "-", f"{values['recall@1']:.3f}",
                 f"{values['recall@3']:.3f}", "-", "-", "-"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return f"Protocol: {protocol}.\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    """Train every selected configuration, then write the table and figures; returns the report directory."""
    args = parse_args(argv)
    transformers.utils.logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    figures = [name.strip() for name in args.figures.split(",") if name.strip()]
    runs = _selected_runs(figures)
    curation_dir = resolve_artifact(args.curation, CURATION_KIND)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    report_dir = args.report_dir or DEFAULT_REPORTS_ROOT / stamp
    report_dir.mkdir(parents=True, exist_ok=True)
    choice = model_choice(args)
    results: dict[str, RunResult] = {}
    started = time.perf_counter()
    for position, run in enumerate(runs, 1):
        print(f"[{position}/{len(runs)}] {run.name}", flush=True)
        config = training_config(args, run.variant, run.visual)
        run_dir = report_dir / "runs" / run.name
        results[run.name] = train_planner(
            curation_dir, config, run_dir, choice, args.heldout_limit, progress=not args.quiet
        )
        if not args.keep_models:
            shutil.rmtree(run_dir / "model", ignore_errors=True)
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    any_result = next(iter(results.values()))
    baselines = any_result.metrics["baselines"]
    rows = [_row(run, results[run.name]) for run in runs]
    document = {
        "curation": str(curation_dir),
        "protocol": any_result.metrics["protocol"],
        "counts": any_result.counts,
        "parameters": {"model": choice.to_dict(), "training": training_config(args, COT, VisualSetting()).to_dict()},
        "runs": rows,
        "baselines": baselines,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (report_dir / "table.json").write_text(json.dumps(document, indent=2) + "\n")
    (report_dir / "table.md").write_text(_markdown(rows, baselines, document["protocol"]))
    baseline_lines = {f"{name} baseline": values["recall"] for name, values in baselines.items()}
    for figure in figures:
        title, figure_runs = FIGURES[figure]
        series = {run.name: results[run.name].summary.evals for run in figure_runs}
        for metric in ("recall", "match_rate"):
            plot_curves(
                series,
                metric,
                report_dir / f"{figure}_{metric}.png",
                f"{title}: held-out {metric.replace('_', ' ')}",
                baseline_lines if metric == "recall" else None,
            )
    print((report_dir / "table.md").read_text())
    print(f"report in {report_dir}")
    return report_dir


if __name__ == "__main__":
    main()
