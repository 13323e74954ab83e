"""Triton killed under load: the Planner keeps answering (FALLBACK), the Retriever fails fast, both recover.

Open-loop Plan traffic on items without a cached plan (so every request needs the MLLM) and Retrieve traffic
run while tritonserver is SIGKILLed, left down, restarted on the same port, and given time to be used again.
Every answer is recorded with the phase it was sent in:

  before      Triton up
  down        Triton killed, not restarted yet
  restarting  tritonserver starting and loading its models
  recovering  Triton ready, the Retriever has not answered OK yet
  recovered   after the Retriever's first OK since the restart
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from bench.load.calls import Call, status_name
from bench.load.open_loop import run_open_loop
from bench.load.stack import LocalStack
from bench.load.stats import OK, percentile
from bench.load.targets import CHANNEL_OPTIONS, GRPC_TARGETS
from serendip.v1 import planner_pb2

SOURCE_NAMES = {value: name.removeprefix("PLAN_SOURCE_") for name, value in planner_pb2.PlanSource.items()}
PHASES = ("before", "down", "restarting", "recovering", "recovered")


@dataclass
class ChaosReport:
    """Answers per RPC, phase and status (Plan OKs by source), latencies of failures, recovery time."""

    outcomes: dict[str, dict[str, Counter[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Counter))
    )
    failure_latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    restart_s: float = 0.0
    recovery_s: float | None = None

    def count(self, rpc: str, phases: Sequence[str] = PHASES, statuses: Sequence[str] | None = None) -> int:
        """Answers of ``rpc`` sent in ``phases`` whose status (or Plan source) is in ``statuses`` (all when None)."""
        return sum(
            n
            for phase in phases
            for status, n in self.outcomes[rpc][phase].items()
            if statuses is None or status in statuses
        )

    @property
    def planner_errors(self) -> int:
        """Plan answers that were not OK (any phase)."""
        return sum(
            n for phase in PHASES for status, n in self.outcomes["plan"][phase].items() if not status.startswith("OK")
        )

    def checks(self) -> dict[str, bool]:
        """The pass/fail criteria, by name."""
        down_retrieve = self.outcomes["retrieve"]["down"]
        return {
            "planner_error_rate_zero": self.planner_errors == 0 and self.count("plan") > 0,
            "planner_fallback_while_down": self.count("plan", ["down"]) > 0
            and self.count("plan", ["down"], ["OK/FALLBACK"]) == self.count("plan", ["down"]),
            "retriever_unavailable_while_down": down_retrieve["UNAVAILABLE"] > 0
            and set(down_retrieve) <= {"UNAVAILABLE"},
            "retriever_recovered": self.recovery_s is not None
            and self.count("retrieve", ["recovered"]) > 0
            and self.count("retrieve", ["recovered"], [OK]) == self.count("retrieve", ["recovered"]),
        }

    @property
    def passed(self) -> bool:
        """Every check holds."""
        return all(self.checks().values())

    def summary(self) -> dict[str, object]:
        """JSON-ready report."""
        unavailable = self.failure_latencies_ms["retrieve/down"]
        return {
            "outcomes": {rpc: {p: dict(c) for p, c in phases.items()} for rpc, phases in self.outcomes.items()},
            "retriever_unavailable_while_down_p50_ms": round(percentile(unavailable, 50), 3) if unavailable else None,
            "retriever_unavailable_while_down_max_ms": round(max(unavailable), 3) if unavailable else None,
            "triton_restart_s": round(self.restart_s, 2),
            "retriever_recovery_after_ready_s": None if self.recovery_s is None else round(self.recovery_s, 2),
            "checks": self.checks(),
            "passed": self.passed,
        }


async def run_triton_kill(
    stack: LocalStack,
    plan_payloads: Sequence[bytes],
    retrieve_payloads: Sequence[bytes],
    *,
    plan_rate_qps: float = 5.0,
    retrieve_rate_qps: float = 50.0,
    before_s: float = 3.0,
    down_s: float = 3.0,
    recovered_s: float = 3.0,
    recovery_timeout_s: float = 60.0,
    deadline_s: float = 2.0,
) -> ChaosReport:
    """Kill Triton under Plan + Retrieve load, restart it, and record every answer by phase."""
    loop = asyncio.get_running_loop()
    report = ChaosReport()
    phase = "before"
    first_ok_after_ready = asyncio.Event()
    stop = asyncio.Event()

    def recorder(rpc: str, send: grpc.aio.UnaryUnaryMultiCallable, payloads: Sequence[bytes]) -> Call:
        pool = itertools.cycle(payloads)

        async def call(timeout_s: float) -> object:
            sent_in, started = phase, loop.time()
            try:
                answer = await send(next(pool), timeout=timeout_s)
            except grpc.RpcError as error:
                status = status_name(error)
                report.outcomes[rpc][sent_in][status] += 1
                report.failure_latencies_ms[f"{rpc}/{sent_in}"].append((loop.time() - started) * 1000.0)
                raise
            if rpc == "plan":
                source = SOURCE_NAMES[planner_pb2.PlanResponse.FromString(answer).source]
                report.outcomes[rpc][sent_in][f"OK/{source}"] += 1
            else:
                report.outcomes[rpc][sent_in][OK] += 1
                if sent_in == "recovering":
                    first_ok_after_ready.set()
            return answer

        return call

    endpoints = stack.endpoints
    async with (
        grpc.aio.insecure_channel(endpoints.planner, options=CHANNEL_OPTIONS) as planner_channel,
        grpc.aio.insecure_channel(endpoints.retriever, options=CHANNEL_OPTIONS) as retriever_channel,
    ):
        plan = recorder("plan", planner_channel.unary_unary(GRPC_TARGETS["plan"]), plan_payloads)
        retrieve = recorder("retrieve", retriever_channel.unary_unary(GRPC_TARGETS["retrieve"]), retrieve_payloads)
        bound_s = before_s + down_s + stack.triton.startup_timeout_s + recovery_timeout_s + recovered_s
        loads = [
            asyncio.create_task(
                run_open_loop(call, rate_qps=rate, duration_s=bound_s, warmup_s=0.0, deadline_s=deadline_s, stop=stop)
            )
            for call, rate in ((plan, plan_rate_qps), (retrieve, retrieve_rate_qps))
        ]
        try:
            await asyncio.sleep(before_s)
            phase = "down"
            await asyncio.to_thread(stack.kill_triton)
            await asyncio.sleep(down_s)
            phase = "restarting"
            restart_started = loop.time()
            await asyncio.to_thread(stack.restart_triton)
            ready_at = loop.time()
            report.restart_s = ready_at - restart_started
            phase = "recovering"
            try:
                await asyncio.wait_for(first_ok_after_ready.wait(), recovery_timeout_s)
                report.recovery_s = loop.time() - ready_at
                phase = "recovered"
                await asyncio.sleep(recovered_s)
            except TimeoutError:
                pass
        finally:
            stop.set()
            await asyncio.gather(*loads)
    return report
