"""``python -m bench.triton_sweep``: the seqrec model's Triton batching settings, measured rather than guessed.

One tritonserver holds the default-size SASRec user encoder (random weights: throughput does not depend on
training) once per setting: no dynamic batching, several ``max_queue_delay_microseconds``, a preferred batch
size, two instances, two torch threads. Closed loops at ``--concurrency`` alternate over the settings in
``--rounds`` rounds (as ``bench.run`` does), so background load shifts every setting alike. Each setting's ratio
to the unbatched model is the median of its per-round ratios. Writes ``sweep.json`` and ``sweep.md`` into
``reports/triton_sweep/<stamp>/`` and prints the table; ``docs/loadtest.md`` records a run and the choice
made from it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from bench.load.machine import machine_info, utc_now
from bench.load.mix import RequestMix
from bench.load.targets import Endpoints
from bench.run import Bench, Subject, untrained_sasrec
from triton_models.launcher import TritonServer
from triton_models.seqrec import write_seqrec_model

BASELINE = "unbatched"
SETTINGS: dict[str, dict[str, object]] = {
    BASELINE: {"max_queue_delay_us": None},
    "delay_250us": {"max_queue_delay_us": 250},
    "delay_1000us": {"max_queue_delay_us": 1000},
    "delay_2000us": {"max_queue_delay_us": 2000},
    "delay_4000us": {"max_queue_delay_us": 4000},
    "delay_2000us_preferred_8": {"max_queue_delay_us": 2000, "preferred_batch_sizes": [8]},
    "delay_1000us_preferred_8_16_32": {"max_queue_delay_us": 1000, "preferred_batch_sizes": [8, 16, 32]},
    "delay_2000us_preferred_8_16_32": {"max_queue_delay_us": 2000, "preferred_batch_sizes": [8, 16, 32]},
    "delay_1000us_2_instances": {"max_queue_delay_us": 1000, "instance_count": 2},
    "delay_1000us_2_threads": {"max_queue_delay_us": 1000, "torch_threads": 2},
}
"""Setting name -> ``seqrec_python_config`` options (model name ``seqrec_<setting>``)."""


def sweep_repository(directory: Path) -> Path:
    """A model repository with one seqrec model per setting."""
    repository = directory / "models"
    artifact = untrained_sasrec(directory / "artifacts")
    for name, options in SETTINGS.items():
        write_seqrec_model(repository, artifact, name=f"seqrec_{name}", **options)
    return repository


def run(artifacts: Path, duration_s: float, rounds: int, concurrency: int) -> dict[str, object]:
    """Every setting's median-round step and its ratio to the unbatched model."""
    mix = RequestMix.from_artifacts(artifacts)
    bench = Bench(artifacts, duration_s)
    with (
        tempfile.TemporaryDirectory(prefix="triton-sweep-") as scratch,
        TritonServer(sweep_repository(Path(scratch))) as triton,
    ):
        endpoints = Endpoints(triton=triton.grpc_url)
        subjects = [Subject(name, f"triton:seqrec_{name}", endpoints, mix) for name in SETTINGS]
        asyncio.run(bench.alternate(subjects, concurrency, rounds))
    return {
        "settings": {name: {str(k): v for k, v in options.items()} for name, options in SETTINGS.items()},
        "steps": bench.steps,
        "ratio_to_unbatched": {name: round(bench.ratio(name, BASELINE), 3) for name in SETTINGS},
    }


def markdown_table(results: dict) -> str:
    """The sweep as a markdown table, best ratio first."""
    ratios: dict[str, float] = results["ratio_to_unbatched"]
    lines = [
        f"Seqrec batching sweep, {results['date']}, concurrency {results['concurrency']}, {results['rounds']} rounds "
        f"of {results['duration_s']} s; {results['machine']['cores']} cores.",
        "",
        "| setting | QPS (median round) | p50 ms | p99 ms | ratio to unbatched |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in sorted(ratios, key=ratios.__getitem__, reverse=True):
        step = results["steps"][name]
        lines.append(f"| {name} | {step['qps']} | {step['p50_ms']} | {step['p99_ms']} | {ratios[name]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    """Run the sweep and write its report."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.triton_sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="request mix (default: %(default)s)")
    parser.add_argument("--duration-s", type=float, default=3.0, help="seconds per step (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop workers (default: %(default)s)")
    parser.add_argument("--report-root", type=Path, default=Path("reports/triton_sweep"), help="default: %(default)s")
    args = parser.parse_args(argv)
    results = {
        "date": utc_now(),
        "machine": machine_info(),
        "concurrency": args.concurrency,
        "duration_s": args.duration_s,
        "rounds": args.rounds,
        **run(args.artifacts, args.duration_s, args.rounds, args.concurrency),
    }
    report = args.report_root / results["date"].replace(":", "").replace("-", "")[:15]
    report.mkdir(parents=True, exist_ok=True)
    (report / "sweep.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown_table(results)
    (report / "sweep.md").write_text(table)
    print(table)
    print(f"wrote {report}/sweep.json and sweep.md")
    return results


if __name__ == "__main__":
    main()
