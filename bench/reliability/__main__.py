"""``python -m bench.reliability`` (``make soak``): soak, fuzz and Triton-kill runs against the stack on loopback.

1. soak   saturation search of --soak-target against --slo-p99-ms, then --soak-s at 0.8x that rate: 0 errors
2. fuzz   --fuzz-requests random/edge requests (plus oversize ones) over Plan, Recommend, Retrieve: only
          OK / INVALID_ARGUMENT / NOT_FOUND / RESOURCE_EXHAUSTED, both services alive afterwards
3. chaos  tritonserver SIGKILLed under Plan + Retrieve load: Planner errors 0 (FALLBACK), Retriever
          UNAVAILABLE while down, recovery after the restart

The Planner gets a plan table for every second item, so the soak and the fuzz hit the CACHE path and the chaos
run's Plan traffic (the other items) needs the MLLM. Writes results.json; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from bench.load.machine import machine_info, utc_now
from bench.load.mix import RequestMix
from bench.load.pipeline import missing_kinds
from bench.load.stack import LocalStack, prepare_plan_table
from bench.load.targets import grpc_payloads, target_call
from bench.reliability.chaos import run_triton_kill
from bench.reliability.fuzz import FuzzVocabulary, run_fuzz
from bench.reliability.soak import run_soak

PARTS = ("soak", "fuzz", "chaos")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.reliability", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="default: %(default)s")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts (repeatable)")
    parser.add_argument("--soak-target", default="recommend", help="plan | recommend | retrieve (default: recommend)")
    parser.add_argument("--soak-s", type=float, default=60.0, help="soak duration (default: %(default)s)")
    parser.add_argument("--soak-fraction", type=float, default=0.8, help="of the saturation rate (default: 0.8)")
    parser.add_argument("--slo-p99-ms", type=float, default=100.0, help="saturation SLO (default: %(default)s)")
    parser.add_argument("--search-step-s", type=float, default=5.0, help="saturation step length (default: 5)")
    parser.add_argument("--fuzz-requests", type=int, default=10_000, help="default: %(default)s")
    parser.add_argument("--chaos-down-s", type=float, default=5.0, help="Triton down time (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    parser.add_argument("--output-dir", type=Path, help="default: reports/reliability/<UTC time>")
    return parser.parse_args(argv)


async def run_parts(args: argparse.Namespace, stack: LocalStack, mix: RequestMix, cached: set[str]) -> dict:
    """Each selected part's report, in the order soak, fuzz, chaos (the one that kills Triton last)."""
    parts = args.only or list(PARTS)
    cached_mix = mix.restricted_to(cached)
    results: dict[str, dict] = {}
    if "soak" in parts:
        target_mix = cached_mix if args.soak_target in ("plan", "recommend") else mix
        async with target_call(args.soak_target, stack.endpoints, target_mix) as call:
            soak = await run_soak(
                call,
                target=args.soak_target,
                slo_p99_ms=args.slo_p99_ms,
                soak_s=args.soak_s,
                fraction=args.soak_fraction,
                search_step_s=args.search_step_s,
            )
        results["soak"] = soak.summary()
    if "fuzz" in parts:
        vocabulary = FuzzVocabulary(sorted(cached), mix.tree.nodes_at(mix.level))
        fuzz = await run_fuzz(stack.endpoints, vocabulary, requests=args.fuzz_requests, seed=args.seed)
        results["fuzz"] = fuzz.summary()
    if "chaos" in parts:
        uncached_mix = mix.restricted_to(set(mix.item_ids.tolist()) - cached)
        chaos = await run_triton_kill(
            stack,
            grpc_payloads("plan", uncached_mix, 16),
            grpc_payloads("retrieve", mix, 256),
            down_s=args.chaos_down_s,
        )
        results["chaos"] = chaos.summary()
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts; print and write the report; 0 when every check passed."""
    args = parse_args(argv)
    missing = missing_kinds(args.artifacts)
    if missing:
        raise SystemExit(f"{args.artifacts} lacks {', '.join(missing)}: run `make demo` first or pick another root")
    output_dir = args.output_dir or Path("reports/reliability") / utc_now().replace(":", "")
    mix = RequestMix.from_artifacts(args.artifacts, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="reliability-") as scratch:
        plans_root, cached = prepare_plan_table(
            args.artifacts, Path(scratch) / "plan-root", every=2, use_published=False
        )
        with LocalStack(args.artifacts, Path(scratch) / "logs", plans_root) as stack:
            results = asyncio.run(run_parts(args, stack, mix, cached))
    verdicts = {part: bool(report["passed"]) for part, report in results.items()}
    document = {"date": utc_now(), "machine": machine_info(), "artifacts": str(args.artifacts), **results}
    document["passed"] = verdicts
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps({part: results[part] for part in results}, indent=2))
    print(f"passed: {verdicts}; wrote {output_dir / 'results.json'}")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
