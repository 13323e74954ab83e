"""Fuzzing Plan / Recommend / Retrieve with random and edge-case requests on loopback.

Every answer must be OK, INVALID_ARGUMENT, NOT_FOUND or RESOURCE_EXHAUSTED -- never UNKNOWN, INTERNAL or
anything else -- and both services must still be serving afterwards. Requests protobuf would refuse to build
(invalid UTF-8 in string fields, truncated or mistyped fields) are written as raw wire bytes and sent through
a generic channel method.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from bench.load.calls import status_name
from bench.load.targets import CHANNEL_OPTIONS, GRPC_TARGETS, Endpoints
from serendip.v1 import common_pb2, planner_pb2, retriever_pb2

ALLOWED_CODES = frozenset({"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED"})
SERVER_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
OVERSIZE_REQUESTS = 4
UNDECODABLE_KINDS = frozenset({"invalid_utf8", "malformed_wire"})


@dataclass(frozen=True)
class FuzzCase:
    """One request: which generator made it, the RPC, its wire bytes and a short description."""

    kind: str
    target: str
    payload: bytes
    description: str


@dataclass
class FuzzReport:
    """Answers by case kind and status code, the forbidden ones (first few kept), liveness afterwards."""

    codes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    forbidden: list[dict[str, str]] = field(default_factory=list)
    forbidden_count: int = 0
    alive_after: bool = False

    @property
    def requests(self) -> int:
        """Requests sent."""
        return sum(sum(counts.values()) for counts in self.codes.values())

    @property
    def passed(self) -> bool:
        """No forbidden status and both services alive after."""
        return self.forbidden_count == 0 and self.alive_after

    def summary(self) -> dict[str, object]:
        """JSON-ready report."""
        totals: Counter[str] = Counter()
        for counts in self.codes.values():
            totals.update(counts)
        return {
            "requests": self.requests,
            "codes": dict(sorted(totals.items())),
            "codes_by_kind": {kind: dict(sorted(counts.items())) for kind, counts in sorted(self.codes.items())},
            "forbidden_count": self.forbidden_count,
            "forbidden_examples": self.forbidden,
            "alive_after": self.alive_after,
            "passed": self.passed,
        }


# --- protobuf wire format, for requests protobuf itself would refuse to serialise -------------------------------
def varint(value: int) -> bytes:
    """Base-128 varint (negative numbers as 64-bit two's complement, as protobuf does)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field ``number`` with wire type 2 (string, bytes, sub-message)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


# --- inputs ------------------------------------------------------------------------------------------------------
def jpeg(width: int, height: int, colour: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A plain-colour JPEG image."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


@dataclass(frozen=True)
class FuzzVocabulary:
    """Real ids to mix into requests (known items should hit the CACHE path) and ready-made images."""

    known_items: Sequence[str]
    known_clusters: Sequence[str]
    small_jpeg: bytes = field(default_factory=lambda: jpeg(32, 32))
    other_size_jpeg: bytes = field(default_factory=lambda: jpeg(48, 32))
    over_megapixel_jpeg: bytes = field(default_factory=lambda: jpeg(1200, 1000))


INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"ok\x80", b"\xf8\x88\x80\x80\x80")
EDGE_INTS = (0, 1, -1, 2, 3, 50, 51, 64, 999, 1000, 1001, 2**31 - 1, -(2**31))
EDGE_FLOATS = (0.0, 0.5, 1.0, -0.0, -0.1, 1.5, math.nan, math.inf, -math.inf, 1e38)


class CaseGenerator:
    """Seeded source of fuzz cases over the three RPCs."""

    def __init__(self, vocabulary: FuzzVocabulary, seed: int = 0) -> None:
        self.vocabulary = vocabulary
        self.rng = np.random.default_rng(seed)
        self.kinds: list[tuple[str, Callable[[], FuzzCase]]] = [
            ("empty", self.empty),
            ("random_ids", self.random_ids),
            ("edge_numbers", self.edge_numbers),
            ("history", self.history_case),
            ("lists", self.lists),
            ("recommend_exclude_limit", self.recommend_exclude_limit),
            ("content", self.content),
            ("huge_fields", self.huge_fields),
            ("invalid_utf8", self.invalid_utf8),
            ("malformed_wire", self.malformed_wire),
            ("valid", self.valid),
        ]

    # --- helpers ---
    def _pick(self, values: Sequence):  # noqa: ANN202 - any element type
        return values[int(self.rng.integers(len(values)))]

    def _id(self) -> str:
        choices: list[Callable[[], str]] = [
            lambda: self._pick(self.vocabulary.known_items),
            lambda: self._pick(self.vocabulary.known_clusters),
            lambda: "",
            lambda: " ",
            lambda: f" {self._pick(self.vocabulary.known_items)}",
            lambda: "x" * int(self._pick((255, 256, 257, 4096))),
            lambda: "é" * 129,
            lambda: "\x00",
            lambda: "no-such-id-" + str(int(self.rng.integers(10**6))),
            lambda: "🎬" * int(self.rng.integers(1, 80)),
            lambda: "".join(chr(int(c)) for c in self.rng.integers(1, 0xD7FF, size=int(self.rng.integers(1, 40)))),
        ]
        return self._pick(choices)()

    def _history(self, events: int) -> common_pb2.RecentHistory:
        history = common_pb2.RecentHistory()
        for _ in range(events):
            event = history.events.add(item_id=self._id(), timestamp_ms=int(self._pick(EDGE_INTS)))
            if self.rng.random() < 0.5:
                event.satisfaction = float(self._pick(EDGE_FLOATS))
        return history

    def _case(self, kind: str, target: str, request, description: str) -> FuzzCase:  # noqa: ANN001 - any message
        return FuzzCase(kind, target, request.SerializeToString(), description)

    def _item(self) -> common_pb2.ItemRef:
        return common_pb2.ItemRef(item_id=self._id())

    # --- generators ---
    def empty(self) -> FuzzCase:
        """A request with every field at its default."""
        target = self._pick(("plan", "recommend", "retrieve"))
        return FuzzCase("empty", target, b"", f"empty {target} request")

    def random_ids(self) -> FuzzCase:
        """Random, unknown, whitespace, too-long or exotic ids everywhere."""
        target = self._pick(("plan", "recommend", "retrieve"))
        if target == "plan":
            request = planner_pb2.PlanRequest(context_item=self._item(), recent_history=self._history(2))
        elif target == "recommend":
            request = planner_pb2.RecommendRequest(
                context_item=self._item(), num_items=5, exclude_item_ids=[self._id() for _ in range(3)]
            )
        else:
            request = retriever_pb2.RetrieveRequest(
                history=self._history(3), cluster_ids=[self._id(), self._id()], k=5, context_item=self._item()
            )
        return self._case("random_ids", target, request, "random ids")

    def edge_numbers(self) -> FuzzCase:
        """k, num_items, num_clusters, quota and mode at and beyond their limits (negative, zero, huge)."""
        target = self._pick(("plan", "recommend", "retrieve"))
        item = common_pb2.ItemRef(item_id=self._pick(self.vocabulary.known_items))
        if target == "plan":
            request = planner_pb2.PlanRequest(context_item=item, num_clusters=int(self._pick(EDGE_INTS)))
            description = f"num_clusters={request.num_clusters}"
        elif target == "recommend":
            request = planner_pb2.RecommendRequest(
                context_item=item, num_items=int(self._pick(EDGE_INTS)), num_clusters=int(self._pick(EDGE_INTS))
            )
            description = f"num_items={request.num_items} num_clusters={request.num_clusters}"
        else:
            request = retriever_pb2.RetrieveRequest(
                history=self._history(1),
                cluster_ids=[self._pick(self.vocabulary.known_clusters)],
                k=int(self._pick(EDGE_INTS)),
                per_cluster_quota=int(self._pick(EDGE_INTS)),
                mode=int(self._pick((0, 1, 2, 3, 4, 99, -1))),
                context_item=item,
            )
            description = f"k={request.k} quota={request.per_cluster_quota} mode={request.mode}"
        return self._case("edge_numbers", target, request, description)

    def history_case(self) -> FuzzCase:
        """Histories of 0, 1, 500 or 501 events with edge timestamps and satisfactions (NaN, inf, out of [0, 1])."""
        events = int(self._pick((0, 1, 7, 500, 501)))
        target = self._pick(("plan", "recommend", "retrieve"))
        item = common_pb2.ItemRef(item_id=self._pick(self.vocabulary.known_items))
        history = self._history(events)
        if target == "plan":
            request = planner_pb2.PlanRequest(context_item=item, recent_history=history)
        elif target == "recommend":
            request = planner_pb2.RecommendRequest(context_item=item, recent_history=history, num_items=3)
        else:
            request = retriever_pb2.RetrieveRequest(
                history=history, cluster_ids=[self._pick(self.vocabulary.known_clusters)], k=3
            )
        return self._case("history", target, request, f"history of {events} events")

    def lists(self) -> FuzzCase:
        """Cluster and exclude lists at and over their limits, duplicates, unknown clusters, mode conflicts."""
        clusters = list(self.vocabulary.known_clusters)
        choice = int(self.rng.integers(5))
        if choice == 0:
            ids = [self._pick(clusters)] * 2
            request, description = retriever_pb2.RetrieveRequest(cluster_ids=ids, k=3), "duplicate cluster ids"
        elif choice == 1:
            ids = [f"c-{i}" for i in range(int(self._pick((64, 65))))]
            request, description = retriever_pb2.RetrieveRequest(cluster_ids=ids, k=3), f"{len(ids)} cluster ids"
        elif choice == 2:
            request = retriever_pb2.RetrieveRequest(
                cluster_ids=[self._pick(clusters)], k=3, mode=retriever_pb2.RETRIEVAL_MODE_UNRESTRICTED
            )
            description = "UNRESTRICTED with cluster ids"
        elif choice == 3:
            excluded = int(self._pick((9_999, 10_000, 10_001)))
            request = retriever_pb2.RetrieveRequest(
                cluster_ids=[self._pick(clusters)], k=3, exclude_item_ids=[f"x{i}" for i in range(excluded)]
            )
            description = f"Retrieve excluding {excluded} ids"
        else:
            request = retriever_pb2.RetrieveRequest(
                mode=retriever_pb2.RETRIEVAL_MODE_CONTEXT_SIMILAR, k=3, context_item=self._item()
            )
            description = "CONTEXT_SIMILAR with a random context item"
        return self._case("lists", "retrieve", request, description)

    def recommend_exclude_limit(self) -> FuzzCase:
        """Recommend with 9,999, 10,000 (the documented maximum) or 10,001 excluded ids."""
        excluded = int(self._pick((9_999, 10_000, 10_001)))
        request = planner_pb2.RecommendRequest(
            context_item=common_pb2.ItemRef(item_id=self._pick(self.vocabulary.known_items)),
            num_items=3,
            exclude_item_ids=[f"x{i}" for i in range(excluded)],
        )
        return self._case("recommend_exclude_limit", "recommend", request, f"Recommend excluding {excluded} ids")

    def content(self) -> FuzzCase:
        """context_content: non-JPEG bytes, too many frames, mixed sizes, over 1 MiB or 1 megapixel, long text."""
        vocabulary = self.vocabulary
        choice = int(self.rng.integers(8))
        content = common_pb2.VideoContent(title="fuzz")
        if choice == 0:
            content.thumbnail_jpeg = bytes(
                self.rng.integers(0, 256, size=int(self.rng.integers(1, 512)), dtype=np.uint8)
            )
        elif choice == 1:
            content.frames_jpeg.extend([vocabulary.small_jpeg] * int(self._pick((8, 9, 20))))
        elif choice == 2:
            content.frames_jpeg.extend([vocabulary.small_jpeg, vocabulary.other_size_jpeg])
        elif choice == 3:
            content.thumbnail_jpeg = b"\xff\xd8" + b"\0" * (1024 * 1024)
        elif choice == 4:
            content.thumbnail_jpeg = vocabulary.over_megapixel_jpeg
        elif choice == 5:
            content.title = "t" * int(self._pick((1000, 4000, 4001, 100_000)))
            content.description = "d" * int(self._pick((0, 20_000, 20_001)))
        elif choice == 6:
            content.frames_jpeg.append(vocabulary.small_jpeg[: len(vocabulary.small_jpeg) // 2])
        else:
            content.thumbnail_jpeg = vocabulary.small_jpeg  # valid: unknown item with content goes LIVE/FALLBACK
        item = common_pb2.ItemRef(item_id=self._pick(("fuzz-unknown-item", *vocabulary.known_items[:3])))
        if self.rng.random() < 0.5:
            request = planner_pb2.PlanRequest(context_item=item, context_content=content)
            return self._case("content", "plan", request, f"content variant {choice}")
        request = planner_pb2.RecommendRequest(context_item=item, context_content=content, num_items=3)
        return self._case("content", "recommend", request, f"content variant {choice}")

    def huge_fields(self) -> FuzzCase:
        """Large but legal-size payloads (hundreds of KiB of ids) on every RPC."""
        big_id = "y" * int(self._pick((300, 10_000, 200_000)))
        target = self._pick(("plan", "recommend", "retrieve"))
        if target == "plan":
            request = planner_pb2.PlanRequest(context_item=common_pb2.ItemRef(item_id=big_id))
        elif target == "recommend":
            request = planner_pb2.RecommendRequest(context_item=common_pb2.ItemRef(item_id=big_id), num_items=1)
        else:
            request = retriever_pb2.RetrieveRequest(cluster_ids=[big_id], k=1)
        return self._case("huge_fields", target, request, f"{len(big_id)}-byte id")

    def invalid_utf8(self) -> FuzzCase:
        """Invalid UTF-8 in a string field, written as raw wire bytes (protobuf refuses to build these)."""
        bad = self._pick(INVALID_UTF8)
        choice = int(self.rng.integers(5))
        if choice == 0:
            return FuzzCase(
                "invalid_utf8", "plan", length_delimited(1, length_delimited(1, bad)), "context_item.item_id"
            )
        if choice == 1:
            event = length_delimited(1, length_delimited(1, bad))
            return FuzzCase("invalid_utf8", "plan", length_delimited(3, event), "recent_history.events[0].item_id")
        if choice == 2:
            title = length_delimited(3, bad)
            item = length_delimited(1, length_delimited(1, self._pick(self.vocabulary.known_items).encode()))
            return FuzzCase("invalid_utf8", "plan", item + length_delimited(2, title), "context_content.title")
        if choice == 3:
            return FuzzCase(
                "invalid_utf8", "retrieve", length_delimited(2, bad) + varint(3 << 3) + varint(3), "cluster_ids[0]"
            )
        item = length_delimited(1, length_delimited(1, self._pick(self.vocabulary.known_items).encode()))
        return FuzzCase(
            "invalid_utf8",
            "recommend",
            item + varint(4 << 3) + varint(3) + length_delimited(6, bad),
            "exclude_item_ids[0]",
        )

    def malformed_wire(self) -> FuzzCase:
        """Bytes that are not a valid message: random, truncated, wrong wire type, overlong length."""
        target = self._pick(("plan", "recommend", "retrieve"))
        choice = int(self.rng.integers(4))
        if choice == 0:
            payload = bytes(self.rng.integers(0, 256, size=int(self.rng.integers(1, 64)), dtype=np.uint8))
            description = "random bytes"
        elif choice == 1:
            payload = length_delimited(1, length_delimited(1, b"v0001"))[:-2]
            description = "truncated sub-message"
        elif choice == 2:
            payload = length_delimited(4, b"\x01\x02")  # num_clusters / num_items / k as a length-delimited field
            description = "wrong wire type"
        else:
            payload = varint(1 << 3 | 2) + varint(1_000_000) + b"abc"
            description = "length beyond the end"
        return FuzzCase("malformed_wire", target, payload, description)

    def valid(self) -> FuzzCase:
        """A plausible, valid request (the control group)."""
        item = common_pb2.ItemRef(item_id=self._pick(self.vocabulary.known_items))
        history = common_pb2.RecentHistory(
            events=[common_pb2.HistoryEvent(item_id=self._pick(self.vocabulary.known_items)) for _ in range(3)]
        )
        target = self._pick(("plan", "recommend", "retrieve"))
        if target == "plan":
            request = planner_pb2.PlanRequest(context_item=item, recent_history=history, include_reasoning=True)
        elif target == "recommend":
            request = planner_pb2.RecommendRequest(context_item=item, recent_history=history, num_items=5)
        else:
            request = retriever_pb2.RetrieveRequest(
                history=history, cluster_ids=[self._pick(self.vocabulary.known_clusters)], k=5
            )
        return self._case("valid", target, request, "valid")

    def next_case(self, kinds: Sequence[str] | None = None) -> FuzzCase:
        """A case of a random kind (among ``kinds`` when given)."""
        allowed = [(kind, make) for kind, make in self.kinds if kinds is None or kind in kinds]
        return allowed[int(self.rng.integers(len(allowed)))][1]()

    def oversize_cases(self) -> list[FuzzCase]:
        """Messages above the servers' 16 MiB limit (answered RESOURCE_EXHAUSTED by gRPC itself)."""
        frame = b"\0" * (SERVER_MAX_MESSAGE_BYTES + 1024)
        plan = planner_pb2.PlanRequest(
            context_item=common_pb2.ItemRef(item_id="v"), context_content=common_pb2.VideoContent(thumbnail_jpeg=frame)
        )
        retrieve = retriever_pb2.RetrieveRequest(k=1, cluster_ids=["c" * (SERVER_MAX_MESSAGE_BYTES + 1024)])
        cases = [
            self._case("oversize", "plan", plan, "17 MiB thumbnail"),
            self._case("oversize", "retrieve", retrieve, "17 MiB cluster id"),
        ]
        return list(itertools.islice(itertools.cycle(cases), OVERSIZE_REQUESTS))


async def services_alive(endpoints: Endpoints, timeout_s: float = 5.0) -> bool:
    """True when the Planner and the Retriever both answer grpc.health.v1 SERVING."""
    for address in (endpoints.planner, endpoints.retriever):
        async with grpc.aio.insecure_channel(address) as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout_s
                )
            except grpc.RpcError:
                return False
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                return False
    return True


async def run_fuzz(
    endpoints: Endpoints,
    vocabulary: FuzzVocabulary,
    *,
    requests: int,
    seed: int = 0,
    concurrency: int = 8,
    deadline_s: float = 10.0,
    kinds: Sequence[str] | None = None,
    max_examples: int = 20,
) -> FuzzReport:
    """Send ``requests`` random cases (plus a few oversize ones) and check every answer's status."""
    generator = CaseGenerator(vocabulary, seed)
    cases = [generator.next_case(kinds) for _ in range(requests)]
    if kinds is None or "oversize" in kinds:
        cases += generator.oversize_cases()
    report = FuzzReport()
    seen: set[tuple[str, str, str, str]] = set()  # one example per kind, RPC, request and code
    queue = iter(cases)
    async with (
        grpc.aio.insecure_channel(endpoints.planner, options=CHANNEL_OPTIONS) as planner_channel,
        grpc.aio.insecure_channel(endpoints.retriever, options=CHANNEL_OPTIONS) as retriever_channel,
    ):
        methods = {
            target: (retriever_channel if target == "retrieve" else planner_channel).unary_unary(GRPC_TARGETS[target])
            for target in ("plan", "recommend", "retrieve")
        }

        async def worker() -> None:
            for case in queue:
                try:
                    await methods[case.target](case.payload, timeout=deadline_s)
                    code, details = "OK", ""
                except grpc.RpcError as error:
                    code, details = status_name(error), error.details() or ""  # type: ignore[attr-defined]
                report.codes[case.kind][code] += 1
                if code not in ALLOWED_CODES:
                    report.forbidden_count += 1
                    signature = (case.kind, case.target, case.description, code)
                    if len(report.forbidden) < max_examples and signature not in seen:
                        seen.add(signature)
                        report.forbidden.append(
                            {
                                "kind": case.kind,
                                "rpc": case.target,
                                "request": case.description,
                                "payload_head_hex": case.payload[:48].hex(),
                                "code": code,
                                "details": details[:300],
                            }
                        )

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    report.alive_after = await services_alive(endpoints)
    return report
