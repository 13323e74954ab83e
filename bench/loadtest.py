"""``python -m bench.loadtest`` (``make loadtest``): load-test the serendip services on loopback.

Starts tritonserver, the Retriever and the Planner from an artifact root (or uses servers already running
on 127.0.0.1 with --planner/--retriever/--triton), sends a realistic request mix (context items drawn by
impressions, histories from held-out sessions) and writes results.json, steps.csv and
latency_vs_throughput.png into --output-dir.

Modes:
  closed    closed loop at --concurrency
  sweep     closed loop at each of --concurrencies (default 1,2,4,...,32)
  open      open loop at --rate requests/s; latency measured from each request's scheduled send time
  saturate  open-loop search for the highest rate whose p99 stays under --slo-p99-ms (no error, no overflow)

Every step is bounded by --duration-s (or --requests) and every request by --deadline-ms; the run stops by
itself and never sends anything off loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.load.machine import machine_info, utc_now
from bench.load.mix import RequestMix, describe
from bench.load.open_loop import run_open_loop
from bench.load.pipeline import missing_kinds
from bench.load.report import write_report
from bench.load.stack import LocalStack, has_artifact, prepare_plan_table
from bench.load.stats import StepResult
from bench.load.sweep import best_under_slo, doubling, find_saturation, run_sweep
from bench.load.targets import TARGET_HELP, Endpoints, target_call
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.artifacts.plans import PLANS_KIND, PlanTable
from serendip.artifacts.store import resolve_artifact
from serendip.artifacts.world import WORLD_KIND

MODES = ("closed", "sweep", "open", "saturate")
PLANNER_TARGETS = ("plan", "recommend")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadtest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="default: %(default)s")
    parser.add_argument(
        "--target", action="append", help=f"{TARGET_HELP}; repeat for several (default: plan)", dest="targets"
    )
    parser.add_argument("--mode", choices=MODES, default="sweep", help="default: %(default)s")
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop workers (default: %(default)s)")
    parser.add_argument("--concurrencies", help="sweep levels, e.g. 1,2,4,8 (default: 1,2,4,...,--max-concurrency)")
    parser.add_argument("--max-concurrency", type=int, default=32, help="default: %(default)s")
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop requests/s (default: %(default)s)")
    parser.add_argument("--duration-s", type=float, default=10.0, help="measured seconds per step (default: 10)")
    parser.add_argument("--requests", type=int, help="end a step after this many measured requests")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="unmeasured load before each step (default: 1)")
    parser.add_argument("--deadline-ms", type=float, default=1000.0, help="per-request deadline (default: 1000)")
    parser.add_argument("--max-in-flight", type=int, default=256, help="open-loop bound; extra sends are counted")
    parser.add_argument("--slo-p99-ms", type=float, default=50.0, help="p99 SLO for saturate/sweep (default: 50)")
    parser.add_argument("--start-qps", type=float, default=50.0, help="saturate: first rate tried (default: 50)")
    parser.add_argument("--max-qps", type=float, default=20000.0, help="saturate: highest rate tried")
    parser.add_argument("--max-steps", type=int, default=10, help="saturate: most steps (default: %(default)s)")
    parser.add_argument(
        "--context-items",
        choices=("cached", "all"),
        default="cached",
        help="plan/recommend: only items with a cached plan (CACHE path) or every item (LIVE on a miss)",
    )
    parser.add_argument("--planner", help="use a running Planner at this loopback host:port")
    parser.add_argument("--retriever", help="use a running Retriever at this loopback host:port")
    parser.add_argument("--triton", help="use a running tritonserver (gRPC) at this loopback host:port")
    parser.add_argument("--seed", type=int, default=0, help="request-mix seed (default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, help="default: reports/loadtest/<UTC time>")
    args = parser.parse_args(argv)
    args.targets = args.targets or ["plan"]
    levels = args.concurrencies.split(",") if args.concurrencies else doubling(args.max_concurrency)
    args.concurrency_levels = [int(level) for level in levels]
    return args


@contextlib.contextmanager
def system_under_test(args: argparse.Namespace, scratch: Path) -> Iterator[tuple[Endpoints, set[str] | None]]:
    """Endpoints to load and the cached context items (None when unknown); starts a LocalStack if none given."""
    if args.planner or args.retriever or args.triton:
        cached = set(PlanTable.load(args.artifacts)) if has_artifact(args.artifacts, PLANS_KIND) else None
        yield Endpoints(planner=args.planner, retriever=args.retriever, triton=args.triton), cached
        return
    plans_root, cached = prepare_plan_table(args.artifacts, scratch / "plan-root")
    with LocalStack(args.artifacts, scratch / "logs", plans_root) as stack:
        yield stack.endpoints, cached


async def measure(
    args: argparse.Namespace, target: str, endpoints: Endpoints, mix: RequestMix | None
) -> tuple[list[StepResult], dict[str, object]]:
    """Run the chosen mode against one target; returns its steps and mode-specific figures."""
    timing = {"warmup_s": args.warmup_s, "deadline_s": args.deadline_ms / 1000.0, "target": target}
    repository = resolve_artifact(args.artifacts, REPOSITORY_KIND) if mix is not None else None
    world = resolve_artifact(args.artifacts, WORLD_KIND) if mix is not None else None
    async with target_call(target, endpoints, mix, repository=repository, world=world) as call:
        if args.mode in ("closed", "sweep"):
            levels = [args.concurrency] if args.mode == "closed" else args.concurrency_levels
            steps = await run_sweep(call, levels, duration_s=args.duration_s, max_requests=args.requests, **timing)
            best = best_under_slo(steps, args.slo_p99_ms)
            return steps, {"best_under_slo": best.summary() if best else None}
        if args.mode == "open":
            step = await run_open_loop(
                call,
                rate_qps=args.rate,
                duration_s=args.duration_s,
                max_in_flight=args.max_in_flight,
                max_requests=args.requests,
                **timing,
            )
            return [step], {}
        saturation = await find_saturation(
            call,
            slo_p99_ms=args.slo_p99_ms,
            start_qps=args.start_qps,
            max_qps=args.max_qps,
            step_duration_s=args.duration_s,
            max_in_flight=args.max_in_flight,
            max_steps=args.max_steps,
            **timing,
        )
        return saturation.steps, {"saturation_qps": round(saturation.saturation_qps, 1)}


def print_table(steps: list[StepResult]) -> None:
    """One line per step on stdout."""
    print(f"{'target':<18}{'mode':<7}{'c/rate':>8}{'QPS':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}  errors")
    for step in steps:
        level = step.concurrency if step.mode == "closed" else f"{step.offered_qps:.0f}"
        p50, p90, p99, peak = (step.percentile_ms(q) for q in (50, 90, 99, 100))
        errors = dict(step.errors) or "-"
        if step.overflow:
            errors = f"{errors} overflow={step.overflow}"
        print(
            f"{step.target:<18}{step.mode:<7}{level!s:>8}{step.qps:>9.1f}{p50:>9.2f}{p90:>9.2f}{p99:>9.2f}"
            f"{peak:>9.2f}  {errors}"
        )


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the load test and write its report; returns the JSON document's figures."""
    args = parse_args(argv)
    output_dir = args.output_dir or Path("reports/loadtest") / utc_now().replace(":", "")
    needs_mix = any(target not in ("grpc-echo", "triton:echo") for target in args.targets)
    starts_stack = not (args.planner or args.retriever or args.triton)
    missing = missing_kinds(args.artifacts) if needs_mix or starts_stack else []
    if missing:
        raise SystemExit(
            f"{args.artifacts} lacks {', '.join(missing)}: run `make demo` (or the make targets of the pipeline) "
            "first, or point --artifacts (ARTIFACTS= for make) at a complete root"
        )
    mix = RequestMix.from_artifacts(args.artifacts, seed=args.seed) if needs_mix else None
    steps: list[StepResult] = []
    per_target: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="loadtest-") as scratch, system_under_test(args, Path(scratch)) as sut:
        endpoints, cached = sut
        for target in args.targets:
            target_mix = mix
            if mix is not None and target in PLANNER_TARGETS and args.context_items == "cached":
                if cached is None:
                    raise SystemExit("no plans artifact to draw cached context items from: pass --context-items all")
                target_mix = mix.restricted_to(cached)
            target_steps, figures = asyncio.run(measure(args, target, endpoints, target_mix))
            steps += target_steps
            per_target[target] = figures
    metadata = {
        "date": utc_now(),
        "machine": machine_info(),
        "mode": args.mode,
        "targets": args.targets,
        "artifacts": str(args.artifacts),
        "request_mix": describe(mix) if mix is not None else None,
        "context_items": args.context_items,
        "settings": {
            "duration_s": args.duration_s,
            "requests": args.requests,
            "warmup_s": args.warmup_s,
            "deadline_ms": args.deadline_ms,
            "slo_p99_ms": args.slo_p99_ms,
            "max_in_flight": args.max_in_flight,
        },
    }
    paths = write_report(output_dir, steps, metadata, {"per_target": per_target}, slo_p99_ms=args.slo_p99_ms)
    print_table(steps)
    for target, figures in per_target.items():
        for name, value in figures.items():
            shown = value if not isinstance(value, dict) else f"{value['qps']} QPS (p99 {value['p99_ms']} ms)"
            print(f"{target}: {name} = {shown}")
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return {"steps": [step.summary() for step in steps], "per_target": per_target}


if __name__ == "__main__":
    main()
