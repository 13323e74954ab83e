"""Two Ray nodes on this machine, each started with `ray start` (1 CPU and its own custom resource, every port on
127.0.0.1, token auth): frame decoding and batch planning submitted with `ray job submit` run shards on both
nodes, as their run reports show. The recipe is docs/ray_jobs.md, "Two nodes on one machine".

The test owns its cluster: fresh ports, its own temp dir and token, and on the way out it stops the two nodes it
started (their process groups, and any process naming its temp dir), never another Ray on the machine.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.ray_jobs.conftest import Chain, write_items

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NODE_RESOURCES = {"head": "serendip_head", "worker": "serendip_worker"}
"""Each node's own custom resource: what tells the nodes apart in `ray list nodes`."""
ITEMS, SHARD_SIZE = 8, 2
START_TIMEOUT_S, JOB_TIMEOUT_S, STOP_TIMEOUT_S = 120, 300, 30


@dataclass(frozen=True)
class TwoNodeCluster:
    """A running head and worker node of one cluster."""

    job_address: str
    """The head's job server, for `ray job submit --address`."""
    env: dict[str, str]
    """What a Ray CLI call needs to reach it: loopback only, token auth with this cluster's token, the venv first."""
    nodes: dict[str, str]
    """Node id -> "head" or "worker"."""
    process_groups: frozenset[int]
    """Those of the two `ray start --block` processes (each leads its own)."""
    temp_root: Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ray(cluster_env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "ray"), *args], env=cluster_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _alive_nodes(env: dict[str, str], job_address: str) -> list[dict]:
    listed = _ray(env, "list", "nodes", "--address", job_address, "--format", "json")
    return [node for node in json.loads(listed.stdout) if node["state"] == "ALIVE"] if listed.returncode == 0 else []


def _node_options(role: str, temp_root: Path) -> list[str]:
    """What each node gets: 1 CPU, its custom resource, loopback, its own temp dir and agent ports."""
    return [
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        f"--resources={json.dumps({NODE_RESOURCES[role]: 1})}",
        f"--temp-dir={temp_root / role}",
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--dashboard-agent-grpc-port={_free_port()}",
        f"--metrics-export-port={_free_port()}",
        f"--runtime-env-agent-port={_free_port()}",
        "--disable-usage-stats",
        "--block",
    ]


