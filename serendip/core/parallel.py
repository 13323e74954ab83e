"""Per-item work (video encoding, frame decoding) over a process pool -- only when there is enough of it.

Workers are spawned, never forked, so a parent that already runs threads (torch, gRPC, Ray) is never copied
mid-state. Spawning costs about a second, so fewer than ``MIN_TASKS_PER_WORKER`` tasks per worker run
in-process instead.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import TypeVar

from tqdm import tqdm

MIN_TASKS_PER_WORKER = 250

Task = TypeVar("Task")
Result = TypeVar("Result")


def map_tasks(
    function: Callable[[Task], Result], tasks: Sequence[Task], workers: int, description: str, progress: bool
) -> list[Result]:
    """``[function(task) for task in tasks]`` in task order, on up to ``workers`` processes, with a progress bar.

    ``function`` must be a module-level function (it is imported by the spawned workers).
    """
    bar = {"total": len(tasks), "desc": description, "unit": "item", "disable": not progress}
    processes = min(workers, len(tasks) // MIN_TASKS_PER_WORKER)
    if processes <= 1:
        return [function(task) for task in tqdm(tasks, **bar)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        chunk = max(1, min(32, len(tasks) // (processes * 8)))
        return list(tqdm(pool.imap(function, tasks, chunksize=chunk), **bar))
