"""The launcher starts the real tritonserver bundled with nvidia-pytriton and stops it cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import pytest
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from triton_models.echo import write_echo_model
from triton_models.installation import TritonInstallation, TritonNotInstalledError
from triton_models.launcher import PROJECT_ROOT, TritonServer, TritonStartupError
from triton_models.model_config import python_backend_config, read_config


def test_echo_round_trip_through_real_tritonserver(triton_echo_server: TritonServer) -> None:
    assert triton_echo_server.grpc_url.startswith("127.0.0.1:")
    values = np.linspace(-3.0, 3.0, 7, dtype=np.float32)[None, :]
    tensor = grpcclient.InferInput("INPUT0", list(values.shape), "FP32")
    tensor.set_data_from_numpy(values)
    with grpcclient.InferenceServerClient(triton_echo_server.grpc_url) as client:
        result = client.infer("echo", [tensor])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), values)
        assert client.get_model_config("echo").config.dynamic_batching.max_queue_delay_microseconds == 500


def test_generated_config_parses_back(tmp_path: Path) -> None:
    model_dir = write_echo_model(tmp_path, name="echo_b", max_batch_size=32, max_queue_delay_us=1000)
    config = read_config(model_dir / "config.pbtxt")
    assert (config.name, config.backend, config.max_batch_size) == ("echo_b", "python", 32)
    assert config.dynamic_batching.max_queue_delay_microseconds == 1000
    assert [(t.name, list(t.dims)) for t in config.input] == [("INPUT0", [-1])]
    assert (model_dir / "1" / "model.py").is_file()


def test_preferred_batch_sizes_need_dynamic_batching() -> None:
    config = python_backend_config(
        "m", [], [], max_batch_size=16, max_queue_delay_us=2000, preferred_batch_sizes=[8, 16]
    )
    parsed = text_format.Parse(text_format.MessageToString(config), model_config_pb2.ModelConfig())
    assert list(parsed.dynamic_batching.preferred_batch_size) == [8, 16]
    with pytest.raises(ValueError, match="need dynamic batching"):
        python_backend_config("m", [], [], max_batch_size=16, preferred_batch_sizes=[8])


def test_stop_terminates_server_process(tmp_path: Path) -> None:
    write_echo_model(tmp_path)
    server = TritonServer(tmp_path).start()
    pid = server.pid
    assert pid is not None and server.is_running()
    server.stop()
    assert not server.is_running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # idempotent


HOLDER_SCRIPT = """
import sys, time
from triton_models.launcher import TritonServer
server = TritonServer(sys.argv[1]).start()
print(server.pid, flush=True)
time.sleep(600)
"""


def _gone(process: psutil.Process) -> bool:
    """Exited (a zombie left for its new parent to reap counts as exited)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_server_dies_with_the_process_that_started_it(tmp_path: Path, signum: signal.Signals) -> None:
    write_echo_model(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, cwd=PROJECT_ROOT, text=True
    )
    server_pid = None
    try:
        server_pid = int(holder.stdout.readline())  # type: ignore[union-attr]
        server = psutil.Process(server_pid)
        stubs = server.children(recursive=True)
        assert stubs, "the python backend runs each model instance in a stub process"
        holder.send_signal(signum)  # no `stop()`, no finaliser: the holder just dies
        holder.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not all(_gone(process) for process in [server, *stubs]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_gone(process) for process in [server, *stubs])
    finally:
        holder.kill()
        holder.wait()
        if server_pid is not None:  # a failed check must not leave the server behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server_pid, signal.SIGKILL)


def test_model_that_fails_to_load_reports_its_error(tmp_path: Path) -> None:
    model_dir = write_echo_model(tmp_path, name="broken")
    (model_dir / "1" / "model.py").write_text("raise RuntimeError('deliberately broken model')\n")
    with pytest.raises(TritonStartupError, match="deliberately broken model"):
        TritonServer(tmp_path, startup_timeout_s=60).start()


def test_missing_stub_is_a_clear_error() -> None:
    installation = TritonInstallation.discover()
    broken = replace(installation, backend_stub=Path("/nonexistent/triton_python_backend_stub"))
    with pytest.raises(TritonNotInstalledError, match="python backend stub .* not found at /nonexistent"):
        broken.check()


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    installation = replace(TritonInstallation.discover(), server_binary=tmp_path / "tritonserver")
    with pytest.raises(TritonNotInstalledError, match="tritonserver binary not found"):
        TritonServer(tmp_path, installation=installation).start()


def test_server_environment_hides_activated_virtualenvs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /elsewhere/bin\n")
    monkeypatch.setenv("PATH", os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin"]))
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    env = TritonInstallation.discover().environment()
    assert env["PATH"].split(os.pathsep) == ["/usr/local/bin", "/usr/bin"]
    assert "VIRTUAL_ENV" not in env
    assert env["LD_LIBRARY_PATH"].split(os.pathsep)[0] == str(TritonInstallation.discover().library_dir)
