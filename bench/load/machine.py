"""Where figures were measured: CPU, cores, load, versions."""

from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata
from pathlib import Path


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def machine_info() -> dict[str, object]:
    """CPU model, core count, load average at the start, Python and serving-stack versions."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "grpcio": metadata.version("grpcio"),
        "tritonclient": metadata.version("tritonclient"),
        "tritonserver (nvidia-pytriton)": metadata.version("nvidia-pytriton"),
    }


def process_status_bytes(*fields: str, pid: int | str = "self") -> dict[str, int]:
    """Memory fields of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``, ``RssAnon``…; Linux, reported in kB), in
    bytes."""
    wanted = set(fields)
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in wanted:
            values[name] = int(value.split()[0]) * 1024
    return values
