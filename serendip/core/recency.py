"""Which history items count as recent for the recency rule (their clusters are demoted, not planned first)."""

from __future__ import annotations

from collections.abc import Sequence


def recent_items(history: Sequence[str], window: int | None) -> Sequence[str]:
    """The last ``window`` items of ``history`` (oldest first): all of them when None, none when 0."""
    if window is None:
        return history
    if window < 0:
        raise ValueError(f"the recent window must be >= 0, not {window}")
    return history[max(0, len(history) - window) :]
