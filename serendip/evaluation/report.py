"""The evaluation report: ``metrics.json``, ``table.md`` and PNG plots in the style of paper Figs 6-8.

``fig6_novelty_quality.png``  novel impression ratio and positive-feedback ratio, % change over exploitation
``fig7_engagement.png``       engaged users, engaged (user, item) pairs per user, engaged item coverage, % change
``fig8_visual_buckets.png``   (a) satisfaction gain of MLLM-nominated over non-MLLM candidates per bucket,
                              (b) the visually-interesting score range of each bucket
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from serendip.evaluation.confidence import Estimate  # noqa: E402
from serendip.evaluation.replay import estimate  # noqa: E402
from serendip.evaluation.segments import summary_line  # noqa: E402

METRICS_FILE = "metrics.json"
TABLE_FILE = "table.md"
FIGURES = ("fig6_novelty_quality.png", "fig7_engagement.png", "fig8_visual_buckets.png")
METRIC_LABELS = {
    "novel_impression_ratio": "novel impression ratio",
    "positive_feedback_ratio": "positive-feedback ratio",
    "mean_satisfaction": "mean satisfaction",
    "good_cluster_share": "good-cluster share",
    "serendipity": "serendipity (Ge)",
    "cluster_unexpectedness": "cluster unexpectedness",
    "coverage": "coverage",
    "gini": "Gini",
    "engaged_users": "engaged users",
    "engaged_pairs_per_user": "engaged pairs / user",
    "engaged_item_coverage": "engaged item coverage",
}


def _cell(record: dict[str, float | None], percent: bool = False) -> str:
    value = estimate(record)
    if math.isnan(value.value):
        return "–"
    scale, unit, digits = (100, " %", 1) if percent else (1, "", 3)
    sign = "+" if percent and value.value > 0 else ""
    text = f"{sign}{value.value * scale:.{digits}f}{unit}"
    if not math.isnan(value.low):
        text += f" [{value.low * scale:.{digits}f}, {value.high * scale:.{digits}f}]"
    return text


def _relative_cell(results: dict[str, Any], arm: str, metric: str) -> str:
    relative = results["relative_to_control"].get(arm)
    return "reference" if relative is None else _cell(relative[metric], percent=True)


def _number(value: float | int) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _label(results: dict[str, Any], arm: str) -> str:
    return next(a["label"] for a in results["arms"] if a["name"] == arm)


def paper_shape(results: dict[str, Any]) -> dict[str, Any]:
    """Does the paper's shape hold? Highest novel impression ratio for the primary treatment, its positive-
    feedback ratio ≥ every exploration baseline's, and a larger gain for more visually interesting contexts.

    Each check is judged on point estimates and, separately, on whether the 95 % intervals separate.
    """
    arms = {arm["name"]: arm for arm in results["arms"]}
    treatment = next((name for name, arm in arms.items() if arm["role"] == "treatment"), None)
    if treatment is None:
        return {"treatment": None, "statements": ["no treatment arm: nothing to compare"]}
    metric = results["metrics"]
    nir = {name: estimate(metric[name]["novel_impression_ratio"]) for name in arms}
    pfr = {name: estimate(metric[name]["positive_feedback_ratio"]) for name in arms}
    rivals = [name for name, arm in arms.items() if arm["role"] != "treatment"]
    exploration = [name for name, arm in arms.items() if arm["role"] == "exploration"]
    highest = all(nir[treatment].value > nir[r].value for r in rivals)
    highest_separated = all(nir[treatment].low > nir[r].high for r in rivals)
    quality = {r: pfr[treatment].value >= pfr[r].value for r in exploration}
    quality_worse_separated = {r: pfr[treatment].high < pfr[r].low for r in exploration}
    checks: dict[str, Any] = {
        "treatment": treatment,
        "highest_novel_impression_ratio": highest,
        "highest_novel_impression_ratio_ci_separated": highest_separated,
        "positive_feedback_ratio_ge_exploration": quality,
        "positive_feedback_ratio_below_exploration_ci_separated": quality_worse_separated,
    }
    t_label = _label(results, treatment)
    statements = [
        f"{'HOLDS' if highest else 'DOES NOT HOLD'}: {t_label} has "
        f"{'the highest' if highest else 'not the highest'} novel impression ratio "
        f"({nir[treatment].value:.3f} vs "
        + ", ".join(f"{_label(results, r)} {nir[r].value:.3f}" for r in rivals)
        + f"){'; the 95 % intervals separate' if highest_separated else ''}."
    ]
    for rival in exploration:
        verdict = "HOLDS" if quality[rival] else "DOES NOT HOLD"
        detail = (
            "the intervals separate"
            if quality_worse_separated[rival] or (quality[rival] and pfr[treatment].low > pfr[rival].high)
            else "the 95 % intervals overlap"
        )
        statements.append(
            f"{verdict}: positive-feedback ratio of {t_label} {pfr[treatment].value:.3f} "
            f"{'≥' if quality[rival] else '<'} {_label(results, rival)} {pfr[rival].value:.3f} ({detail})."
        )
    primary_buckets = next((b for b in results.get("buckets", []) if b["treatment"] == treatment), None)
    if primary_buckets and primary_buckets["spearman_bucket_vs_gain"] is not None:
        rho = primary_buckets["spearman_bucket_vs_gain"]
        checks["bucket_gain_grows_with_visual_interest"] = rho < 0
        statements.append(
            f"{'HOLDS' if rho < 0 else 'DOES NOT HOLD'}: the satisfaction gain of {t_label} candidates "
            f"{'grows' if rho < 0 else 'does not grow'} with the context's visual interest "
            f"(Spearman ρ of bucket number vs gain = {rho:+.2f}; negative = the paper's shape)."
        )
    checks["statements"] = statements
    return checks


def markdown_table(results: dict[str, Any]) -> str:
    """The report as markdown: verdicts, Fig. 6 / beyond-accuracy / Fig. 7 / Fig. 8 tables, diagnostics."""
    k = results.get("k", 10)
    lines = [f"# Offline A/B evaluation — {results.get('title', '')}".rstrip(" —"), ""]
    if results.get("protocol"):
        lines += [results["protocol"], ""]
    lines += ["## Does the paper's shape hold?", ""]
    lines += [f"- {statement}" for statement in results["paper_shape"]["statements"]]
    lines += ["", "All values: point estimate [95 % bootstrap interval over users].", ""]
    arms = results["arms"]
    header = ["arm", "role", "users", "impressions"]
    lines += ["## Novelty and quality (paper Fig. 6)", ""]
    columns = ["novel_impression_ratio", "positive_feedback_ratio"]
    lines.append(
        "| "
        + " | ".join(header + [METRIC_LABELS[c] for c in columns] + ["Δ NIR vs control", "Δ PFR vs control"])
        + " |"
    )
    lines.append("|" + "---|" * (len(header) + 4))
    for arm in arms:
        name = arm["name"]
        row = [arm["label"], arm["role"], str(arm["users"]), str(arm["impressions"])]
        row += [_cell(results["metrics"][name][c]) for c in columns]
        row += [_relative_cell(results, name, c) for c in columns]
        lines.append("| " + " | ".join(row) + " |")
    columns = [
        "mean_satisfaction",
        "good_cluster_share",
        "serendipity",
        "cluster_unexpectedness",
        "coverage",
        "gini",
        f"recall@{k}",
        f"ndcg@{k}",
    ]
    lines += ["", "## Satisfaction, beyond-accuracy and held-out accuracy", ""]
    lines.append("| arm | " + " | ".join(METRIC_LABELS.get(c, c) for c in columns) + " |")
    lines.append("|" + "---|" * (len(columns) + 1))
    for arm in arms:
        lines.append(
            "| " + " | ".join([arm["label"]] + [_cell(results["metrics"][arm["name"]][c]) for c in columns]) + " |"
        )
    columns = ["engaged_users", "engaged_pairs_per_user", "engaged_item_coverage"]
    lines += ["", "## Engagement (paper Fig. 7), change vs control", ""]
    lines.append("| arm | " + " | ".join(f"{METRIC_LABELS[c]} | Δ" for c in columns) + " |")
    lines.append("|" + "---|" * (2 * len(columns) + 1))
    for arm in arms:
        name = arm["name"]
        cells = [f"{_cell(results['metrics'][name][c])} | {_relative_cell(results, name, c)}" for c in columns]
        lines.append("| " + " | ".join([arm["label"]] + cells) + " |")
    lines += _segment_lines(results)
    for buckets in results.get("buckets", []):
        lines += ["", f"## Visually-interesting buckets (paper Fig. 8): {_label(results, buckets['treatment'])}", ""]
        shares = ("treatment_good_cluster_share", "baseline_good_cluster_share")
        has_shares = all(key in row for row in buckets["rows"] for key in shares)
        header = "| bucket | score range | requests (treatment / non-MLLM) | value treatment | non-MLLM | gain |"
        lines.append(header + (" good-cluster share treatment / non-MLLM |" if has_shares else ""))
        lines.append("|---|---|---|---|---|---|" + ("---|" if has_shares else ""))
        for row in buckets["rows"]:
            score = "–" if row["score_min"] is None else f"{row['score_min']:.2f}–{row['score_max']:.2f}"
            values = ["–" if row[key] is None else f"{row[key]:.3f}" for key in ("treatment_value", "baseline_value")]
            line = (
                f"| {row['bucket']} | {score} | {row['treatment_requests']} / {row['baseline_requests']} | "
                f"{values[0]} | {values[1]} | {_cell(row['gain'], percent=True)} |"
            )
            if has_shares:
                line += " " + " / ".join("–" if row[key] is None else f"{row[key]:.3f}" for key in shares) + " |"
            lines.append(line)
        lines.append(f"\nSpearman ρ(bucket, gain) = {buckets['spearman_bucket_vs_gain']}")
    if results.get("overlap"):
        names = [arm["name"] for arm in arms]
        lines += ["", "## Overlap of nominations (share of the row arm's items the column arm also nominates)", ""]
        lines.append("| | " + " | ".join(_label(results, name) for name in names) + " |")
        lines.append("|" + "---|" * (len(names) + 1))
        for name in names:
            cells = ["–" if other == name else f"{results['overlap'][name][other]:.3f}" for other in names]
            lines.append(f"| {_label(results, name)} | " + " | ".join(cells) + " |")
    diagnostics = results.get("diagnostics", {})
    if any(diagnostics.values()):
        lines += ["", "## Diagnostics", ""]
        for arm in arms:
            record = diagnostics.get(arm["name"], {})
            parts = [
                f"{key}: " + ", ".join(f"{name} {_number(v)}" for name, v in value.items())
                for key, value in record.items()
            ]
            if parts:
                lines.append(f"- {arm['label']}: " + "; ".join(parts))
    sanity = results.get("sanity")
    if sanity:
        lines += ["", "## Serving-path check", "", sanity["note"] + ":", ""]
        lines.append(f"- exploitation, SASRec artifact protocol: {sanity['exploitation_with_artifact_protocol']}")
        lines.append(f"- SASRec artifact test metrics: {sanity['sasrec_artifact_test_metrics']}")
        lines.append(f"- share of held-out targets already in the history: {sanity['heldout_target_in_history_share']}")
    return "\n".join(lines) + "\n"


def _segment_lines(results: dict[str, Any]) -> list[str]:
    """The head vs fresh-upload section: a note when there is no fresh segment, then the named lines."""
    segments = results.get("segments")
    if not segments:
        return []
    lines = ["", "## Head vs fresh-upload contexts", ""]
    names = list(segments.get("segments", {}))
    if "fresh" not in names:
        lines += [f"No fresh-upload segment. {segments.get('note', '')}".rstrip(), ""]
    for name in names:
        best = segments["segments"][name].get("best_baseline")
        if best:
            lines.append(f"- {name}: best baseline by positive-feedback ratio = {_label(results, best)}")
    lines += [
        "",
        "Per segment and arm: positive-feedback ratio (pfr), novel impression ratio against the arm's production "
        "pool (nir), share of impressions in the context's good clusters (good_cluster_share); value [95 % "
        "bootstrap interval over the segment's users].",
        "",
        "```",
    ]
    lines += [summary_line(name, record) for name, record in segments.get("lines", {}).items()]
    return [*lines, "```"]


def _bars(axis: plt.Axes, labels: list[str], estimates: list[Estimate], color: str, title: str) -> None:
    values = [100 * e.value for e in estimates]
    errors = [
        [0 if math.isnan(e.low) else 100 * (e.value - e.low) for e in estimates],
        [0 if math.isnan(e.high) else 100 * (e.high - e.value) for e in estimates],
    ]
    axis.bar(labels, values, yerr=errors, color=color, capsize=4)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_title(title, fontsize=10)
    axis.set_ylabel("% change vs exploitation")
    axis.tick_params(axis="x", labelsize=7)


def _relative_figure(results: dict[str, Any], metrics: list[str], colors: list[str], title: str, path: Path) -> None:
    arms = [arm for arm in results["arms"] if arm["role"] != "control"]
    labels = [textwrap.fill(arm["label"], 14) for arm in arms]
    figure, axes = plt.subplots(1, len(metrics), figsize=(max(4.2, 1.1 * len(arms)) * len(metrics), 4.0))
    for axis, metric, color in zip(axes, metrics, colors, strict=True):
        estimates = [estimate(results["relative_to_control"][arm["name"]][metric]) for arm in arms]
        _bars(axis, labels, estimates, color, METRIC_LABELS[metric])
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _bucket_figure(results: dict[str, Any], path: Path) -> None:
    figure, (gains_axis, scores_axis) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    series = results.get("buckets", [])
    width = 0.8 / max(len(series), 1)
    for number, buckets in enumerate(series):
        rows = buckets["rows"]
        positions = [row["bucket"] + (number - (len(series) - 1) / 2) * width for row in rows]
        gains = [estimate(row["gain"]) for row in rows]
        values = [0 if math.isnan(g.value) else 100 * g.value for g in gains]
        errors = [
            [0 if math.isnan(g.low) else 100 * (g.value - g.low) for g in gains],
            [0 if math.isnan(g.high) else 100 * (g.high - g.value) for g in gains],
        ]
        gains_axis.bar(
            positions, values, width=width, yerr=errors, capsize=3, label=_label(results, buckets["treatment"])
        )
    gains_axis.axhline(0, color="black", linewidth=0.8)
    gains_axis.set_xlabel("bucket (1 = most visually interesting)")
    gains_axis.set_ylabel("satisfaction gain vs non-MLLM (%)")
    gains_axis.set_title("(a) gain of MLLM-nominated candidates", fontsize=10)
    if series:
        gains_axis.legend(fontsize=8)
        rows = series[0]["rows"]
        lows = [row["score_min"] or 0 for row in rows]
        highs = [row["score_max"] or 0 for row in rows]
        scores_axis.bar(
            [row["bucket"] for row in rows], [h - lo for lo, h in zip(lows, highs, strict=True)], bottom=lows
        )
    scores_axis.set_xlabel("bucket")
    scores_axis.set_ylabel("visually-interesting score")
    scores_axis.set_title("(b) score range per bucket", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(directory: Path, results: dict[str, Any]) -> list[Path]:
    """Write metrics.json, table.md and the three figures into ``directory``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    results = {**results, "paper_shape": paper_shape(results)}
    (directory / METRICS_FILE).write_text(json.dumps(results, indent=2, default=str) + "\n")
    (directory / TABLE_FILE).write_text(markdown_table(results))
    fig6, fig7, fig8 = (directory / name for name in FIGURES)
    _relative_figure(
        results,
        ["novel_impression_ratio", "positive_feedback_ratio"],
        ["tab:blue", "tab:orange"],
        "Novelty and quality vs the exploitation model (paper Fig. 6)",
        fig6,
    )
    _relative_figure(
        results,
        ["engaged_users", "engaged_pairs_per_user", "engaged_item_coverage"],
        ["tab:green", "tab:purple", "tab:brown"],
        "Engagement vs the exploitation model (paper Fig. 7)",
        fig7,
    )
    _bucket_figure(results, fig8)
    return [directory / METRICS_FILE, directory / TABLE_FILE, fig6, fig7, fig8]
