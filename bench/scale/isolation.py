"""Run one stage in a child process of its own: its wall time, its peak resident memory, and what stopped it.

Each stage runs in a spawned child (a fresh interpreter, its own process group) so that the peak RSS it reports
(see :func:`peak_memory_mb`) is that stage's alone, and a stage that runs out of memory or time is stopped without
ending the run. A ``MemoryError`` (the child's address space is capped at the
memory limit), a kill by the kernel's OOM killer, or the timeout are recorded as ``did not fit: <why>``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load.machine import process_status_bytes

Figures = dict[str, Any]
DID_NOT_FIT = "did not fit"
FAILED = "failed"
OK = "ok"
KILL_GRACE_S = 10.0


@dataclass
class StageOutcome:
    """What one stage at one size gave: its figures (``seconds`` and more), peak memory, and status."""

    status: str
    figures: Figures = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    log: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: figures flattened beside the status."""
        reason = {} if self.reason is None else {"reason": f"{self.status}: {self.reason}"}
        memory = {name: round(value, 1) for name, value in self.memory.items()}
        return {"status": self.status, **reason, **self.figures, **memory, "log": self.log}


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process (``VmHWM``: its own since exec, unlike ``ru_maxrss``, which keeps the
    forking parent's) and of the children it waited for (``ru_maxrss``, an upper bound), in MiB."""
    own = process_status_bytes("VmHWM")["VmHWM"]
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"peak_rss_mb": own / 2**20, **({"children_peak_rss_mb": children / 1024.0} if children else {})}


def _child(
    connection: Any, function: Callable[..., Figures], argument: Any, memory_limit: int | None, log: str
) -> None:
    os.setpgid(0, 0)  # its own group: a timeout stops the servers it started too
    with open(log, "ab", buffering=0) as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    try:
        message = (OK, function(argument), None)
    except MemoryError:
        cap = f"the {memory_limit / 2**30:.1f} GiB address-space cap" if memory_limit else "the machine's memory"
        message = (DID_NOT_FIT, {}, f"MemoryError: above {cap}")
    except Exception as error:  # recorded and the run goes on; the traceback is in the stage's log
        traceback.print_exc()
        message = (FAILED, {}, f"{type(error).__name__}: {error}")
    connection.send((*message, peak_memory_mb()))
    connection.close()


def _stop_group(process: multiprocessing.process.BaseProcess) -> None:
    """SIGTERM the child's process group, SIGKILL what is left after a grace period."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sent)  # type: ignore[arg-type]
        process.join(KILL_GRACE_S)
        if not process.is_alive():
            return
    process.kill()  # still running: it had not yet made its own group


def run_isolated(
    function: Callable[..., Figures], argument: Any, log: Path, timeout_s: float, memory_limit: int | None
) -> StageOutcome:
    """``function(argument)`` in a spawned child whose output goes to ``log``; its figures, peak RSS and status.

    ``function`` must be importable by name (a module-level function) and ``argument`` picklable.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, function, argument, memory_limit, str(log)))
    started = time.perf_counter()
    process.start()
    sender.close()
    answered = receiver.poll(timeout_s)
    message = None
    if answered:
        with contextlib.suppress(EOFError):
            message = receiver.recv()
    wall_s = time.perf_counter() - started
    if message is None:
        _stop_group(process)
        process.join()
        if not answered:
            return StageOutcome(DID_NOT_FIT, reason=f"timeout after {timeout_s:.0f} s", log=str(log))
        code = process.exitcode
        why = "killed by SIGKILL (out of memory?)" if code == -signal.SIGKILL else f"exited with {code}"
        return StageOutcome(DID_NOT_FIT if code == -signal.SIGKILL else FAILED, reason=why, log=str(log))
    process.join(KILL_GRACE_S)
    if process.is_alive():
        _stop_group(process)
    status, figures, reason, memory = message
    return StageOutcome(status, {**figures, "stage_wall_s": round(wall_s, 2)}, memory, reason, str(log))
