"""Checks of Retriever requests; each failure names the offending field."""

from __future__ import annotations

from serendip.service.errors import InvalidArgumentError
from serendip.service.validation import MAX_EXCLUDED_ITEMS, check_ids, check_range, require_id, validate_history
from serendip.v1 import retriever_pb2

MAX_K = 1000
MAX_CLUSTERS = 64

Mode = retriever_pb2.RetrievalMode
MODES = frozenset(Mode.values())


def validate_retrieve_request(request: retriever_pb2.RetrieveRequest) -> Mode.ValueType:
    """Validate a RetrieveRequest and return its effective mode."""
    if request.mode not in MODES:
        raise InvalidArgumentError("mode", f"unknown retrieval mode {request.mode}")
    mode = Mode.RETRIEVAL_MODE_CLUSTER_RESTRICTED if request.mode == Mode.RETRIEVAL_MODE_UNSPECIFIED else request.mode
    validate_history(request.history, "history")
    cluster_ids = check_ids(request.cluster_ids, "cluster_ids", MAX_CLUSTERS, unique=True)
    if mode == Mode.RETRIEVAL_MODE_CLUSTER_RESTRICTED and not cluster_ids:
        raise InvalidArgumentError("cluster_ids", "at least one cluster id is required in CLUSTER_RESTRICTED mode")
    if mode == Mode.RETRIEVAL_MODE_UNRESTRICTED and cluster_ids:
        raise InvalidArgumentError("cluster_ids", "must be empty in UNRESTRICTED mode")
    if mode == Mode.RETRIEVAL_MODE_CONTEXT_SIMILAR:
        require_id(request.context_item.item_id, "context_item.item_id")
    check_range(request.k, "k", 1, MAX_K)
    if request.per_cluster_quota < 0:
        raise InvalidArgumentError("per_cluster_quota", f"must be >= 0, got {request.per_cluster_quota}")
    check_ids(request.exclude_item_ids, "exclude_item_ids", MAX_EXCLUDED_ITEMS)
    return mode
