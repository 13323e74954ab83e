"""Request mix, fuzz wire encoding, loopback guard and report files, on hand-made inputs."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from google.protobuf.message import DecodeError
from PIL import Image

from bench.load.mix import HeldOutEvent, held_out_sessions
from bench.load.report import write_report
from bench.load.stats import StepResult
from bench.load.targets import Endpoints, require_loopback
from bench.reliability.fuzz import UNDECODABLE_KINDS, CaseGenerator, FuzzVocabulary, length_delimited, varint
from bench.run import SECTION_BEGIN, SECTION_END, write_markdown
from serendip.v1 import planner_pb2, retriever_pb2


def test_held_out_session_is_each_users_last_session() -> None:
    interactions = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u1", "u2", "u2"],
            "item_id": ["a", "b", "c", "d", "e", "f"],
            "ts": pd.to_datetime([3, 1, 5, 6, 2, 1], unit="s", utc=True),
            "satisfaction": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            "session_id": ["s1", "s1", "s2", "s2", "s3", "s3"],
        }
    )
    sessions = held_out_sessions(interactions)
    assert sessions == [
        [HeldOutEvent("c", 5000, 0.3), HeldOutEvent("d", 6000, 0.4)],  # s2 started after s1
        [HeldOutEvent("f", 1000, 0.6), HeldOutEvent("e", 2000, 0.5)],  # oldest first
    ]
    assert [len(s) for s in held_out_sessions(interactions, max_events=1)] == [1, 1]
    assert held_out_sessions(interactions, max_events=1)[0] == [HeldOutEvent("d", 6000, 0.4)]


def test_without_sessions_the_last_interactions_stand_in() -> None:
    interactions = pd.DataFrame(
        {
            "user_id": ["u1"] * 12,
            "item_id": [f"i{n}" for n in range(12)],
            "ts": pd.to_datetime(range(12), unit="s", utc=True),
            "satisfaction": [1.0] * 12,
        }
    )
    (session,) = held_out_sessions(interactions)
    assert [event.item_id for event in session] == [f"i{n}" for n in range(2, 12)]


def test_context_items_follow_impressions(tiny_mix) -> None:
    draws = Counter(tiny_mix.context_item() for _ in range(2000))
    # Impressions 1 : 1 : 98 -> the popular item is drawn ~1960 times; 1800 is > 10 sigma below that.
    assert draws["v2"] > 1800 and set(draws) <= {"v0", "v1", "v2"}
    restricted = tiny_mix.restricted_to({"v0"})
    assert {restricted.context_item() for _ in range(50)} == {"v0"}
    with pytest.raises(ValueError):
        tiny_mix.restricted_to({"unknown"})


def test_requests_from_the_mix(tiny_mix) -> None:
    plan = tiny_mix.plan_request()
    assert plan.context_item.item_id in {"v0", "v1", "v2"} and plan.recent_history.events
    retrieve = tiny_mix.retrieve_request(k=10)
    assert list(retrieve.cluster_ids) == tiny_mix.candidate_clusters(retrieve.exclude_item_ids[0])[:3]
    assert retrieve.per_cluster_quota * len(retrieve.cluster_ids) >= 10
    history = tiny_mix.seqrec_history()
    assert history.shape == (1, 4) and history.dtype.name == "int64" and history[0, 0] == 0  # left-padded


def test_wire_helpers_encode_protobuf() -> None:
    assert varint(1) == b"\x01" and varint(300) == b"\xac\x02" and len(varint(-1)) == 10
    payload = length_delimited(1, length_delimited(1, b"v0001")) + varint(4 << 3) + varint(7)
    request = planner_pb2.PlanRequest.FromString(payload)
    assert request.context_item.item_id == "v0001" and request.num_clusters == 7


def test_undecodable_cases_really_are_undecodable() -> None:
    generator = CaseGenerator(FuzzVocabulary(["v0001"], ["c3-0"]), seed=3)
    parsers = {
        "plan": planner_pb2.PlanRequest,
        "recommend": planner_pb2.RecommendRequest,
        "retrieve": retriever_pb2.RetrieveRequest,
    }
    undecodable = decodable = 0
    for _ in range(300):
        case = generator.next_case(sorted(UNDECODABLE_KINDS))
        try:
            parsers[case.target].FromString(case.payload)
            decodable += 1  # e.g. random bytes that happen to parse
        except DecodeError:
            undecodable += 1
    assert undecodable > 250
    invalid_utf8 = [generator.next_case(["invalid_utf8"]) for _ in range(50)]
    for case in invalid_utf8:
        with pytest.raises(DecodeError):
            parsers[case.target].FromString(case.payload)


def test_every_fuzz_kind_is_generated_with_a_seed() -> None:
    first = [CaseGenerator(FuzzVocabulary(["v1", "v2"], ["c1"]), seed=5).next_case() for _ in range(3)]
    again = [CaseGenerator(FuzzVocabulary(["v1", "v2"], ["c1"]), seed=5).next_case() for _ in range(3)]
    assert first == again
    generator = CaseGenerator(FuzzVocabulary(["v1", "v2"], ["c1"]), seed=1)
    kinds = {generator.next_case().kind for _ in range(400)}
    assert kinds == {kind for kind, _ in generator.kinds}


@pytest.mark.parametrize("address", ["127.0.0.1:50061", "localhost:1", "[::1]:8001", "127.1.2.3:9"])
def test_loopback_addresses_are_accepted(address: str) -> None:
    assert require_loopback(address) == address


@pytest.mark.parametrize("address", ["10.0.0.5:50061", "example.com:443", "0.0.0.0:8001", "[2001:db8::1]:1"])
def test_other_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        require_loopback(address)
    with pytest.raises(ValueError, match="loopback"):
        Endpoints(planner=address).for_target("plan")


def test_unknown_or_unconfigured_targets_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown target"):
        Endpoints(planner="127.0.0.1:1").for_target("plans")
    with pytest.raises(ValueError, match="no address"):
        Endpoints(planner="127.0.0.1:1").for_target("retrieve")


def test_report_files(tmp_path: Path) -> None:
    steps = [
        StepResult("plan", "closed", 1.0, [1.0, 2.0, 3.0], concurrency=1, scheduled=3),
        StepResult("plan", "closed", 1.0, [2.0, 4.0], Counter({"UNAVAILABLE": 2}), concurrency=2, scheduled=4),
        StepResult("retrieve", "open", 2.0, [5.0] * 10, offered_qps=5.0, scheduled=10, overflow=1),
    ]
    paths = write_report(tmp_path, steps, {"mode": "sweep"}, {"per_target": {}}, slo_p99_ms=3.0)
    document = json.loads(paths["json"].read_text())
    assert document["mode"] == "sweep" and [s["qps"] for s in document["steps"]] == [3.0, 2.0, 5.0]
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [row["errors"] for row in rows] == ["", "UNAVAILABLE=2", ""] and rows[2]["overflow"] == "1"
    with Image.open(paths["png"]) as image:
        assert image.width > 600 and image.height > 300


def test_markdown_section_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    results = {
        "date": "2026-01-01T00:00:00Z",
        "machine": {
            "cpu": "cpu",
            "cores": 2,
            "load_average_1m": 1.0,
            "python": "3.11",
            "grpcio": "1",
            "tritonclient": "2",
            "tritonserver (nvidia-pytriton)": "0.7",
        },
        "artifacts": "a",
        "concurrency": 8,
        "duration_s": 1.0,
        "rounds": 1,
        "mllm_duration_s": 1.0,
        "ratios": {"planner_cached_vs_raw_grpc_echo_qps": 0.7},
        "goals": {"planner_cached_vs_raw_grpc_echo_qps": 0.6},
        "steps": {},
        "ray_jobs": None,
    }
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Ray jobs\n\nkept\n")
    write_markdown(results, path)
    write_markdown({**results, "ratios": {"planner_cached_vs_raw_grpc_echo_qps": 0.5}}, path)
    text = path.read_text()
    assert text.count(SECTION_BEGIN) == 1 and text.count(SECTION_END) == 1 and "kept" in text
    assert "| planner_cached_vs_raw_grpc_echo_qps | 0.5 | ≥ 0.6 | no |" in text
