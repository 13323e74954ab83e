"""The report of the log-based evaluation (``logs_eval``): ``metrics.json`` and ``table.md``, and its console lines.

Same directory layout as the simulated report (``report.py``), without figures or logs: there is no simulated
response to plot. Every figure is a line ``logs_<arm>_<metric>: value [lo, hi]`` in ``metrics.json["lines"]``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from serendip.evaluation.logs_eval import METRIC_LABELS, METRICS
from serendip.evaluation.replay import estimate
from serendip.evaluation.segments import summary_line

METRICS_FILE = "metrics.json"
TABLE_FILE = "table.md"


def _cell(record: dict[str, float | None]) -> str:
    value = estimate(record)
    if math.isnan(value.value):
        return "–"
    interval = "" if math.isnan(value.low) else f" [{value.low:.3f}, {value.high:.3f}]"
    return f"{value.value:.3f}{interval}"


def console_lines(results: dict[str, Any]) -> list[str]:
    """What the run prints: the simulator note, then one ``name: value [lo, hi]`` line per figure."""
    lines = [f"NOTE: {results['needs_simulator']}.", f"NOTE: {results['training_note']}."]
    lines += [f"arm {name} skipped: {reason}" for name, reason in results["skipped_arms"].items()]
    return lines + [summary_line(name, record) for name, record in results["lines"].items()]


def markdown_table(results: dict[str, Any]) -> str:
    """table.md: protocol, the arms × metrics table, the serendipitous base rate, skipped arms, the notes."""
    rows = [
        f"# Evaluation on your logs: {results['title']}",
        "",
        results["protocol"],
        "",
        f"**Needs a simulator.** {results['needs_simulator']}.",
        "",
        "| arm | " + " | ".join(METRIC_LABELS[m] for m in METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
    ]
    for arm in results["arms"]:
        cells = [_cell(results["metrics"][arm["name"]][metric]) for metric in METRICS]
        rows.append(f"| {arm['label']} | " + " | ".join(cells) + " |")
    rows += [
        "",
        f"Serendipitous targets (the next item in a sibling of the context's cluster): "
        f"{_cell(results['serendipitous_target_share'])} of the requests (the ceiling of the serendipitous hit share).",
    ]
    heldout = results["curation_heldout_contexts"]
    if heldout["requests"]:
        rows += [
            "",
            f"On the {heldout['requests']} requests whose context the curation held out (never an MLLM "
            "training context), next cluster or item named: "
            + ", ".join(f"{name} {_cell(record)}" for name, record in heldout["cluster_hit"].items()),
        ]
    if results["skipped_arms"]:
        rows += ["", "Arms not run:"] + [f"- {name}: {reason}" for name, reason in results["skipped_arms"].items()]
    if results["notes"]:
        rows += ["", "Notes:"] + [f"- {name}: {note}" for name, note in results["notes"].items()]
    rows += ["", "## Lines", "", "```"] + [summary_line(n, r) for n, r in results["lines"].items()] + ["```", ""]
    return "\n".join(rows)


def write_logs_report(directory: Path, results: dict[str, Any]) -> list[Path]:
    """Write ``metrics.json`` and ``table.md`` into ``directory``; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    metrics_path, table_path = directory / METRICS_FILE, directory / TABLE_FILE
    metrics_path.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str) + "\n")
    table_path.write_text(markdown_table(results))
    return [table_path, metrics_path]
