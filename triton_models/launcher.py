"""Start, wait for and stop a real tritonserver process bound to loopback.

Usage::

    with TritonServer(model_repository) as server:
        client = tritonclient.grpc.InferenceServerClient(server.grpc_url)

The server binds 127.0.0.1 on free ports, HTTP is off, readiness is strict (every model
must be ready), and stopping sends SIGINT then SIGKILL after a timeout. On Linux the server is also
killed when the thread that started it dies (``PR_SET_PDEATHSIG``), so a test run or a bench stopped by
SIGTERM or SIGKILL leaves no tritonserver behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import site
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from triton_models.installation import TritonInstallation

LOGGER = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SITE_DIRS_ENV = "SERENDIP_SITE_DIRS"
PR_SET_PDEATHSIG = 1
"""prctl option (linux/prctl.h): the signal a process gets when the thread that forked it exits."""
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


class TritonStartupError(RuntimeError):
    """tritonserver exited or did not become ready; the message holds the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def model_names(model_repository: Path) -> list[str]:
    """Names of the models in a repository: subdirectories holding a config.pbtxt."""
    return sorted(p.name for p in model_repository.iterdir() if (p / "config.pbtxt").is_file())


class TritonServer:
    """One tritonserver process serving ``model_repository`` over gRPC on loopback."""

    def __init__(
        self,
        model_repository: Path | str,
        *,
        host: str = "127.0.0.1",
        grpc_port: int = 0,
        metrics_port: int | None = None,
        log_path: Path | None = None,
        startup_timeout_s: float = 180.0,
        stop_timeout_s: float = 15.0,
        installation: TritonInstallation | None = None,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        if not self.model_repository.is_dir():
            raise FileNotFoundError(f"model repository {self.model_repository} does not exist")
        self.host = host
        self.grpc_port = grpc_port or free_port(host)
        self.metrics_port = metrics_port
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.installation = installation or TritonInstallation.discover()
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="tritonserver-")) / "tritonserver.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def grpc_url(self) -> str:
        """``host:port`` for tritonclient.grpc."""
        return f"{self.host}:{self.grpc_port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, None when stopped."""
        return self._process.pid if self._process else None

    def command(self, backend_directory: Path) -> list[str]:
        """The tritonserver command line."""
        args = [
            str(self.installation.server_binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backend_directory}",
            "--allow-http=false",
            "--allow-grpc=true",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            "--strict-readiness=true",
            "--exit-on-error=true",
            "--disable-auto-complete-config",
            f"--exit-timeout-secs={int(self.stop_timeout_s)}",
        ]
        if self.metrics_port is None:
            args.append("--allow-metrics=false")
        else:
            args += ["--allow-metrics=true", f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}"]
        return args

    def start(self) -> TritonServer:
        """Launch the server and block until it and every model in the repository are ready."""
        if self._process is not None:
            raise RuntimeError("server already started")
        self.installation.check()
        backend_directory = self.installation.prepare_backend_directory()
        env = self.installation.environment()
        # The python backend stub runs isolated (PYTHONPATH ignored); model.py files read this.
        env[SITE_DIRS_ENV] = os.pathsep.join([str(PROJECT_ROOT), *site.getsitepackages()])
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log_file:
            self._process = subprocess.Popen(
                self.command(backend_directory),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=_killed_with_parent(os.getpid()) if _PRCTL is not None else None,
            )
        self._finalizer = weakref.finalize(self, _kill_group, self._process)
        LOGGER.info("tritonserver pid %d starting on %s", self._process.pid, self.grpc_url)
        try:
            self._wait_until_ready(model_names(self.model_repository))
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self, models: Sequence[str]) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        with grpcclient.InferenceServerClient(self.grpc_url) as client:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    raise TritonStartupError(
                        f"tritonserver exited with code {self._process.returncode if self._process else '?'}"
                        f" before becoming ready; log {self.log_path}:\n{self.log_tail()}"
                    )
                try:
                    if client.is_server_ready() and all(client.is_model_ready(m) for m in models):
                        return
                except InferenceServerException:
                    pass
                time.sleep(0.2)
        raise TritonStartupError(
            f"tritonserver not ready after {self.startup_timeout_s:.0f} s; log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        """Last ``lines`` lines of the server log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def is_running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """SIGINT, wait ``stop_timeout_s``, then SIGKILL the process group. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                LOGGER.warning("tritonserver pid %d ignored SIGINT; killing", process.pid)
        _kill_group(process)
        if self._finalizer is not None:
            self._finalizer.detach()

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _killed_with_parent(parent_pid: int) -> Callable[[], None]:
    """What the forked child runs before exec: ask for SIGKILL when its parent thread dies, and die at once if
    the parent is already gone (it may have died between fork and prctl)."""

    def arrange() -> None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)  # type: ignore[misc]
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return arrange


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL whatever is left of the server's process group (python backend stubs included)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
