"""Popular corpus: the smallest set of items whose impressions reach a coverage target (paper §3.2: 80 %).

Items are ranked by impressions (descending, ties by item id) and the shortest prefix whose impressions reach
``coverage * total`` is taken; any set of k items covers at most the k largest counts, so the prefix is a
smallest such set. The comparison is exact: ``coverage`` is read as the decimal it is written as
(``Fraction(str(0.7))``), so 0.7 of 10 impressions means 7, not 7.000000000000001.

Published as a ``corpus`` artifact (``serendip.artifacts.corpus``).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd

from serendip.artifacts.corpus import CorpusSelection
from serendip.core.errors import ConfigError

DEFAULT_COVERAGE = 0.8


def select_popular(items: pd.DataFrame, coverage: float = DEFAULT_COVERAGE) -> CorpusSelection:
    """The smallest item set (by impressions) covering at least ``coverage`` of all impressions.

    ``items`` needs ``item_id`` (unique) and ``impressions`` (non-negative integers), as validated by
    ``serendip.core.schema.load_items``. Items with zero impressions are never needed, so coverage 1.0 selects
    exactly the items with impressions.
    """
    if not 0 < coverage <= 1:
        raise ConfigError(f"coverage must be in (0, 1], got {coverage}")
    missing = {"item_id", "impressions"} - set(items.columns)
    if missing:
        raise ConfigError(f"items lack column(s) {sorted(missing)} needed for corpus selection")
    if items["item_id"].duplicated().any():
        raise ConfigError("item ids must be unique for corpus selection")
    impressions = items["impressions"].astype("int64")
    if (impressions < 0).any():
        raise ConfigError("impressions must be non-negative")
    ranked = (
        pd.DataFrame({"item_id": items["item_id"].astype(str), "impressions": impressions})
        .sort_values(["impressions", "item_id"], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )
    total = int(ranked["impressions"].sum())
    ranked["cumulative_impressions"] = ranked["impressions"].cumsum()
    # integer impressions reach coverage * total exactly when they reach its ceiling
    needed = math.ceil(Fraction(str(coverage)) * total)
    count = int(np.searchsorted(ranked["cumulative_impressions"].to_numpy(), needed, side="left")) + 1 if total else 0
    table = ranked.head(count).copy()
    table.insert(0, "rank", range(len(table)))
    table["cumulative_coverage"] = table["cumulative_impressions"] / total if total else 1.0
    return CorpusSelection(table.reset_index(drop=True), coverage, total, len(items))
