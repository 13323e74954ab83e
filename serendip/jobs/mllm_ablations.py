"""``python -m serendip.jobs.mllm_ablations``: the paper's offline comparisons (Figs 3-5) on a curated world.

Trains one planner per configuration with identical data, tokenizer, seed and step budget (400 steps; no
wall-clock cap unless ``--max-minutes``), evaluates each on the same held-out contexts at every checkpoint,
and writes a report directory::

    table.md  table.json                    final and best held-out recall / match rate / recall@n per run, the
                                            recall@1 among the candidates (same footing as the baselines),
                                            popularity and random baselines, steps/s
    fig3_prompt_{recall,match_rate}.png     text_only vs video_only vs video_text vs video_cot (4 frames)
    fig4_frames_{recall,match_rate}.png     video_cot with 1 / 2 / 4 / 8 uniformly sampled frames
    fig5_thumbnail_{recall,match_rate}.png  video_cot with the thumbnail vs one sampled frame
    rag_keywords_{recall,match_rate}.png    video_cot with and without MMSRARec's related keywords (4 frames;
                                            only with --figures rag_keywords --keywords DIR)
    runs/<run>/                             each run's train_log.jsonl, metrics.json, curves, planner files

Runs shared by several figures are trained once (video_cot/4 is in Figs 3 and 4, video_cot/1 in 4 and 5).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serendip.artifacts.store import resolve_artifact
from serendip.core.cli import CommaNames, run_job
from serendip.core.errors import DataError
from serendip.jobs.train_mllm import CURATION_KIND, MllmTrainingOptions
from serendip.models.mllm.errors import MllmError
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
RAG_FIGURE = "rag_keywords"
FIGURES: dict[str, tuple[str, list[AblationRun]]] = {
    "fig3_prompt": (
        "prompt variants (4 frames)",
        [AblationRun(variant, VisualSetting(4)) for variant in PromptVariant if not variant.uses_related],
    ),
    "fig4_frames": ("video CoT, uniformly sampled frames", [AblationRun(COT, VisualSetting(n)) for n in (1, 2, 4, 8)]),
    "fig5_thumbnail": (
        "video CoT, thumbnail vs one sampled frame",
        [AblationRun(COT, VisualSetting(thumbnail=True)), AblationRun(COT, VisualSetting(1))],
    ),
    RAG_FIGURE: (
        "video CoT with the related keywords of co-engaged items (MMSRARec) or without",
        [AblationRun(COT, VisualSetting(4)), AblationRun(PromptVariant.VIDEO_COT_RAG, VisualSetting(4))],
    ),
}
PAPER_FIGURES = ("fig3_prompt", "fig4_frames", "fig5_thumbnail")


@dataclass(frozen=True)
class MllmAblationsJob(MllmTrainingOptions):
    """Options of the ablations: the figures, the report, then data, model and optimisation (equal step budgets)."""

    steps: int = 400
    """optimiser steps of every run"""
    checkpoint_every: int = 50
    """save + evaluate every K steps"""
    keep_checkpoints: int = 1
    """checkpoints kept on disk"""
    max_minutes: float | None = None
    """wall-clock cap of each run (None: none; equal step budgets keep runs comparable on a shared machine)"""
    figures: CommaNames = PAPER_FIGURES
    """comma list of fig3_prompt, fig4_frames, fig5_thumbnail, rag_keywords (needs --keywords)"""
    report_dir: Path | None = None
    """where to write the report (None: reports/mllm_ablations/<UTC timestamp>)"""
    keep_models: bool = False
    """keep each run's model/ and checkpoints/ (about 13 MB each)"""

    def __post_init__(self) -> None:
        unknown = [name for name in self.figures if name not in FIGURES]
        if unknown:
            raise ValueError(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
        if RAG_FIGURE in self.figures and self.keywords is None:
            raise ValueError(f"{RAG_FIGURE} needs --keywords (a keywords artifact: python -m ray_jobs.item_keywords)")


def _selected_runs(figures: Sequence[str]) -> list[AblationRun]:
    runs: list[AblationRun] = []
    for name in figures:
        runs += [ablation for ablation in FIGURES[name][1] if ablation not in runs]
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
        "candidate_recall@1": final.get("candidate_recall@1"),
        "best_recall": best.get("recall"),
        "best_recall_step": best.get("step"),
        "steps_per_second": result.summary.steps_per_second,
        "train_seconds": result.metrics["training"]["seconds"],
    }


def _markdown(rows: list[dict[str, Any]], baselines: dict[str, dict[str, float]], protocol: str) -> str:
    columns = ["run", "steps", "recall", "match_rate", "recall@1", "recall@3", "candidate_recall@1", "best_recall",
               "best_recall_step", "steps_per_second"]  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[key]:.3f}" if isinstance(row[key], float) else str(row[key]) for key in columns]
        lines.append("| " + " | ".join(cells) + " |")
    for name, values in baselines.items():
        cells = [f"{name} baseline", "-", f"{values['recall']:.3f}", "-", f"{values['recall@1']:.3f}",
                 f"{values['recall@3']:.3f}", f"{values['recall@1']:.3f}", "-", "-", "-"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return f"Protocol: {protocol}.\n\n" + "\n".join(lines) + "\n"


def run(job: MllmAblationsJob) -> Path:
    """Train every selected configuration, then write the table and figures; returns the report directory."""
    job.prepare_torch()
    runs = _selected_runs(job.figures)
    curation_dir = resolve_artifact(job.curation, CURATION_KIND)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    report_dir = job.report_dir or DEFAULT_REPORTS_ROOT / stamp
    report_dir.mkdir(parents=True, exist_ok=True)
    choice = job.model_choice()
    results: dict[str, RunResult] = {}
    started = time.perf_counter()
    for position, ablation in enumerate(runs, 1):
        print(f"[{position}/{len(runs)}] {ablation.name}", flush=True)
        config = job.training_config(ablation.variant, ablation.visual)
        run_dir = report_dir / "runs" / ablation.name
        results[ablation.name] = train_planner(
            curation_dir,
            config,
            run_dir,
            choice,
            job.heldout_limit,
            progress=not job.quiet,
            related_keywords=job.related_keywords(ablation.variant),
        )
        if not job.keep_models:
            shutil.rmtree(run_dir / "model", ignore_errors=True)
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    any_result = next(iter(results.values()))
    baselines = any_result.metrics["baselines"]
    rows = [_row(ablation, results[ablation.name]) for ablation in runs]
    document = {
        "curation": str(curation_dir),
        "protocol": any_result.metrics["protocol"],
        "counts": any_result.counts,
        "parameters": {"model": choice.to_dict(), "training": job.training_config(COT, VisualSetting()).to_dict()},
        "runs": rows,
        "baselines": baselines,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (report_dir / "table.json").write_text(json.dumps(document, indent=2) + "\n")
    (report_dir / "table.md").write_text(_markdown(rows, baselines, document["protocol"]))
    baseline_lines = {f"{name} baseline": values["recall"] for name, values in baselines.items()}
    for figure in job.figures:
        title, figure_runs = FIGURES[figure]
        series = {ablation.name: results[ablation.name].summary.evals for ablation in figure_runs}
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


def main(argv: list[str] | None = None) -> Path:
    """``run`` with options from the command line."""
    prog = "python -m serendip.jobs.mllm_ablations"
    return run_job(run, MllmAblationsJob, argv, __doc__, prog, (DataError, MllmError))


if __name__ == "__main__":
    main()
