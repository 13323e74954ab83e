"""Async client of the ``seqrec`` Triton model: one channel reused, the caller's deadline honoured, and concurrent
calls coalesced into one Triton request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from serendip.service.deadlines import Deadline
from serendip.service.errors import DeadlineExceededError
from triton_models.client import TritonModelClient
from triton_models.specs import HISTORY, SEQREC, USER_EMBEDDING

DEFAULT_MAX_BATCH = 64
"""Histories sent in one Triton request at most (the seqrec model's ``max_batch_size``)."""


@dataclass(frozen=True)
class _Waiting:
    histories: np.ndarray
    deadline: Deadline
    answer: asyncio.Future[np.ndarray]


class SeqrecClient(TritonModelClient):
    """User embeddings from Triton; failures become UnavailableError or DeadlineExceededError.

    One Triton request is under way at a time: calls that arrive meanwhile wait and then go together, as one
    batch, in the next request. An idle client adds no delay; a busy one pays Triton's per-request cost (gRPC,
    the python backend's hand-off) once per batch instead of once per call.
    """

    def __init__(self, url: str, model_name: str = SEQREC.name, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        super().__init__(url, SEQREC, model_name, label="sequence model")
        self.max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._sender: asyncio.Task[None] | None = None

    async def user_embeddings(self, histories: np.ndarray, deadline: Deadline) -> np.ndarray:
        """[B, max_len] int64 left-padded histories -> [B, D] float32, by ``deadline``."""
        timeout_s = deadline.timeout_s()
        answer: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(histories, deadline, answer))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_waiting())
        try:
            return await asyncio.wait_for(answer, timeout_s)  # a caller that gives up cancels its answer
        except TimeoutError:
            raise DeadlineExceededError(f"{self.label} did not answer within {timeout_s:.3f} s") from None

    async def _send_waiting(self) -> None:
        """Send what waits, a batch per Triton request, until nothing does."""
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            batch = [w for w in batch if not w.answer.done()]
            if not batch:
                continue
            latest = Deadline(max(w.deadline.expires_at for w in batch))
            try:
                histories = np.concatenate([w.histories for w in batch])
                users = (await self.infer({HISTORY.name: histories}, latest))[USER_EMBEDDING.name]
            except Exception as error:  # every caller of the batch gets the failure; the sender keeps going
                for waiting in batch:
                    if not waiting.answer.done():
                        waiting.answer.set_exception(error)
                continue
            start = 0
            for waiting in batch:
                end = start + len(waiting.histories)
                if not waiting.answer.done():
                    waiting.answer.set_result(users[start:end])
                start = end