def _start_node(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:  # the child keeps its own descriptor
        return subprocess.Popen(
            command, env=env, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_for(ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def _ours(temp_root: Path, groups: frozenset[int]) -> list[psutil.Process]:
    """Processes of the nodes this test started: in their process groups, or naming its temp dir."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getpgid(process.pid) in groups or str(temp_root) in " ".join(process.info["cmdline"] or ()):
                found.append(process)
        except (psutil.Error, ProcessLookupError):
            continue
    return found


def _stop_nodes(starters: list[subprocess.Popen[bytes]], temp_root: Path) -> None:
    """SIGTERM to each `ray start --block` (it stops the processes it started), worker first; what is left after
    STOP_TIMEOUT_S of its process groups or naming the temp dir is killed. Nothing else is touched."""
    groups = frozenset(starter.pid for starter in starters)  # each started with start_new_session: pgid == pid
    for starter in reversed(starters):
        if starter.poll() is None:
            starter.send_signal(signal.SIGTERM)
    for starter in reversed(starters):
        try:
            starter.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while (left := _ours(temp_root, groups)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for process in left:
        process.kill()
    psutil.wait_procs(left, timeout=STOP_TIMEOUT_S)
    for starter in starters:
        starter.poll()


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[TwoNodeCluster]:
    """A head and a worker node (1 CPU each), started as docs/ray_jobs.md says; both stopped afterwards."""
    temp_root = Path(tempfile.mkdtemp(prefix="serendip-2n-", dir="/tmp"))  # short: Ray's socket paths <= 107 bytes
    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
    env |= {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # every port on 127.0.0.1 (docs/platform.md)
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),  # this cluster's own token, not ~/.ray/auth_token
        "RAY_USAGE_STATS_ENABLED": "0",
        # SIGTERM stops a node at once: Ray Data's detached stats actor would hold the head's drain for all 30 s.
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the jobs' `python` is the venv's
    }
    gcs_port, dashboard_port = _free_port(), _free_port()
    job_address = f"http://127.0.0.1:{dashboard_port}"
    starters: list[subprocess.Popen[bytes]] = []
    try:
        head_log = temp_root / "head.log"
        head_command = [str(VENV_BIN / "ray"), "start", "--head", f"--port={gcs_port}", "--dashboard-host=127.0.0.1"]
        head_command += [f"--dashboard-port={dashboard_port}", f"--ray-client-server-port={_free_port()}"]
        starters.append(_start_node(head_command + _node_options("head", temp_root), head_log, env))
        _wait_for(
            lambda: _ray(env, "job", "list", "--address", job_address).returncode == 0, "head", starters[0], head_log
        )

        worker_log = temp_root / "worker.log"
        worker_command = [sys.executable, "-m", "ray_jobs.loopback_node", "start", f"--address=127.0.0.1:{gcs_port}"]
        starters.append(_start_node(worker_command + _node_options("worker", temp_root), worker_log, env))
        _wait_for(lambda: "Ray runtime started" in worker_log.read_text(), "worker node", starters[1], worker_log)
        _wait_for(lambda: len(_alive_nodes(env, job_address)) == 2, "worker node", starters[1], worker_log)

        nodes = {}
        for node in _alive_nodes(env, job_address):
            (role,) = [role for role, resource in NODE_RESOURCES.items() if resource in node["resources_total"]]
            nodes[node["node_id"]] = role
        groups = frozenset(starter.pid for starter in starters)
        yield TwoNodeCluster(job_address, env, nodes, groups, temp_root)
    finally:
        _stop_nodes(starters, temp_root)
        shutil.rmtree(temp_root, ignore_errors=True)


def _submit(cluster: TwoNodeCluster, module: str, report: Path, *options: str | Path) -> dict:
    """`ray job submit` of a job module, waiting for it; returns the run report it wrote."""
    command = ["job", "submit", "--address", cluster.job_address, "--working-dir", str(REPO), "--"]
    command += ["python", "-m", module, *map(str, options), "--quiet", "--report", str(report)]
    submitted = _ray(cluster.env, *command, timeout=JOB_TIMEOUT_S)
    assert submitted.returncode == 0, f"{module} failed:\n{submitted.stdout[-4000:]}\n{submitted.stderr[-4000:]}"
    return json.loads(report.read_text())


def test_cluster_has_two_loopback_nodes_behind_token_auth(two_nodes: TwoNodeCluster) -> None:
    assert sorted(two_nodes.nodes.values()) == ["head", "worker"]
    refused = _ray(
        two_nodes.env | {"RAY_AUTH_TOKEN": secrets.token_hex(32)}, "job", "list", "--address", two_nodes.job_address
    )
    assert refused.returncode != 0, "the job server answered a client with another token"
    ray_pids = {process.pid for process in _ours(two_nodes.temp_root, two_nodes.process_groups)}
    listening = {
        connection.laddr.ip
        for connection in psutil.net_connections("inet")
        if connection.status == psutil.CONN_LISTEN and connection.pid in ray_pids
    }
    addresses = {ipaddress.ip_address(ip) for ip in listening}
    addresses = {getattr(address, "ipv4_mapped", None) or address for address in addresses}  # ::ffff:127.0.0.1
    assert addresses == {ipaddress.ip_address("127.0.0.1")}, f"Ray listens on {listening}: not loopback only"


def test_decoding_and_planning_jobs_run_shards_on_both_nodes(
    two_nodes: TwoNodeCluster, chain: Chain, tmp_path: Path
) -> None:
    items = chain.items.sort_values("item_id", ignore_index=True).head(ITEMS)
    catalogue = write_items(items, tmp_path / "items.parquet")
    decoded = _submit(
        two_nodes,
        "ray_jobs.decode_frames",
        tmp_path / "decode-report.json",
        *(
            "--items",
            catalogue,
            "--all-items",
            "--mllm",
            chain.mllm,
            "--shard-size",
            SHARD_SIZE,
            "--artifacts",
            tmp_path,
        ),
    )
    planned = _submit(
        two_nodes,
        "ray_jobs.batch_plans",
        tmp_path / "plans-report.json",
        *("--mllm", chain.mllm, "--shard-size", SHARD_SIZE, "--artifacts", tmp_path),
    )
    assert (decoded["counts"]["decoded"], planned["counts"]["planned"]) == (ITEMS, ITEMS)
    for stage, report in (("decode", decoded), ("plan", planned)):
        shards_per_node = Counter(shard["node_id"] for shard in report["shards"])
        print(f"{stage}: shards per node {dict(shards_per_node)} (nodes {two_nodes.nodes})")
        assert sum(shards_per_node.values()) == ITEMS // SHARD_SIZE
        assert set(shards_per_node) == set(two_nodes.nodes), f"{stage} shards ran on {dict(shards_per_node)} only"
        assert min(shards_per_node.values()) >= 1
        assert report["stages"][stage]["shards_per_node"] == dict(shards_per_node)
        assert report["stages"][stage]["workers"] == 2, "the pool is sized from both nodes' CPUs"
