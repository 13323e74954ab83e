"""One way to open an async Triton client: tritonclient's defaults plus a short reconnect backoff.

gRPC's default reconnect backoff grows to two minutes, so a service whose Triton restarted could keep
failing long after Triton is ready again; capping it at one second makes recovery prompt.
"""

from __future__ import annotations

import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, KeepAliveOptions

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
