"""``python -m serendip.serve``: ``--search-threads`` limits the thread pools of the process the services run in."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np  # noqa: F401  (its BLAS is one of the pools the flag limits)
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from serendip import serve


class _Stack:
    """Stands in for the ServingStack: ``serve`` only enters it and prints its addresses."""

    def __init__(self, bundle: object, **ports: object) -> None:
        self.triton = SimpleNamespace(grpc_url="127.0.0.1:1", log_path="triton.log")
        self.planner_address = self.retriever_address = "127.0.0.1:2"

    def __enter__(self) -> _Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_search_threads_reach_blas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "resolve_bundle", lambda artifacts, repository: SimpleNamespace(describe=str))
    monkeypatch.setattr(serve, "ServingStack", _Stack)
    blas_threads = []
    monkeypatch.setattr(
        serve,
        "wait_for_signal",
        lambda: blas_threads.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"),
    )
    with threadpool_limits(limits=2):  # restores every pool's limit afterwards
        serve.main(["--search-threads", "3"])
    assert blas_threads and set(blas_threads) == {3}


def test_search_threads_below_one_exit_with_usage() -> None:
    with pytest.raises(SystemExit) as exit_info:
        serve.parse_args(["--search-threads", "0"])
    assert exit_info.value.code == 2
