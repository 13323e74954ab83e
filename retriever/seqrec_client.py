"""Async client of the ``seqrec`` Triton model: one channel reused, the caller's deadline honoured."""

from __future__ import annotations

import numpy as np

from serendip.service.deadlines import Deadline
from triton_models.client import TritonModelClient
from triton_models.specs import HISTORY, SEQREC, USER_EMBEDDING


class SeqrecClient(TritonModelClient):
    """User embeddings from Triton; failures become UnavailableError or DeadlineExceededError."""

    def __init__(self, url: str, model_name: str = SEQREC.name) -> None:
        super().__init__(url, SEQREC, model_name, label="sequence model")

    async def user_embeddings(self, histories: np.ndarray, deadline: Deadline) -> np.ndarray:
        """[B, max_len] int64 left-padded histories -> [B, D] float32, by ``deadline``."""
        return (await self.infer({HISTORY.name: histories}, deadline))[USER_EMBEDDING.name]
