"""``python -m bench.run`` (``make bench``): measure the serving stack, each figure against a baseline
measured in the same run, and write ``bench/results/<date>.json`` plus ``BENCHMARKS.md``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import grpc
import numpy as np
import tritonclient.grpc.aio as triton_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import np_to_triton_dtype

from bench.closed_loop import LoadResult, run_closed_loop
from bench.echo_server import ECHO_METHOD
from retriever.export import SASRecArtifact, write_sasrec_files
from retriever.sasrec import SASRec, SASRecConfig
from retriever.sequences import ItemVocabulary
from triton_models.echo import write_echo_model
from triton_models.launcher import TritonServer, free_port
from triton_models.seqrec import write_seqrec_model

PAYLOAD = b"x" * 64


@contextlib.contextmanager
def background_process(*args: str) -> Iterator[str]:
    """Run ``python -m <args> --port P`` on a free loopback port until the block ends; yield its address."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", *args, "--port", str(port)], stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)


async def raw_grpc_echo(address: str, concurrency: int, duration_s: float) -> LoadResult:
    """Closed loop against the bare grpc.aio echo server."""
    async with grpc.aio.insecure_channel(address) as channel:
        echo = channel.unary_unary(ECHO_METHOD)
        return await run_closed_loop(lambda: echo(PAYLOAD, timeout=5), concurrency=concurrency, duration_s=duration_s)


async def runtime_health_check(address: str, concurrency: int, duration_s: float) -> LoadResult:
    """Closed loop of grpc.health.v1 Check through the serendip runtime (interceptor, metrics)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="serendip.v1.Planner")
        return await run_closed_loop(
            lambda: stub.Check(request, timeout=5), concurrency=concurrency, duration_s=duration_s
        )


async def triton_infer(
    url: str, model: str, input_name: str, values: np.ndarray, concurrency: int, duration_s: float
) -> LoadResult:
    """Closed loop of single-row infer calls on a Triton model."""
    tensor = triton_aio.InferInput(input_name, list(values.shape), np_to_triton_dtype(values.dtype))
    tensor.set_data_from_numpy(values)
    async with triton_aio.InferenceServerClient(url) as client:
        return await run_closed_loop(
            lambda: client.infer(model, [tensor], client_timeout=5), concurrency=concurrency, duration_s=duration_s
        )


def untrained_sasrec(directory: Path, num_items: int = 5000) -> SASRecArtifact:
    """A SASRec of the default size with random weights: throughput does not depend on training."""
    directory.mkdir(parents=True)
    config = SASRecConfig(num_items=num_items)
    vocabulary = ItemVocabulary([f"item{i}" for i in range(num_items)])
    write_sasrec_files(directory, SASRec(config), config, vocabulary, np.ones(num_items + 1))
    return SASRecArtifact.load(directory)


def machine_info() -> dict[str, object]:
    """Where the figures were measured."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": metadata.version("grpcio"),
        "tritonserver (nvidia-pytriton)": metadata.version("nvidia-pytriton"),
    }


def run(duration_s: float, concurrency: int) -> dict[str, object]:
    """All measurements of this run, with their ratios."""
    steps: dict[str, dict] = {}
    with background_process("bench.echo_server") as echo_address:
        steps["raw_grpc_echo"] = asyncio.run(raw_grpc_echo(echo_address, concurrency, duration_s)).summary()
    with background_process("planner", "--log-level", "WARNING") as planner_address:
        steps["runtime_health_check"] = asyncio.run(
            runtime_health_check(planner_address, concurrency, duration_s)
        ).summary()
    with tempfile.TemporaryDirectory() as scratch:
        repository = Path(scratch) / "models"
        artifact = untrained_sasrec(Path(scratch) / "sasrec")
        write_echo_model(repository, name="echo")
        write_seqrec_model(repository, artifact, name="seqrec_batched", max_queue_delay_us=1000)
        write_seqrec_model(repository, artifact, name="seqrec_unbatched", max_queue_delay_us=None)
        echo_row = np.arange(16, dtype=np.float32)[None, :]
        history_row = np.arange(1, artifact.config.max_len + 1, dtype=np.int64)[None, :]
        with TritonServer(repository) as triton:
            measure = [("echo", "INPUT0", echo_row)]
            measure += [(name, "HISTORY", history_row) for name in ("seqrec_unbatched", "seqrec_batched")]
            for model, input_name, row in measure:
                steps[f"triton_{model}"] = asyncio.run(
                    triton_infer(triton.grpc_url, model, input_name, row, concurrency, duration_s)
                ).summary()
    ratios = {
        "runtime_vs_raw_grpc_qps": steps["runtime_health_check"]["qps"] / steps["raw_grpc_echo"]["qps"],
        "seqrec_dynamic_batching_on_vs_off_qps": (
            steps["triton_seqrec_batched"]["qps"] / steps["triton_seqrec_unbatched"]["qps"]
        ),
    }
    return {"steps": steps, "ratios": {k: round(v, 3) for k, v in ratios.items()}}


def write_markdown(results: dict, path: Path) -> None:
    """Render the latest results as BENCHMARKS.md."""
    lines = [
        "# Benchmarks",
        "",
        f"Latest `make bench`: {results['date']} on {results['machine']['cpu']} "
        f"({results['machine']['cores']} cores), closed loop at concurrency {results['concurrency']}, "
        f"{results['duration_s']} s per step after 0.5 s warm-up; client and servers share the machine.",
        "",
        "| step | QPS | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, step in results["steps"].items():
        errors = step["errors"] or "-"
        lines.append(f"| {name} | {step['qps']} | {step['p50_ms']} | {step['p90_ms']} | {step['p99_ms']} | {errors} |")
    lines += ["", "| ratio (same run) | value |", "|---|---:|"]
    lines += [f"| {name} | {value} |" for name, value in results["ratios"].items()]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Run the suite and write the results."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--output-dir", type=Path, default=Path("bench/results"), help="default: %(default)s")
    parser.add_argument(
        "--duration-s", type=float, default=5.0, help="measured seconds per step (default: %(default)s)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop workers (default: %(default)s)")
    parser.add_argument("--markdown", type=Path, default=Path("BENCHMARKS.md"), help="default: %(default)s")
    args = parser.parse_args(argv)
    results = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "concurrency": args.concurrency,
        "duration_s": args.duration_s,
        **run(args.duration_s, args.concurrency),
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    output = args.output_dir / f"{results['date'][:10]}.json"
    output.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, args.markdown)
    print(json.dumps(results["ratios"], indent=2))
    print(f"wrote {output} and {args.markdown}")


if __name__ == "__main__":
    main()
