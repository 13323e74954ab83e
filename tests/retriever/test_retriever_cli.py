"""``python -m retriever``'s command line: inconsistent flags exit with usage, and ``--search-threads`` reaches
numpy's BLAS and FAISS's OpenMP."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np  # noqa: F401  (its BLAS is one of the pools the flag limits)
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import retriever.__main__ as retriever_main


@pytest.mark.parametrize(
    "flags",
    [
        "--sasrec s",  # without --tree
        "--ann a",  # without --sasrec and --tree
        "--sasrec s --tree t --ann a --search-threads 0",
    ],
)
def test_inconsistent_flags_exit_with_usage(flags: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        retriever_main.main(flags.split())
    assert exit_info.value.code == 2
    assert "--" in capsys.readouterr().err.splitlines()[-1]  # the message names the flag


@pytest.mark.parametrize("threads", [1, 3])
def test_searches_use_the_threads_asked_for(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[tuple] = []
    monkeypatch.setattr(retriever_main, "load_retrieval_model", lambda *args: loaded.append(args))
    monkeypatch.setattr(retriever_main, "RetrieverServicer", lambda model: model)
    monkeypatch.setattr(retriever_main, "retriever_binding", lambda servicer: servicer)
    monkeypatch.setattr(retriever_main, "run_service", lambda bindings, args: None)
    monkeypatch.setattr(retriever_main.gc, "freeze", lambda: None)  # not in the test process
    with threadpool_limits(limits=2):  # restores every pool's limit afterwards
        retriever_main.main(["--sasrec", "s", "--tree", "t", "--ann", "a", "--search-threads", str(threads)])
        pools = {pool["internal_api"]: pool["num_threads"] for pool in threadpool_info()}
        assert pools["openblas"] == threads and faiss.omp_get_max_threads() == threads
    assert loaded[0][-1] == Path("a")
