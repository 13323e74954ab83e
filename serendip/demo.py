"""``python -m serendip.demo`` (``make demo``): the whole embedded pipeline, then serve and query it.

Stages (each a job you can also run alone; finished stages are reused unless ``--rebuild``):

1. ``serendip.jobs.make_world``      synthetic micro-video world with real mp4 files
2. ``serendip.jobs.build_tree``      4-level interest-cluster tree
3. ``serendip.jobs.curate``          serendipitous (context, cluster) SFT examples
4. ``serendip.jobs.train_mllm``      tiny Qwen2-VL planner, video chain-of-thought, 4 frames
5. ``serendip.jobs.train_sasrec``    SASRec retriever
6. ``triton_models.build_engines``  Triton model repository (mllm + seqrec)
7. ``serendip.jobs.popular_corpus``, ``ray_jobs.decode_frames``, ``ray_jobs.batch_plans``: the plan table of the
   items covering 80 % of impressions (Ray Data on one local Ray instance, started once for both jobs)
8. serve: tritonserver + Retriever + Planner on 127.0.0.1, then a few Recommend calls, printed
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from pathlib import Path

import grpc
import pandas as pd

from serendip.artifacts.lineage import resolve_bundle
from serendip.pipeline import DEMO, run_pipeline
from serendip.service.logs import configure_logging
from serendip.stack import ServingStack
from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc

SOURCE_NAMES = {value: name.removeprefix("PLAN_SOURCE_") for name, value in planner_pb2.PlanSource.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m serendip.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"), help="default: %(default)s")
    parser.add_argument("--rebuild", action="store_true", help="run every stage even if its artifact exists")
    parser.add_argument("--mllm-minutes", type=float, default=6.0, help="MLLM training budget (default: 6)")
    parser.add_argument("--sasrec-epochs", type=int, default=20, help="default: %(default)s")
    parser.add_argument("--queries", type=int, default=3, help="Recommend calls to show (default: 3)")
    return parser.parse_args(argv)


def build_everything(args: argparse.Namespace) -> None:
    """Stages 1-7 through the stage graph (finished stages whose inputs are unchanged are reused)."""
    config = dataclasses.replace(
        DEMO,
        mllm=dataclasses.replace(DEMO.mllm, max_minutes=args.mllm_minutes),
        sasrec=dataclasses.replace(DEMO.sasrec, epochs=args.sasrec_epochs),
    )
    run_pipeline(args.artifacts, config, rebuild=args.rebuild, log=lambda line: print(line, flush=True))


def show_recommendations(planner_address: str, items: pd.DataFrame, count: int) -> None:
    """A few Recommend calls for popular items, printed for people."""
    titles = items.set_index("item_id")["title"].to_dict()
    contexts = items.sort_values("impressions", ascending=False)["item_id"].head(count)
    with grpc.insecure_channel(planner_address) as channel:
        stub = planner_pb2_grpc.PlannerStub(channel)
        for item_id in contexts:
            request = planner_pb2.RecommendRequest(
                context_item=common_pb2.ItemRef(item_id=item_id), num_items=4, num_clusters=2
            )
            response = stub.Recommend(request, timeout=30)
            plan = response.plan
            print(f"\nwatching {item_id}: {titles.get(item_id, '')!r}")
            print(f"  its cluster: {plan.context_cluster.description!r}")
            print(f"  plan ({SOURCE_NAMES[plan.source]}, {plan.plan_version}):")
            reasoning = next((planned.reasoning for planned in plan.clusters if planned.reasoning), "")
            if reasoning:
                print(textwrap.indent(textwrap.fill(f"MLLM's thought: {reasoning}", 96), "    "))
            for planned in plan.clusters:
                print(f"    {planned.score:8.3f}  {planned.cluster.description!r}")
            for item in response.items:
                print(f"    -> {item.item_id} {titles.get(item.item_id, '')!r}  [{item.reason}]")


def main(argv: list[str] | None = None) -> None:
    """Build what is missing, serve it, query it, stop."""
    args = parse_args(argv)
    configure_logging("WARNING")
    build_everything(args)
    print("==> serving on 127.0.0.1 (tritonserver, Retriever, Planner)", flush=True)
    bundle = resolve_bundle(args.artifacts)
    world_items = pd.read_parquet(bundle.catalogue / "items.parquet")  # type: ignore[operator]
    with ServingStack(bundle) as stack:
        show_recommendations(stack.planner_address, world_items, args.queries)
    print("\nDone. `make serve` keeps the stack running; `make test` runs the tests.")


if __name__ == "__main__":
    main()
