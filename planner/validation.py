"""Checks of Planner requests; each failure names the offending field."""

from __future__ import annotations

from serendip.service.validation import (
    MAX_EXCLUDED_ITEMS,
    check_ids,
    check_max_bytes,
    check_max_count,
    check_range,
    require_id,
    validate_history,
)
from serendip.v1 import common_pb2, planner_pb2

DEFAULT_NUM_CLUSTERS = 3
MAX_NUM_CLUSTERS = 50
MAX_NUM_ITEMS = 1000
MAX_FRAMES = 8
MAX_IMAGE_BYTES = 1024 * 1024
MAX_TITLE_BYTES = 4 * 1000
MAX_DESCRIPTION_BYTES = 4 * 5000


def validate_content(content: common_pb2.VideoContent, field: str) -> None:
    """Frame count, image sizes and text lengths within the documented limits."""
    check_max_count(content.frames_jpeg, f"{field}.frames_jpeg", MAX_FRAMES)
    for index, frame in enumerate(content.frames_jpeg):
        check_max_bytes(frame, f"{field}.frames_jpeg[{index}]", MAX_IMAGE_BYTES)
    check_max_bytes(content.thumbnail_jpeg, f"{field}.thumbnail_jpeg", MAX_IMAGE_BYTES)
    check_max_bytes(content.title, f"{field}.title", MAX_TITLE_BYTES)
    check_max_bytes(content.description, f"{field}.description", MAX_DESCRIPTION_BYTES)


def _num_clusters(value: int) -> int:
    return DEFAULT_NUM_CLUSTERS if value == 0 else check_range(value, "num_clusters", 1, MAX_NUM_CLUSTERS)


def validate_plan_request(request: planner_pb2.PlanRequest) -> int:
    """Validate a PlanRequest and return the number of clusters to plan."""
    require_id(request.context_item.item_id, "context_item.item_id")
    validate_content(request.context_content, "context_content")
    validate_history(request.recent_history, "recent_history")
    return _num_clusters(request.num_clusters)


def validate_recommend_request(request: planner_pb2.RecommendRequest) -> tuple[int, int]:
    """Validate a RecommendRequest and return (num_items, num_clusters)."""
    require_id(request.context_item.item_id, "context_item.item_id")
    validate_content(request.context_content, "context_content")
    validate_history(request.recent_history, "recent_history")
    check_ids(request.exclude_item_ids, "exclude_item_ids", MAX_EXCLUDED_ITEMS)
    num_items = check_range(request.num_items, "num_items", 1, MAX_NUM_ITEMS)
    return num_items, _num_clusters(request.num_clusters)
