"""The system under test on loopback: tritonserver, the Retriever and the Planner as separate processes.

Each service runs in its own process (``python -m retriever`` / ``python -m planner``), as in production, so
the load generator's event loop never shares a GIL with a server. Everything is stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.load.targets import Endpoints
from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.artifacts.plans import PLANS_KIND, PlanTable, plan_rows, publish_plan_table
from serendip.artifacts.store import resolve_artifact
from serendip.core.errors import ArtifactError
from triton_models.launcher import TritonServer, free_port

HOST = "127.0.0.1"
SYNTHETIC_PLAN_CLUSTERS = 5
SERVING = health_pb2.HealthCheckResponse.SERVING


class ServiceProcess:
    """``python -m <module> <args> --port P`` on loopback, its log in ``log_path``; ready once health is SERVING."""

    def __init__(self, module: str, args: list[str], log_path: Path, startup_timeout_s: float = 120.0) -> None:
        self.module = module
        self.args = args
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self.port = free_port(HOST)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:port``."""
        return f"{HOST}:{self.port}"

    def start(self) -> str:
        """Launch and wait until grpc.health.v1 answers SERVING; returns the address."""
        command = [sys.executable, "-m", self.module, *self.args, "--host", HOST, "--port", str(self.port)]
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

    def is_running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

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


def has_artifact(root: Path, kind: str) -> bool:
    """True when ``root`` holds a published ``kind`` artifact."""
    try:
        resolve_artifact(root, kind)
    except (ArtifactError, FileNotFoundError):
        return False
    return True


def prepare_plan_table(
    artifacts: Path, scratch: Path, *, every: int = 1, use_published: bool = True
) -> tuple[Path, set[str]]:
    """A plans root for the Planner and the item ids it caches.

    The artifact root's own ``plans`` when published (and ``use_published``); otherwise a plan table written
    into ``scratch`` holding the fallback policy's ranking of every ``every``-th item of the tree (CACHE
    throughput does not depend on the plans' content; ``every=2`` leaves half the items to LIVE planning).
    """
    if use_published and has_artifact(artifacts, PLANS_KIND):
        return artifacts, set(PlanTable.load(artifacts).plans)
    from planner.loading import load_planner

    planner = load_planner(resolve_artifact(artifacts, CURATION_KIND))
    cached = planner.tree.item_ids[::every]
    rows = []
    for item_id in cached:
        ranked = planner.fallback.for_cluster(planner.context_cluster(item_id))[:SYNTHETIC_PLAN_CLUSTERS]
        rows += plan_rows(item_id, [(c.cluster_id, c.score, None) for c in ranked])
    publish_plan_table(scratch, rows, {"source": "bench: the fallback ranking as a plan table", "every": every})
    return scratch, set(cached)


class LocalStack:
    """tritonserver on the artifacts' model repository, then the Retriever and the Planner wired to it."""

    def __init__(self, artifacts: Path, work_dir: Path, plans_root: Path | None = None) -> None:
        self.artifacts = Path(artifacts)
        self.work_dir = Path(work_dir)
        self.plans_root = plans_root
        self.repository = resolve_artifact(self.artifacts, REPOSITORY_KIND)
        self.triton = TritonServer(self.repository, host=HOST, log_path=self.work_dir / "tritonserver.log")
        self.retriever: ServiceProcess | None = None
        self.planner: ServiceProcess | None = None

    @property
    def endpoints(self) -> Endpoints:
        """Addresses of the running services."""
        return Endpoints(
            planner=self.planner.address if self.planner else None,
            retriever=self.retriever.address if self.retriever else None,
            triton=self.triton.grpc_url,
        )

    def start(self) -> Endpoints:
        """Start Triton, the Retriever and the Planner (in that order); stop all if one fails."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.triton.start()
            quiet = ["--log-level", "WARNING"]
            triton_url = ["--triton-url", self.triton.grpc_url]
            root = str(self.artifacts)
            self.retriever = ServiceProcess(
                "retriever", ["--sasrec", root, "--tree", root, *triton_url, *quiet], self.work_dir / "retriever.log"
            )
            self.retriever.start()
            planner_args = ["--curation", str(resolve_artifact(self.artifacts, CURATION_KIND)), "--items", root]
            planner_args += ["--retriever", self.retriever.address, *triton_url, *quiet]
            if self.plans_root is not None:
                planner_args += ["--plans", str(self.plans_root)]
            self.planner = ServiceProcess("planner", planner_args, self.work_dir / "planner.log")
            self.planner.start()
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def kill_triton(self) -> None:
        """SIGKILL tritonserver's whole process group (a crash, not a graceful stop)."""
        if self.triton.pid is not None:
            os.killpg(self.triton.pid, signal.SIGKILL)
        self.triton.stop()  # reaps the killed process

    def restart_triton(self) -> None:
        """Start tritonserver again on the same port and wait until every model is ready."""
        self.triton.start()

    def stop(self) -> None:
        """Stop the Planner, the Retriever and Triton. Idempotent."""
        for service in (self.planner, self.retriever):
            if service is not None:
                service.stop()
        self.triton.stop()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
