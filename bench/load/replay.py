"""Traffic replay against the Planner, as a ranking stack sends it: what it answers from, and how fast.

The traffic is a fixed set of context items: catalogue items drawn by impressions over the whole catalogue
(the popular head and the long tail), plus fresh uploads that nobody has seen, each sent with its frames and
title in ``context_content``. The replay sends it in *passes*: every pass requests every traffic item once,
plus extra impression-weighted draws, in a shuffled order, from a closed loop (``concurrency`` workers) with a
fixed deadline per call. After two passes every item has been requested at least twice; warm-up ends at the
first interval boundary after that at which the Planner's nearline queue is empty (read from its Prometheus
endpoint), and the CACHE share is measured over everything sent after it.
"""

from __future__ import annotations

import asyncio
import io
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np
from PIL import Image

from bench.load.calls import status_name
from bench.load.collector import collector_paused
from bench.load.mix import RequestMix
from bench.load.stats import percentile
from bench.load.targets import CHANNEL_OPTIONS
from serendip.v1 import common_pb2, planner_pb2

SOURCES = {planner_pb2.PLAN_SOURCE_CACHE: "CACHE", planner_pb2.PLAN_SOURCE_LIVE: "LIVE"}
SOURCES[planner_pb2.PLAN_SOURCE_FALLBACK] = "FALLBACK"
OUTCOMES = ("CACHE", "LIVE", "FALLBACK")
PLAN_METHOD = "/serendip.v1.Planner/Plan"


def jpeg(frame: np.ndarray) -> bytes:
    """One RGB frame as JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@dataclass(frozen=True)
class Upload:
    """A fresh upload: an id nobody has seen, its frames and its title."""

    item_id: str
    content: common_pb2.VideoContent


def uploads_from_frames(frames: Sequence[np.ndarray], titles: Sequence[str], prefix: str = "upload") -> list[Upload]:
    """Fresh uploads built from real frames ([N, H, W, 3] uint8 each) and titles."""
    return [
        Upload(f"{prefix}-{index:05d}", common_pb2.VideoContent(frames_jpeg=[jpeg(f) for f in clip], title=title))
        for index, (clip, title) in enumerate(zip(frames, titles, strict=True))
    ]


@dataclass(frozen=True)
class ReplayTraffic:
    """The traffic set and how one pass requests it."""

    catalogue_items: list[str]
    uploads: list[Upload]
    extra_per_pass: int
    """Impression-weighted draws added to each pass on top of one request per traffic item."""

    @property
    def distinct_items(self) -> int:
        """Context items the traffic requests."""
        return len(self.catalogue_items) + len(self.uploads)


def replay_traffic(mix: RequestMix, items: int, uploads: list[Upload], extra_per_pass: int) -> ReplayTraffic:
    """``items`` distinct catalogue items drawn by impressions (without replacement) plus ``uploads``."""
    count = min(items, len(mix.item_ids))
    chosen = mix.rng.choice(len(mix.item_ids), size=count, replace=False, p=mix.weights)
    return ReplayTraffic([str(mix.item_ids[i]) for i in chosen], uploads, extra_per_pass)


def one_pass(traffic: ReplayTraffic, mix: RequestMix, num_clusters: int = 3) -> list[tuple[str, bytes]]:
    """Every traffic item once plus ``extra_per_pass`` impression-weighted catalogue draws, shuffled, as
    (context item id, serialised PlanRequest): the load generator spends its time sending, not encoding."""
    requests = []
    in_traffic = set(traffic.catalogue_items)
    draws = mix.context_items(traffic.extra_per_pass * 3)
    extra = [item for item in draws if item in in_traffic][: traffic.extra_per_pass]
    for item_id in [*traffic.catalogue_items, *extra]:
        requests.append(
            planner_pb2.PlanRequest(
                context_item=common_pb2.ItemRef(item_id=item_id),
                recent_history=mix.history(mix.session()),
                num_clusters=num_clusters,
            )
        )
    for upload in traffic.uploads:
        requests.append(
            planner_pb2.PlanRequest(
                context_item=common_pb2.ItemRef(item_id=upload.item_id),
                context_content=upload.content,
                num_clusters=num_clusters,
            )
        )
    order = mix.rng.permutation(len(requests))
    return [(requests[i].context_item.item_id, requests[i].SerializeToString()) for i in order]


def prometheus_gauge(url: str, name: str) -> float | None:
    """The value of an unlabelled gauge on a Prometheus text endpoint (None when absent or unreachable)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@dataclass
class Sent:
    """One request of the replay: when it was sent, what came back, how long it took."""

    at_s: float
    outcome: str
    latency_ms: float
    pass_index: int
    item_id: str = ""


