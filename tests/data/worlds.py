"""Configuration of the 200-item test world shared by the data tests' fixtures and assertions."""

from __future__ import annotations

from serendip.offline.world import WorldConfig

TEST_BRANCHING = (2, 2, 3, 2)
TEST_WORLD = WorldConfig(num_items=200, num_users=300, branching=TEST_BRANCHING, seed=7, workers=2)
