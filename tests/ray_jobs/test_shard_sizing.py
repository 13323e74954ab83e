"""Shard sizing: small runs are split so that every worker gets a share; large runs keep the asked size."""

import pytest

from ray_jobs.ray_runtime import shard_size_for


@pytest.mark.parametrize(
    ("items", "shard_size", "workers", "expected"),
    [
        (1000, 16, 2, 16),  # many shards: the asked size
        (32, 16, 2, 16),  # exactly one full shard per worker
        (16, 16, 2, 8),  # one shard's worth over two workers: halves
        (240, 16, 2, 15),  # 15 shards of 16 would leave one worker idle for the last: 16 of 15
        (5, 8, 2, 3),  # uneven: 3 + 2
        (5, 8, 1, 5),  # one worker: one shard
        (17, 16, 1, 9),  # one worker, two shards: even sizes (9 + 8, not 16 + 1)
        (1, 16, 4, 1),  # fewer items than workers: one item per shard, never 0
        (0, 16, 2, 1),
    ],
)
def test_shard_size_for(items: int, shard_size: int, workers: int, expected: int) -> None:
    assert shard_size_for(items, shard_size, workers) == expected
