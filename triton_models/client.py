"""The services' one way to call a Triton model: a lazily opened async client, inputs built from the model's
:mod:`triton_models.specs`, one absolute deadline per call, and Triton failures mapped to domain errors.

gRPC's default reconnect backoff grows to two minutes, so a service whose Triton restarted could keep
failing long after Triton is ready again; capping it at one second makes recovery prompt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, KeepAliveOptions
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

from serendip.service.deadlines import Deadline
from serendip.service.errors import DeadlineExceededError, UnavailableError
from triton_models.specs import ModelSpec

MAX_RECONNECT_BACKOFF_MS = 1000


def triton_aio_client(url: str) -> triton_aio.InferenceServerClient:
    """An ``InferenceServerClient`` for ``url`` with tritonclient's keep-alive and size limits."""
    keepalive = KeepAliveOptions()
    return triton_aio.InferenceServerClient(
        url,
        channel_args=[
            ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
            ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
        ],
    )


class TritonModelClient:
    """Calls one Triton model; failures become UnavailableError, or DeadlineExceededError when time ran out.

    The channel is opened on first use, so that it belongs to the serving event loop.
    """

    def __init__(self, url: str, spec: ModelSpec, model_name: str | None = None, label: str | None = None) -> None:
        self.url = url
        self.spec = spec
        self.model_name = model_name or spec.name
        self.label = label or f"model {self.model_name}"
        """How error messages name the model, e.g. ``MLLM``."""
        self._client: triton_aio.InferenceServerClient | None = None

    def _connection(self) -> triton_aio.InferenceServerClient:
        if self._client is None:
            self._client = triton_aio_client(self.url)
        return self._client

    async def infer(
        self, inputs: Mapping[str, np.ndarray], deadline: Deadline | None = None, cap_s: float | None = None
    ) -> dict[str, np.ndarray]:
        """Run the model on ``inputs`` (tensor name -> values with the batch dimension) and return every output.

        The call may take what is left of ``deadline``, at most ``cap_s`` (neither: no client timeout);
        DeadlineExceededError when the deadline has already passed.
        """
        timeout_s = deadline.timeout_s(cap_s) if deadline is not None else cap_s
        tensors = []
        for name, values in inputs.items():
            spec = self.spec.input(name)
            values = np.asarray(values, dtype=spec.numpy_dtype)
            tensor = triton_aio.InferInput(name, list(values.shape), spec.wire_type)
            tensor.set_data_from_numpy(values)
            tensors.append(tensor)
        with self._errors_mapped(timeout_s):
            result = await self._connection().infer(self.model_name, tensors, client_timeout=timeout_s)
        return {output.name: result.as_numpy(output.name) for output in self.spec.outputs}

    async def config(self, timeout_s: float) -> mc.ModelConfig:
        """The model's config as Triton serves it."""
        with self._errors_mapped(timeout_s):
            response = await self._connection().get_model_config(self.model_name, client_timeout=timeout_s)
        return response.config

    @contextlib.contextmanager
    def _errors_mapped(self, timeout_s: float | None) -> Iterator[None]:
        """Triton's failures of the block as the domain errors the service guard maps to gRPC codes."""
        try:
            yield
        except InferenceServerException as error:
            if "DEADLINE_EXCEEDED" in (error.status() or ""):
                within = "in time" if timeout_s is None else f"within {timeout_s:.3f} s"
                raise DeadlineExceededError(f"{self.label} did not answer {within}") from error
            raise UnavailableError(f"{self.label} at {self.url} is unavailable: {error.message()}") from error

    async def close(self) -> None:
        """Close the channel (a later call opens a new one)."""
        if self._client is not None:
            await self._client.close()
            self._client = None
