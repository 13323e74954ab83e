"""Async client of the ``seqrec`` Triton model: one channel reused, the caller's deadline honoured."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

from serendip.service.errors import DeadlineExceededError, UnavailableError
from triton_models.client import triton_aio_client
from triton_models.seqrec import HISTORY_INPUT, SEQREC_MODEL, USER_OUTPUT


class SeqrecClient:
    """User embeddings from Triton; failures become UnavailableError or DeadlineExceededError."""

    def __init__(self, url: str, model_name: str = SEQREC_MODEL) -> None:
        self.url = url
        self.model_name = model_name
        self._client: triton_aio.InferenceServerClient | None = None

    def _connection(self) -> triton_aio.InferenceServerClient:
        # Created lazily so that the channel belongs to the serving event loop.
        if self._client is None:
            self._client = triton_aio_client(self.url)
        return self._client

    async def user_embeddings(self, histories: np.ndarray, timeout_s: float) -> np.ndarray:
        """[B, max_len] int64 left-padded histories -> [B, D] float32, within ``timeout_s`` seconds."""
        tensor = triton_aio.InferInput(HISTORY_INPUT, list(histories.shape), "INT64")
        tensor.set_data_from_numpy(histories.astype(np.int64, copy=False))
        try:
            result = await self._connection().infer(self.model_name, [tensor], client_timeout=timeout_s)
        except InferenceServerException as error:
            if "DEADLINE_EXCEEDED" in (error.status() or ""):
                raise DeadlineExceededError(f"sequence model did not answer within {timeout_s:.3f} s") from error
            raise UnavailableError(f"sequence model at {self.url} is unavailable: {error.message()}") from error
        return result.as_numpy(USER_OUTPUT)

    async def close(self) -> None:
        """Close the channel."""
        if self._client is not None:
            await self._client.close()
            self._client = None
