"""The one way to start the serving stack: tritonserver, the Retriever and the Planner, on loopback.

Everything reads one :class:`ServingBundle` (``serendip.artifacts.lineage``), so Triton's models, the
Retriever's item table, the Planner's clusters and its plan table all come from one lineage. The gRPC
services run either on event loops in this process (``services_in="threads"``: ``make serve``, the demo,
evaluation, tests) or as their own processes (``"processes"``: load tests, so that a load generator never
shares a GIL with a server). ``make serve``, ``make demo``, ``make eval``, the benchmarks and the tests all
start the stack through this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Literal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from planner.loading import load_planner
from planner.planning import Planner, PlannerSettings
from planner.service import PlannerServicer, planner_binding
from retriever.loading import load_retrieval_model
from retriever.service import RetrieverServicer, retriever_binding
from serendip.artifacts.lineage import ServingBundle
from serendip.service.background import BackgroundService
from serendip.service.server import DEFAULT_HOST, GrpcService
from triton_models.launcher import TritonServer, free_port

SERVING = health_pb2.HealthCheckResponse.SERVING
ServicesIn = Literal["threads", "processes"]


class ServiceProcess:
    """``python -m <module> <args> --host H --port P``, its log in ``log_path``; ready once health is SERVING."""

    def __init__(
        self,
        module: str,
        args: list[str],
        log_path: Path,
        host: str = DEFAULT_HOST,
        port: int = 0,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.module = module
        self.args = args
        self.log_path = log_path
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    def start(self) -> str:
        """Launch and wait until grpc.health.v1 answers SERVING; returns the address."""
        command = [sys.executable, "-m", self.module, *self.args, "--host", self.host, "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout_s
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"{self.module} exited with {self._process.returncode}; log {self.log_path}")
                with contextlib.suppress(grpc.RpcError):
                    if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == SERVING:
                        return self.address
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.module} not serving after {self.startup_timeout_s:.0f} s; log {self.log_path}")

    @property
    def pid(self) -> int | None:
        """The process id while started."""
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL (a crash, not a graceful stop), then reap."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (graceful), then SIGKILL after ``timeout_s``. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class ServingStack:
    """tritonserver on the bundle's repository, then the Retriever and the Planner wired to it and to each other.

    A context manager: everything started is stopped on exit, and a failure while starting stops what had
    started. ``plans_root`` replaces the bundle's plans directory (a scratch plan table in benchmarks);
    ``plans=False`` serves without one. With ``nearline`` (the default) every miss is planned in the background
    into the MLLM's overlay plan table under the bundle's root (or ``overlay_root``); without it a miss is LIVE or
    FALLBACK each time.
    ``live_max_in_flight`` bounds the Planner's concurrent LIVE runs (an evaluation that wants every plan LIVE
    sets it to its own concurrency); ``recent_window`` is the Planner's (``PlannerSettings.recent_window``).
    """

    def __init__(
        self,
        bundle: ServingBundle,
        *,
        host: str = DEFAULT_HOST,
        planner_port: int = 0,
        retriever_port: int = 0,
        triton_port: int = 0,
        services_in: ServicesIn = "threads",
        plans: bool = True,
        plans_root: Path | None = None,
        plans_poll_s: float = 1.0,
        nearline: bool = True,
        overlay_root: Path | None = None,
        live_max_in_flight: int = PlannerSettings.live_max_in_flight,
        recent_window: int | None = None,
        work_dir: Path | None = None,
        log_level: str = "WARNING",
    ) -> None:
        self.bundle = bundle
        self.host = host
        self.ports = (planner_port, retriever_port)
        self.services_in = services_in
        self.plans_root = (plans_root or bundle.plans) if plans else None
        self.plans_poll_s = plans_poll_s
        self.overlay_root = (overlay_root or bundle.root) if nearline else None
        self.live_max_in_flight = live_max_in_flight
        self.recent_window = recent_window
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.log_level = log_level
        triton_log = self.work_dir / "tritonserver.log" if self.work_dir is not None else None
        self.triton = TritonServer(bundle.repository, host=host, grpc_port=triton_port, log_path=triton_log)
        self.planner_address = ""
        self.retriever_address = ""
        self.planner: Planner | None = None
        """The Planner object behind the service (threads only): tests look at its plan table."""
        self.processes: dict[str, ServiceProcess] = {}
        self.planner_metrics_port: int | None = None
        """The Planner's Prometheus port (processes only)."""
        self._resources = ExitStack()

    def start(self) -> ServingStack:
        """Start Triton, the Retriever and the Planner, in that order."""
        with ExitStack() as starting:
            starting.enter_context(self.triton)
            if self.services_in == "threads":
                self._start_threads(starting)
            else:
                self._start_processes(starting)
            self._resources = starting.pop_all()
        return self

    def _start_threads(self, starting: ExitStack) -> None:
        bundle, url = self.bundle, self.triton.grpc_url
        retrieval = load_retrieval_model(bundle.sasrec, bundle.tree, url, ann_path=bundle.ann)
        retriever = GrpcService([retriever_binding(RetrieverServicer(retrieval))], host=self.host, port=self.ports[1])
        self.retriever_address = starting.enter_context(BackgroundService(retriever))
        planner = load_planner(
            bundle.curation,
            self.plans_root,
            bundle.catalogue,
            url,
            self.plans_poll_s,
            mllm_sha256=bundle.mllm_sha256,
            overlay_root=self.overlay_root,
            settings=PlannerSettings(live_max_in_flight=self.live_max_in_flight, recent_window=self.recent_window),
        )
        servicer = PlannerServicer(planner, self.retriever_address)
        service = BackgroundService(GrpcService([planner_binding(servicer)], host=self.host, port=self.ports[0]))
        self.planner_address = starting.enter_context(service)
        for work in planner.background_work():
            starting.callback(service.submit(work).cancel)
        starting.callback(lambda: service.submit(planner.drain()).result(10))  # runs first: write-backs finish
        self.planner = planner

    def _start_processes(self, starting: ExitStack) -> None:
        bundle = self.bundle
        logs = self.work_dir or bundle.root
        logs.mkdir(parents=True, exist_ok=True)
        common = ["--triton-url", self.triton.grpc_url, "--log-level", self.log_level]
        retriever_args = ["--sasrec", str(bundle.sasrec), "--tree", str(bundle.tree), *common]
        if bundle.ann is not None:
            retriever_args += ["--ann", str(bundle.ann)]
        retriever = ServiceProcess("retriever", retriever_args, logs / "retriever.log", self.host, self.ports[1])
        starting.callback(retriever.stop)
        self.retriever_address = retriever.start()
        planner_args = ["--curation", str(bundle.curation), "--mllm", str(bundle.mllm), *common]
        planner_args += ["--retriever", self.retriever_address, "--plans-poll-s", str(self.plans_poll_s)]
        planner_args += ["--live-max-in-flight", str(self.live_max_in_flight)]
        if self.recent_window is not None:
            planner_args += ["--recent-window", str(self.recent_window)]
        self.planner_metrics_port = free_port(self.host)
        planner_args += ["--metrics-port", str(self.planner_metrics_port)]
        if bundle.catalogue is not None:
            planner_args += ["--items", str(bundle.catalogue)]
        if self.plans_root is not None:
            planner_args += ["--plans", str(self.plans_root)]
        if self.overlay_root is not None:
            planner_args += ["--overlay", str(self.overlay_root)]
        planner = ServiceProcess("planner", planner_args, logs / "planner.log", self.host, self.ports[0])
        starting.callback(planner.stop)
        self.planner_address = planner.start()
        self.processes = {"retriever": retriever, "planner": planner}

    @property
    def planner_metrics_url(self) -> str | None:
        """The Planner's Prometheus endpoint (processes only)."""
        port = self.planner_metrics_port
        return f"http://{self.host}:{port}/metrics" if port is not None else None

    @property
    def planner_pid(self) -> int | None:
        """The Planner's process id (processes only)."""
        process = self.processes.get("planner")
        return process.pid if process is not None else None

    def kill_triton(self) -> None:
        """SIGKILL tritonserver's whole process group (a crash, not a graceful stop), then reap it."""
        if self.triton.pid is not None:
            os.killpg(self.triton.pid, signal.SIGKILL)
        self.triton.stop()

    def restart_triton(self) -> None:
        """Start tritonserver again on the same port and wait until every model is ready."""
        self.triton.start()

    def stop(self) -> None:
        """Stop the Planner, the Retriever and Triton (reverse order of start). Idempotent."""
        self._resources.close()

    def __enter__(self) -> ServingStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
