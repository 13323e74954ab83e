"""Resumable sharded runs: each shard's result is committed as its own file in a staging dir keyed by the inputs.

A run derives a key from everything that determines its output (parameters, input versions, the work list
and the shard size), so the shard boundaries and contents are the same whenever the same run starts again.
Workers write a shard's file to a temporary name and ``os.replace`` it to ``shard-<prefix>-<nnnnn>.parquet``:
the file exists completely or not at all, so a run killed at any moment (SIGKILL included) restarts by skipping
the committed shards and redoing only the others; nothing is lost (every shard is committed before publishing)
and nothing is duplicated (a shard id maps to one file name). After the version is published the staging dir
is removed. One run per kind directory at a time: :func:`exclusive_run` holds an ``flock`` that the kernel
releases when the holder dies, however it dies.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from serendip.artifacts.store import parameters_sha256
from serendip.core.errors import ArtifactError

STAGING_DIR = ".staging"
LOCK_FILE = "lock"
SHARD_PATTERN = re.compile(r"^shard-(?P<prefix>[0-9a-f]+)-(?P<shard>\d{5})\.parquet$")


def run_key(inputs: dict[str, Any]) -> str:
    """Hex key of a run: SHA-256 of its inputs in canonical JSON."""
    return parameters_sha256(inputs)


def write_parquet_atomically(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so that a reader (or a restart) sees the whole file or no file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)


@dataclass(frozen=True)
class ShardStaging:
    """The staging dir of one run: ``<kind dir>/.staging/<run key>/``."""

    directory: Path
    key: str

    @classmethod
    def for_run(cls, kind_dir: str | os.PathLike[str], key: str) -> ShardStaging:
        """The staging dir of run ``key`` under ``kind_dir`` (created)."""
        directory = Path(kind_dir) / STAGING_DIR / key
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory, key)

    @property
    def prefix(self) -> str:
        """Run-specific part of shard file names, so files of different runs never collide."""
        return self.key[:12]

    def shard_name(self, shard_id: int) -> str:
        """File name of a committed shard."""
        return f"shard-{self.prefix}-{shard_id:05d}.parquet"

    def shard_path(self, shard_id: int) -> Path:
        """Path of a committed shard's file."""
        return self.directory / self.shard_name(shard_id)

    def sidecar_path(self, shard_id: int, name: str) -> Path:
        """Path of an extra per-shard file (written before the shard is committed)."""
        return self.directory / f"{name}-{self.prefix}-{shard_id:05d}.parquet"

    def committed(self) -> set[int]:
        """Ids of the shards whose file exists."""
        ids = set()
        for path in self.directory.glob("shard-*.parquet"):
            match = SHARD_PATTERN.match(path.name)
            if match and match["prefix"] == self.prefix:
                ids.add(int(match["shard"]))
        return ids

    def commit(self, shard_id: int, table: pa.Table) -> Path:
        """Atomically write a shard's result; from then on the shard counts as done."""
        path = self.shard_path(shard_id)
        write_parquet_atomically(table, path)
        return path

    def remove(self) -> None:
        """Delete the staging dir (after its results are published)."""
        shutil.rmtree(self.directory, ignore_errors=True)


def remove_stale_staging(kind_dir: str | os.PathLike[str], keep_key: str | None = None) -> list[str]:
    """Delete staging dirs of other (abandoned) runs under ``kind_dir``; returns their keys."""
    root = Path(kind_dir) / STAGING_DIR
    removed = []
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        if directory.is_dir() and directory.name != keep_key:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory.name)
    return removed


@contextmanager
def exclusive_run(kind_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the kind dir's run lock for the block; ArtifactError when another live run holds it."""
    root = Path(kind_dir) / STAGING_DIR
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArtifactError(f"another run holds {root / LOCK_FILE}; wait for it or stop it first") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