@dataclass
class ReplayResult:
    """Every request's outcome and the warm-up boundary."""

    sent: list[Sent]
    seconds: float
    warmup_end_s: float | None
    interval_s: float
    queue_depths: list[tuple[float, float]] = field(default_factory=list)

    def after_warmup(self) -> list[Sent]:
        """Requests sent after warm-up (none when warm-up never ended)."""
        return [s for s in self.sent if self.warmup_end_s is not None and s.at_s >= self.warmup_end_s]

    @staticmethod
    def shares(sent: Sequence[Sent]) -> dict[str, float]:
        """Share of each source (and of errors, by code) among ``sent``."""
        counts = Counter(s.outcome for s in sent)
        return {outcome: count / max(len(sent), 1) for outcome, count in sorted(counts.items())}

    def intervals(self) -> list[dict[str, float]]:
        """Per interval: start second, requests, and the share of each source."""
        rows = []
        edges = np.arange(0.0, self.seconds + self.interval_s, self.interval_s)
        for start in edges[:-1]:
            inside = [s for s in self.sent if start <= s.at_s < start + self.interval_s]
            if inside:
                rows.append({"start_s": float(start), "requests": len(inside), **self.shares(inside)})
        return rows

    def summary(self) -> dict[str, object]:
        """JSON-ready figures."""
        latencies = [s.latency_ms for s in self.sent]
        after = self.after_warmup()
        errors = Counter(s.outcome for s in self.sent if s.outcome not in OUTCOMES)
        return {
            "requests": len(self.sent),
            "seconds": round(self.seconds, 2),
            "qps": round(len(self.sent) / max(self.seconds, 1e-9), 1),
            "p50_ms": round(percentile(latencies, 50), 3) if latencies else None,
            "p99_ms": round(percentile(latencies, 99), 3) if latencies else None,
            "errors": dict(errors),
            "warmup_end_s": self.warmup_end_s,
            "requests_after_warmup": len(after),
            "shares_overall": self.shares(self.sent),
            "shares_after_warmup": self.shares(after) if after else None,
            "cache_share_after_warmup": self.shares(after).get("CACHE") if after else None,
        }


async def run_replay(
    address: str,
    passes: Iterator[list[tuple[str, bytes]]],
    *,
    distinct_items: int,
    concurrency: int = 8,
    deadline_s: float = 0.05,
    max_seconds: float = 300.0,
    passes_after_warmup: int = 2,
    interval_s: float = 2.0,
    queue_depth: Callable[[], float | None] | None = None,
) -> ReplayResult:
    """Send ``passes`` until ``passes_after_warmup`` whole passes were sent after warm-up, or ``max_seconds``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent: list[Sent] = []
    queue_depths: list[tuple[float, float]] = []
    warmup_end: float | None = None
    pass_index = 0
    pending: list[tuple[str, bytes]] = []
    requested: Counter[str] = Counter()
    passes_since_warmup = -1

    def next_request() -> tuple[tuple[str, bytes], int] | None:
        nonlocal pending, pass_index, passes_since_warmup
        if loop.time() - started > max_seconds:
            return None
        if not pending:
            if warmup_end is not None:
                passes_since_warmup += 1
                if passes_since_warmup >= passes_after_warmup:
                    return None
            pending = list(next(passes))
            pass_index += 1
        return pending.pop(), pass_index

    async def worker(send: grpc.aio.UnaryUnaryMultiCallable) -> None:
        while (nxt := next_request()) is not None:
            (item_id, request), index = nxt
            requested[item_id] += 1
            at = loop.time()
            try:
                response = planner_pb2.PlanResponse.FromString(await send(request, timeout=deadline_s))
                outcome = SOURCES.get(response.source, "UNSPECIFIED")
            except grpc.RpcError as error:
                outcome = status_name(error)
            sent.append(Sent(at - started, outcome, (loop.time() - at) * 1000.0, index, item_id))

    async def watch_warmup() -> None:
        nonlocal warmup_end
        while warmup_end is None:
            await asyncio.sleep(interval_s)
            depth = queue_depth() if queue_depth is not None else 0.0
            now = loop.time() - started
            queue_depths.append((now, depth if depth is not None else float("nan")))
            twice = len(requested) >= distinct_items and min(requested.values()) >= 2
            if twice and depth == 0:
                warmup_end = now

    with collector_paused():
        async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
            send = channel.unary_unary(PLAN_METHOD)
            watcher = asyncio.ensure_future(watch_warmup())
            try:
                await asyncio.gather(*(worker(send) for _ in range(concurrency)))
            finally:
                watcher.cancel()
    return ReplayResult(sent, loop.time() - started, warmup_end, interval_s, queue_depths)


def plot_hit_ratio(result: ReplayResult, path: str, title: str) -> None:
    """Share of CACHE / LIVE / FALLBACK answers per interval over the replay, warm-up end marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.intervals()
    figure, axis = plt.subplots(figsize=(9, 4.2))
    starts = [row["start_s"] for row in rows]
    for outcome, style in (("CACHE", "-"), ("FALLBACK", "--"), ("LIVE", ":")):
        axis.plot(starts, [row.get(outcome, 0.0) for row in rows], style, label=outcome, linewidth=2)
    if result.warmup_end_s is not None:
        axis.axvline(result.warmup_end_s, color="grey", linewidth=1)
        axis.annotate("warm-up ends", (result.warmup_end_s, 0.5), rotation=90, va="center", ha="right", color="grey")
    axis.set_xlabel(f"seconds into the replay ({result.interval_s:.0f} s intervals)")
    axis.set_ylabel("share of Plan answers")
    axis.set_ylim(-0.02, 1.02)
    axis.set_title(title)
    axis.legend(loc="center left")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
