"""Popular corpus selection: the smallest item set by impressions reaching the coverage target, exactly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from serendip.artifacts.corpus import load_corpus_ids
from serendip.artifacts.store import read_manifest
from serendip.core.errors import ConfigError
from serendip.jobs import popular_corpus
from serendip.offline.corpus import select_popular
from tests.ray_jobs.conftest import Chain

HAND = pd.DataFrame({"item_id": ["a", "b", "c", "d", "e", "f"], "impressions": [5, 50, 10, 30, 5, 0]})
"""100 impressions: b 50, d 30, c 10, then a and e tied at 5 (a first by id), f never shown."""


@pytest.mark.parametrize(
    ("coverage", "expected"),
    [
        (0.5, ["b"]),
        (0.8, ["b", "d"]),  # exactly 80 of 100: reached with 2 items
        (0.81, ["b", "d", "c"]),
        (0.9, ["b", "d", "c"]),
        (0.91, ["b", "d", "c", "a"]),  # ties broken by item id
        (1.0, ["b", "d", "c", "a", "e"]),  # the item without impressions is never needed
    ],
)
def test_selection_is_the_smallest_prefix_by_impressions(coverage: float, expected: list[str]) -> None:
    selection = select_popular(HAND, coverage)
    assert selection.item_ids == expected
    assert selection.coverage_achieved >= coverage
    assert selection.table["cumulative_impressions"].tolist()[-1] == selection.impressions_covered
    assert selection.catalogue_items == 6


def test_coverage_is_compared_exactly() -> None:
    # 0.7 * 10 is 7.000000000000001 in floating point: 7 impressions must still reach it
    selection = select_popular(pd.DataFrame({"item_id": ["x", "y"], "impressions": [7, 3]}), 0.7)
    assert selection.item_ids == ["x"]
    assert selection.coverage_achieved == 0.7


def test_bad_coverage_is_refused() -> None:
    for coverage in (0.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="coverage"):
            select_popular(HAND, coverage)


def test_job_publishes_corpus_and_reports_coverage(chain: Chain, tmp_path: Path, capsys) -> None:
    corpus_dir, selection = popular_corpus.main(["--world", str(chain.world), "--artifacts", str(tmp_path)])
    ids, resolved = load_corpus_ids(tmp_path)
    assert resolved == corpus_dir and ids == selection.item_ids
    counts = read_manifest(corpus_dir)["counts"]
    assert counts["items"] == len(ids) < len(chain.items)
    assert counts["coverage_achieved"] >= 0.8
    # one item fewer would not reach the target: the set is the smallest
    total = chain.items["impressions"].sum()
    assert selection.table["impressions"].iloc[:-1].sum() < 0.8 * total
    assert f"{len(ids)} of {len(chain.items)} items cover" in capsys.readouterr().out
