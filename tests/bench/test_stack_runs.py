"""Short load, fuzz and Triton-kill runs against the real stack (tritonserver, Retriever, Planner processes).

Tests run in file order; the Triton kill comes last because it restarts the shared tritonserver.
"""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from bench import loadtest
from bench.load.closed_loop import run_closed_loop
from bench.load.mix import RequestMix
from bench.load.open_loop import run_open_loop
from bench.load.targets import grpc_payloads, target_call
from bench.reliability.chaos import run_triton_kill
from bench.reliability.fuzz import ALLOWED_CODES, UNDECODABLE_KINDS, CaseGenerator, FuzzVocabulary, run_fuzz
from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc


@pytest.fixture(scope="module")
def mix(small_artifacts) -> RequestMix:
    """Request mix of the test-size artifacts."""
    return RequestMix.from_artifacts(small_artifacts, seed=1)


@pytest.fixture(scope="module")
def vocabulary(stack, mix) -> FuzzVocabulary:
    """Cached items (CACHE path) and planning-level clusters."""
    _running, cached = stack
    return FuzzVocabulary(sorted(cached), mix.tree.nodes_at(mix.level))


def test_a_few_seconds_of_load_on_every_target(stack, mix, small_artifacts) -> None:
    running, cached = stack
    cached_mix = mix.restricted_to(cached)

    async def load() -> dict[str, object]:
        steps = {}
        for target in ("plan", "recommend", "retrieve", "triton:seqrec"):
            target_mix = cached_mix if target in ("plan", "recommend") else mix
            async with target_call(target, running.endpoints, target_mix) as call:
                steps[f"{target}/closed"] = await run_closed_loop(
                    call, concurrency=4, duration_s=1.0, warmup_s=0.2, deadline_s=2.0, target=target
                )
                steps[f"{target}/open"] = await run_open_loop(
                    call, rate_qps=20, duration_s=1.0, warmup_s=0.2, deadline_s=2.0, target=target
                )
        return steps

    for name, step in asyncio.run(load()).items():
        assert step.failed == 0 and step.overflow == 0, (name, step.summary())
        assert step.succeeded > 0, name
        if step.mode == "open":
            assert step.succeeded == step.scheduled == 20, name


def test_plan_under_load_answers_from_the_cache(stack, mix) -> None:
    running, cached = stack
    payloads = grpc_payloads("plan", mix.restricted_to(cached), 32)

    async def answers() -> list[planner_pb2.PlanResponse]:
        async with grpc.aio.insecure_channel(running.endpoints.planner) as channel:
            plan = channel.unary_unary(
                "/serendip.v1.Planner/Plan", response_deserializer=planner_pb2.PlanResponse.FromString
            )
            return await asyncio.gather(*(plan(payload, timeout=5) for payload in payloads))

    responses = asyncio.run(answers())
    assert {response.source for response in responses} == {planner_pb2.PLAN_SOURCE_CACHE}
    for payload, response in zip(payloads, responses, strict=True):
        context_item = planner_pb2.PlanRequest.FromString(payload).context_item.item_id
        planned = [cluster.cluster.cluster_id for cluster in response.clusters]
        assert planned and set(planned) <= set(mix.candidate_clusters(context_item))  # serendipitous siblings


def test_loadtest_cli_sweep_writes_json_csv_png(stack, small_artifacts, tmp_path) -> None:
    running, _cached = stack
    endpoints = running.endpoints
    figures = loadtest.main(
        ["--artifacts", str(small_artifacts), "--retriever", endpoints.retriever, "--triton", endpoints.triton]
        + ["--target", "retrieve", "--target", "triton:seqrec", "--mode", "sweep", "--concurrencies", "1,2"]
        + ["--duration-s", "0.5", "--warmup-s", "0.1", "--slo-p99-ms", "10000", "--output-dir", str(tmp_path)]
    )
    document = json.loads((tmp_path / "results.json").read_text())
    assert [(s["target"], s["concurrency"]) for s in document["steps"]] == [
        ("retrieve", 1),
        ("retrieve", 2),
        ("triton:seqrec", 1),
        ("triton:seqrec", 2),
    ]
    assert all(s["failed"] == 0 and s["succeeded"] > 0 for s in document["steps"])
    assert document["per_target"]["retrieve"]["best_under_slo"]["qps"] > 0
    assert document["request_mix"]["held_out_sessions"] > 0 and figures["steps"] == document["steps"]
    assert (tmp_path / "steps.csv").read_text().count("\n") == 5
    assert (tmp_path / "latency_vs_throughput.png").stat().st_size > 10_000


def test_fuzz_answers_only_client_error_codes_and_servers_survive(stack, vocabulary) -> None:
    running, _cached = stack
    report = asyncio.run(run_fuzz(running.endpoints, vocabulary, requests=2000, seed=7))
    summary = report.summary()
    assert report.requests >= 2000
    assert report.forbidden_count == 0, summary["forbidden_examples"]
    assert set(summary["codes"]) <= ALLOWED_CODES
    assert {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED"} <= set(summary["codes"])
    assert set(summary["codes_by_kind"]) == {kind for kind, _ in CaseGenerator(vocabulary).kinds} | {"oversize"}
    assert (
        report.alive_after and running.processes["planner"].is_running() and running.processes["retriever"].is_running()
    )


def test_undecodable_requests_are_invalid_argument(stack, vocabulary) -> None:
    # Regression: gRPC's own deserializer used to answer these UNKNOWN, naming the DecodeError class.
    running, _cached = stack
    report = asyncio.run(run_fuzz(running.endpoints, vocabulary, requests=60, seed=3, kinds=sorted(UNDECODABLE_KINDS)))
    assert set(report.summary()["codes"]) == {"INVALID_ARGUMENT"}


def test_recommend_with_the_documented_maximum_of_exclusions(stack) -> None:
    # Regression: the context item made it 10,001 exclusions, the Retriever refused, the Planner said UNAVAILABLE.
    running, cached = stack
    request = planner_pb2.RecommendRequest(
        context_item=common_pb2.ItemRef(item_id=sorted(cached)[0]),
        num_items=3,
        exclude_item_ids=[f"x{i}" for i in range(10_000)],
    )
    with grpc.insecure_channel(running.endpoints.planner) as channel:
        response = planner_pb2_grpc.PlannerStub(channel).Recommend(request, timeout=10)
    assert response.items


@pytest.mark.slow  # 16 s; Triton down and back is covered for each service in make test
def test_triton_killed_under_load(stack, mix) -> None:
    running, cached = stack
    uncached = mix.restricted_to(set(mix.item_ids.tolist()) - cached)
    report = asyncio.run(
        run_triton_kill(
            running,
            grpc_payloads("plan", uncached, 8),
            grpc_payloads("retrieve", mix, 64),
            plan_rate_qps=4.0,
            retrieve_rate_qps=30.0,
            before_s=2.0,
            down_s=2.0,
            recovered_s=2.0,
        )
    )
    summary = report.summary()
    assert report.checks() == {
        "planner_error_rate_zero": True,
        "planner_fallback_while_down": True,
        "retriever_unavailable_while_down": True,
        "retriever_recovered": True,
    }, summary
    assert report.count("plan", ["down"]) >= 4 and report.count("retrieve", ["down"], ["UNAVAILABLE"]) >= 30
