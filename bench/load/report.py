"""Write load-test results: ``results.json``, ``steps.csv`` and ``latency_vs_throughput.png``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.load.stats import StepResult  # noqa: E402

CSV_COLUMNS = [
    "target",
    "mode",
    "concurrency",
    "offered_qps",
    "seconds",
    "succeeded",
    "failed",
    "qps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "scheduled",
    "overflow",
    "peak_in_flight",
    "errors",
]
PLOTTED_PERCENTILES = (("p50_ms", "p50", "o-"), ("p90_ms", "p90", "s--"), ("p99_ms", "p99", "^-"))


def write_csv(steps: list[StepResult], path: Path) -> None:
    """One row per step; ``errors`` as ``CODE=count`` pairs separated by ``;``."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for step in steps:
            row = step.summary()
            row["errors"] = ";".join(f"{code}={count}" for code, count in row["errors"].items())  # type: ignore[union-attr]
            writer.writerow({column: row[column] for column in CSV_COLUMNS})


def plot_latency_vs_throughput(steps: list[StepResult], path: Path, slo_p99_ms: float | None = None) -> None:
    """Latency percentiles (log scale) against achieved QPS, one panel per target and mode.

    Each point is a step, labelled ``c=N`` (closed loop) or ``r=N`` (open-loop offered rate), joined in order
    of that load; steps with errors or overflow are circled in red.
    """
    series: dict[tuple[str, str], list[StepResult]] = {}
    for step in steps:
        series.setdefault((step.target, step.mode), []).append(step)
    figure, axes = plt.subplots(1, len(series), figsize=(6.5 * len(series), 4.8), squeeze=False)
    for axis, ((target, mode), group) in zip(axes[0], series.items(), strict=True):
        # Joined in order of the load applied (concurrency or offered rate), so a curve that bends back to
        # the left shows more load bringing less throughput.
        group = sorted(group, key=lambda s: (s.concurrency or 0, s.offered_qps or 0.0))
        qps = [s.qps for s in group]
        for key, label, style in PLOTTED_PERCENTILES:
            latencies = [s.summary()[key] for s in group]
            axis.plot(qps, [float("nan") if v is None else v for v in latencies], style, label=label)
        for step in group:
            p99 = step.percentile_ms(99)
            tag = f"c={step.concurrency}" if step.mode == "closed" else f"r={step.offered_qps:.0f}"
            axis.annotate(tag, (step.qps, p99), textcoords="offset points", xytext=(4, 4), fontsize=7)
            if step.failed or step.overflow:
                axis.plot([step.qps], [p99], "o", markersize=11, markerfacecolor="none", color="red")
        if slo_p99_ms is not None:
            axis.axhline(slo_p99_ms, color="grey", linestyle=":", label=f"SLO p99 {slo_p99_ms:g} ms")
        axis.set_yscale("log")
        axis.set_xlabel("achieved throughput (successful requests/s)")
        axis.set_ylabel("latency (ms)")
        loop = "closed loop" if mode == "closed" else "open loop, latency from scheduled send"
        axis.set_title(f"{target} ({loop})", fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(
    output_dir: Path,
    steps: list[StepResult],
    metadata: dict[str, object],
    extra: dict[str, object] | None = None,
    slo_p99_ms: float | None = None,
) -> dict[str, Path]:
    """Write the JSON, CSV and PNG of ``steps`` into ``output_dir``; returns the paths by kind."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": output_dir / "results.json",
        "csv": output_dir / "steps.csv",
        "png": output_dir / "latency_vs_throughput.png",
    }
    document = {**metadata, "steps": [step.summary() for step in steps], **(extra or {})}
    paths["json"].write_text(json.dumps(document, indent=2) + "\n")
    write_csv(steps, paths["csv"])
    if steps:
        plot_latency_vs_throughput(steps, paths["png"], slo_p99_ms)
    else:
        del paths["png"]
    return paths


def replace_section(path: Path, section: str, begin: str, end: str) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end``) in place of the marked section of
    ``path``, or append it when absent; the rest of the file is kept."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
