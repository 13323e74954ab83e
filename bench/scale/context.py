"""What every stage of one size needs: where its artifacts live and how big the world is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

USERS_PER_ITEM = 0.75
"""The demo world's ratio (1,500 users for 2,000 items); sessions per user and their length stay the defaults, so
interactions grow in proportion to items too."""


@dataclass(frozen=True)
class SizeContext:
    """One catalogue size: its artifact root and the settings of the stages that measure it."""

    items: int
    users: int
    root: Path
    seed: int = 0
    concurrency: int = 8
    duration_s: float = 10.0
    startup_timeout_s: float = 1800.0
    tree_method: Literal["kmeans", "taxonomy"] = "kmeans"
    """``kmeans``: the tree builder clusters the items; ``taxonomy``: it imports the world's true taxonomy (O(items):
    lets the stages after it run at sizes where k-means does not fit)"""

    @property
    def label(self) -> str:
        """``10k``, ``100k``, ``1m``, or the plain count for other sizes."""
        for divisor, suffix in ((1_000_000, "m"), (1_000, "k")):
            if self.items >= divisor and self.items % divisor == 0:
                return f"{self.items // divisor}{suffix}"
        return str(self.items)


def size_label(items: int) -> str:
    """The label of a catalogue of ``items`` items (see :attr:`SizeContext.label`)."""
    return SizeContext(items, 0, Path()).label
