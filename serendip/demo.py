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
import contextlib
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pandas as pd

from ray_jobs import batch_plans, decode_frames
from ray_jobs.ray_runtime import ray_session
from serendip.artifacts.store import resolve_artifact
from serendip.artifacts.world import WORLD_KIND
from serendip.core.errors import ArtifactError
from serendip.jobs import build_tree, curate, make_world, popular_corpus, train_mllm, train_sasrec
from serendip.serve import Stack
from serendip.service.background import BackgroundService
from serendip.service.logs import configure_logging
from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from triton_models import build_engines
from triton_models.launcher import free_port

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


def existing_artifact(root: Path, kind: str) -> Path | None:
    """The latest artifact of ``kind`` under ``root``, None when there is none."""
    try:
        return resolve_artifact(root, kind)
    except ArtifactError:
        return None


def run_stage(name: str, kind: str, root: Path, rebuild: bool, job: Callable[[], object]) -> Path:
    """Run ``job`` unless an artifact of ``kind`` already exists (and ``rebuild`` is off)."""
    existing = None if rebuild else existing_artifact(root, kind)
    if existing is not None:
        print(f"==> {name}: reusing {existing}", flush=True)
        return existing
    print(f"==> {name}", flush=True)
    started = time.monotonic()
    job()
    print(f"    {name} took {time.monotonic() - started:.0f} s", flush=True)
    return resolve_artifact(root, kind)


def build_everything(args: argparse.Namespace) -> None:
    """Stages 1-7."""
    root, common = args.artifacts, ["--artifacts", str(args.artifacts)]
    world = run_stage("world", "world", root, args.rebuild, lambda: make_world.main(common))
    run_stage("cluster tree", "tree", root, args.rebuild, lambda: build_tree.main(["--world", str(world), *common]))
    curation = run_stage(
        "curation", "curation", root, args.rebuild, lambda: curate.main(["--world", str(world), *common])
    )
    mllm_args = ["--curation", str(curation), "--variant", "video_cot", "--frames", "4"]
    mllm_args += ["--max-minutes", str(args.mllm_minutes), *common]
    run_stage("MLLM fine-tuning", "mllm", root, args.rebuild, lambda: train_mllm.main(mllm_args))
    sasrec_args = ["--data", str(world), "--epochs", str(args.sasrec_epochs), *common]
    run_stage("SASRec training", "sasrec", root, args.rebuild, lambda: train_sasrec.main(sasrec_args))
    run_stage("build engines", "model_repository", root, args.rebuild, lambda: build_engines.main(common))
    run_stage("popular corpus", "corpus", root, args.rebuild, lambda: popular_corpus.main(common))
    ray_needed = args.rebuild or any(existing_artifact(root, kind) is None for kind in ("frames", "plans"))
    with ray_session() if ray_needed else contextlib.nullcontext():  # one local Ray for both jobs, not one each
        run_stage("frame decoding (Ray)", "frames", root, args.rebuild, lambda: decode_frames.main(common))
        run_stage("batch plans (Ray)", "plans", root, args.rebuild, lambda: batch_plans.main(common))


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
    stack = Stack(args.artifacts, "127.0.0.1", free_port(), free_port())
    world_items = pd.read_parquet(resolve_artifact(args.artifacts, WORLD_KIND) / "items.parquet")
    with stack.triton:
        services = stack.services()
        runners = [BackgroundService(service) for service in services]
        addresses = [runner.start() for runner in runners]
        try:
            show_recommendations(addresses[0], world_items, args.queries)
        finally:
            for runner in runners:
                runner.stop()
    print("\nDone. `make serve` keeps the stack running; `make test` runs the tests.")


if __name__ == "__main__":
    main()
