"""The serving stages: the Planner (load time, resident memory, hot-reload peak, CACHE latency) and the Retriever
with its ANN indexes (latency and QPS), each as its own ``python -m planner`` / ``python -m retriever`` process,
loaded by the closed-loop client of ``bench.load`` at the context's concurrency."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from pathlib import Path

import grpc
import pandas as pd

from bench.load.closed_loop import run_closed_loop
from bench.load.machine import process_status_bytes
from bench.load.mix import RequestMix, held_out_sessions
from bench.load.targets import Endpoints, target_call
from bench.scale.context import SizeContext
from bench.scale.isolation import Figures
from bench.scale.plans import planning_level, publish, synthetic_plan_table
from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.sasrec import SASREC_ANN_KIND, SASREC_KIND, SASRecArtifact
from serendip.artifacts.store import read_manifest, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND
from serendip.core.cluster_tree import ClusterTree
from serendip.stack import ServiceProcess
from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from triton_models.build_engines import BuildEnginesJob
from triton_models.launcher import TritonServer
from triton_models.seqrec import write_seqrec_model

HOST = "127.0.0.1"
MIX_USERS = 2_000
"""Users whose held-out session the requests carry (the whole catalogue is still drawn from as context)."""
WARMUP_S = 2.0
DEADLINE_S = 2.0
SOURCE_SAMPLE = 200
"""Plan calls checked for their source before the load (every one must be CACHE)."""


def process_memory_mb(pid: int) -> dict[str, float]:
    """Current (``VmRSS``) and peak (``VmHWM``) resident memory of ``pid``, in MiB (Linux /proc)."""
    fields = process_status_bytes("VmRSS", "VmHWM", pid=pid)
    return {"rss_mb": fields["VmRSS"] / 2**20, "peak_rss_mb": fields["VmHWM"] / 2**20}


def request_mix(root: Path, seed: int) -> RequestMix:
    """Context items: every item of the tree, drawn by impressions; histories: ``MIX_USERS`` users' last sessions."""
    world = resolve_artifact(root, WORLD_KIND)
    tree = ClusterTree.load(resolve_artifact(root, TREE_KIND))
    sasrec = SASRecArtifact.load(resolve_artifact(root, SASREC_KIND))
    users = pd.read_parquet(world / "users.parquet", columns=["user_id"])["user_id"].head(MIX_USERS).tolist()
    interactions = pd.read_parquet(world / "interactions.parquet", filters=[("user_id", "in", users)])
    items = pd.read_parquet(world / "items.parquet", columns=["item_id", "impressions"])
    items = items[items["item_id"].map(tree.__contains__) & (items["impressions"] > 0)]
    level, delta = planning_level(root)
    return RequestMix(
        items["item_id"].tolist(),
        items["impressions"].tolist(),
        held_out_sessions(interactions),
        tree,
        {item_id: index + 1 for index, item_id in enumerate(sasrec.vocabulary.item_ids)},
        sasrec.config.max_len,
        level=level,
        delta=delta,
        seed=seed,
    )


def closed_loop(target: str, endpoints: Endpoints, mix: RequestMix, context: SizeContext) -> Figures:
    """p50/p99 (ms), QPS and errors of ``target`` at the context's concurrency."""

    async def measure() -> Figures:
        async with target_call(target, endpoints, mix) as call:
            step = await run_closed_loop(
                call,
                concurrency=context.concurrency,
                duration_s=context.duration_s,
                warmup_s=WARMUP_S,
                deadline_s=DEADLINE_S,
                target=target,
            )
        summary = step.summary()
        return {key: summary[key] for key in ("p50_ms", "p99_ms", "qps", "succeeded", "failed", "errors")}

    return asyncio.run(measure())


def started_service(module: str, args: list[str], log: Path, context: SizeContext) -> tuple[ServiceProcess, float]:
    """``python -m <module>`` started and SERVING; with the seconds from launch to SERVING."""
    service = ServiceProcess(module, args, log, HOST, startup_timeout_s=context.startup_timeout_s)
    started = time.perf_counter()
    service.start()
    return service, time.perf_counter() - started


def plan_sources(address: str, item_ids: list[str]) -> tuple[Counter[str], set[str]]:
    """How Plan answered for ``item_ids`` (source names) and the plan versions it named."""
    sources: Counter[str] = Counter()
    versions = set()
    with grpc.insecure_channel(address) as channel:
        stub = planner_pb2_grpc.PlannerStub(channel)
        for item_id in item_ids:
            request = planner_pb2.PlanRequest(context_item=common_pb2.ItemRef(item_id=item_id), num_clusters=3)
            response = stub.Plan(request, timeout=DEADLINE_S)
            sources[planner_pb2.PlanSource.Name(response.source)] += 1
            versions.add(response.plan_version)
    return sources, versions


