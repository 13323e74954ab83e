"""Resumable staging: a shard counts as done only once its file is complete; one run per kind dir at a time."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from ray_jobs.staging import ShardStaging, exclusive_run, remove_stale_staging, run_key
from serendip.core.errors import ArtifactError


def test_only_complete_shard_files_of_this_run_count_as_committed(tmp_path: Path) -> None:
    key = run_key({"job": "test", "items": ["a", "b"]})
    assert key == run_key({"items": ["a", "b"], "job": "test"}), "the key ignores dict order"
    staging = ShardStaging.for_run(tmp_path, key)
    staging.commit(3, pa.table({"item_id": ["a"]}))
    assert [path.name for path in staging.directory.iterdir()] == [staging.shard_name(3)], "no temporary file left"
    (staging.directory / f".{staging.shard_name(4)}.123.tmp").write_bytes(b"half a file")  # killed mid-write
    (staging.directory / "shard-000000000000-00005.parquet").write_bytes(b"")  # another run's shard
    assert staging.committed() == {3}


def test_stale_staging_dirs_are_removed_and_the_run_lock_is_exclusive(tmp_path: Path) -> None:
    ShardStaging.for_run(tmp_path, "old")
    keep = ShardStaging.for_run(tmp_path, "current")
    assert remove_stale_staging(tmp_path, keep_key="current") == ["old"]
    assert keep.directory.is_dir()
    with exclusive_run(tmp_path):
        with pytest.raises(ArtifactError, match="another run"), exclusive_run(tmp_path):
            pass
    with exclusive_run(tmp_path):  # released when the holder left
        pass
