"""Request-field checks that raise InvalidArgumentError naming the offending field."""

from __future__ import annotations

from collections.abc import Sequence

from serendip.service.errors import InvalidArgumentError
from serendip.v1.common_pb2 import RecentHistory

MAX_ID_BYTES = 256


def is_valid_id(value: str) -> bool:
    """True for a non-empty id of at most MAX_ID_BYTES bytes without surrounding whitespace."""
    return bool(value) and len(value.encode()) <= MAX_ID_BYTES and value == value.strip()


def require_id(value: str, field: str) -> str:
    """A non-empty id of at most MAX_ID_BYTES bytes without surrounding whitespace."""
    if not value:
        raise InvalidArgumentError(field, "is required and must be non-empty")
    if len(value.encode()) > MAX_ID_BYTES:
        raise InvalidArgumentError(field, f"is longer than {MAX_ID_BYTES} bytes")
    if value != value.strip():
        raise InvalidArgumentError(field, "must not start or end with whitespace")
    return value


def check_range(value: int, field: str, low: int, high: int) -> int:
    """``low <= value <= high``."""
    if not low <= value <= high:
        raise InvalidArgumentError(field, f"must be between {low} and {high}, got {value}")
    return value


def check_max_count(values: Sequence[object], field: str, limit: int) -> None:
    """At most ``limit`` entries."""
    if len(values) > limit:
        raise InvalidArgumentError(field, f"has {len(values)} entries; at most {limit} are allowed")


def check_ids(values: Sequence[str], field: str, limit: int, *, unique: bool = False) -> list[str]:
    """A list of at most ``limit`` valid ids, optionally without duplicates."""
    check_max_count(values, field, limit)
    checked = list(values)
    if not all(map(is_valid_id, checked)):  # field names are only formatted for the error: this is a hot path
        for index, value in enumerate(checked):
            require_id(value, f"{field}[{index}]")
    if unique and len(set(checked)) != len(checked):
        duplicate = next(v for i, v in enumerate(checked) if v in checked[:i])
        raise InvalidArgumentError(field, f"contains {duplicate!r} more than once")
    return checked


def check_max_bytes(value: bytes | str, field: str, limit: int) -> None:
    """At most ``limit`` bytes (strings measured as UTF-8)."""
    size = len(value.encode()) if isinstance(value, str) else len(value)
    if size > limit:
        raise InvalidArgumentError(field, f"is {size} bytes; at most {limit} are allowed")


def check_unit_interval(value: float, field: str) -> float:
    """0 <= value <= 1 (NaN rejected)."""
    if not 0.0 <= value <= 1.0:
        raise InvalidArgumentError(field, f"must be in [0, 1], got {value}")
    return value


MAX_HISTORY_EVENTS = 500
MAX_EXCLUDED_ITEMS = 10_000


def validate_history(history: RecentHistory, field: str) -> None:
    """At most MAX_HISTORY_EVENTS events, each with a valid item id and satisfaction in [0, 1]."""
    events = history.events
    check_max_count(events, f"{field}.events", MAX_HISTORY_EVENTS)
    for index, event in enumerate(events):  # field names are only formatted for the error: this is a hot path
        if not is_valid_id(event.item_id):
            require_id(event.item_id, f"{field}.events[{index}].item_id")
        if not 0.0 <= event.satisfaction <= 1.0:  # an unset satisfaction reads 0.0
            check_unit_interval(event.satisfaction, f"{field}.events[{index}].satisfaction")