def wait_for_version(address: str, item_id: str, version: str, timeout_s: float) -> float:
    """Seconds until Plan for ``item_id`` names plan table ``version`` (TimeoutError after ``timeout_s``)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if plan_sources(address, [item_id])[1] == {version}:
            return time.perf_counter() - started
        time.sleep(0.1)
    raise TimeoutError(f"the Planner did not load plan table {version} within {timeout_s:.0f} s")


def planner(context: SizeContext) -> Figures:
    """Planner load time and memory with the catalogue's plan table, CACHE latency, then a hot reload's peak.

    ``load_seconds`` runs from launch to SERVING (the table is loaded before the server answers); ``rss_mb`` is
    the resident memory after load. Then a second version of the table is published and the Planner, polling,
    builds it while the first is still served: ``hot_reload_peak_rss_mb`` is the process's peak (VmHWM) once it
    serves the new version, both tables having been alive together.
    """
    root = context.root
    args = ["--curation", str(resolve_artifact(root, CURATION_KIND)), "--plans", str(root)]
    args += ["--plans-poll-s", "0.5", "--log-level", "WARNING"]
    service, load_seconds = started_service("planner", args, root / "planner.log", context)
    try:
        assert service.pid is not None
        loaded = process_memory_mb(service.pid)
        mix = request_mix(root, context.seed)
        sources, _ = plan_sources(service.address, mix.context_items(SOURCE_SAMPLE))
        if set(sources) != {"PLAN_SOURCE_CACHE"}:
            raise RuntimeError(f"Plan answered {dict(sources)}: not every item is in the plan table")
        latency = closed_loop("plan", Endpoints(planner=service.address), mix, context)
        tree = ClusterTree.load(resolve_artifact(root, TREE_KIND))
        written = time.perf_counter()
        version = read_manifest(publish(root, synthetic_plan_table(tree, mix.level), generation=2))["version"]
        publish_seconds = time.perf_counter() - written
        reload_seconds = wait_for_version(service.address, tree.item_ids[0], version, context.startup_timeout_s)
        reloaded = process_memory_mb(service.pid)
    finally:
        service.stop()
    return {
        "seconds": load_seconds,
        "rss_mb": loaded["rss_mb"],
        "load_peak_rss_mb": loaded["peak_rss_mb"],
        "hot_reload_peak_rss_mb": reloaded["peak_rss_mb"],
        "rss_after_reload_mb": reloaded["rss_mb"],
        "reload_seconds": reload_seconds,
        "second_table_build_and_write_seconds": publish_seconds,
        "cache_p50_ms": latency["p50_ms"],
        "cache_p99_ms": latency["p99_ms"],
        "cache_qps": latency["qps"],
        "cache_failed": latency["failed"],
    }


def seqrec_repository(root: Path, artifact: SASRecArtifact) -> Path:
    """A Triton model repository holding only ``seqrec`` (as ``make build-engines`` writes it)."""
    repository = root / "scale_model_repository"
    shutil.rmtree(repository, ignore_errors=True)
    write_seqrec_model(repository, artifact, max_queue_delay_us=BuildEnginesJob().seqrec_queue_delay_us)
    return repository


def retriever(context: SizeContext) -> Figures:
    """The Retriever over tritonserver's seqrec, with the ANN indexes and then without (every cluster ranked
    exactly), on the same request mix: Retrieve p50/p99 and QPS of each; load time and RSS with the indexes."""
    root = context.root
    sasrec_dir, tree_dir = resolve_artifact(root, SASREC_KIND), resolve_artifact(root, TREE_KIND)
    ann_dir = resolve_artifact(root, SASREC_ANN_KIND)
    repository = seqrec_repository(root, SASRecArtifact.load(sasrec_dir))
    mix = request_mix(root, context.seed)
    figures: Figures = {"indexed_clusters": read_manifest(ann_dir)["counts"]["indexed_clusters"]}
    with TritonServer(repository, host=HOST, log_path=root / "tritonserver.log") as triton:
        base = ["--sasrec", str(sasrec_dir), "--tree", str(tree_dir)]
        base += ["--triton-url", triton.grpc_url, "--log-level", "WARNING"]
        for prefix, args in (("", [*base, "--ann", str(ann_dir)]), ("exact_", base)):
            service, load_seconds = started_service("retriever", args, root / f"retriever{prefix}.log", context)
            try:
                assert service.pid is not None
                memory = process_memory_mb(service.pid)
                latency = closed_loop("retrieve", Endpoints(retriever=service.address), mix, context)
            finally:
                service.stop()
            if not prefix:
                figures |= {"seconds": load_seconds, "rss_mb": memory["rss_mb"]}
            figures |= {f"{prefix}{name}": latency[name] for name in ("p50_ms", "p99_ms", "qps", "failed")}
    return figures
