"""The floor of any Python Retriever that calls Triton: a grpc.aio server whose ``serendip.v1.Retriever/Retrieve``
parses the request, asks the stack's ``seqrec`` model for the user embedding through the Retriever's own
coalescing client, and answers an empty response. No vocabulary, no top-k, no items: what is left is the inbound
gRPC hop and the Triton call, which the real Retriever cannot do without. ``make bench`` measures it next to the
Retriever (``retriever_floor_vs_raw_grpc_echo_qps``), so the Retriever's ratio can be read against what its
architecture allows on the machine.
"""

from __future__ import annotations

import argparse
import asyncio

import grpc
import numpy as np

from retriever.seqrec_client import SeqrecClient
from serendip.artifacts.sasrec import left_pad
from serendip.service.deadlines import Deadline
from serendip.v1 import retriever_pb2

RETRIEVER_SERVICE = "serendip.v1.Retriever"
FIRST_ITEM_INDEX = 1
"""Index 0 is padding: every history event becomes the first item, as the floor has no vocabulary."""


async def serve(host: str, port: int, triton_url: str, max_len: int) -> None:
    """Serve the floor Retrieve until cancelled."""
    client = SeqrecClient(triton_url)

    async def retrieve(
        request: retriever_pb2.RetrieveRequest, context: grpc.aio.ServicerContext
    ) -> retriever_pb2.RetrieveResponse:
        history = [FIRST_ITEM_INDEX] * max(1, len(request.history.events))
        histories = np.asarray([left_pad(history, max_len)], dtype=np.int64)
        await client.user_embeddings(histories, Deadline.of_call(context, 2.0))
        return retriever_pb2.RetrieveResponse(cold_start=False, model_version="floor")

    handler = grpc.unary_unary_rpc_method_handler(
        retrieve,
        request_deserializer=retriever_pb2.RetrieveRequest.FromString,
        response_serializer=retriever_pb2.RetrieveResponse.SerializeToString,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(RETRIEVER_SERVICE, {"Retrieve": handler})])
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The Retriever's floor: one gRPC hop and one Triton seqrec call.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--triton-url", required=True, help="host:port of the stack's tritonserver (gRPC)")
    parser.add_argument("--max-len", type=int, required=True, help="the seqrec model's history length")
    arguments = parser.parse_args()
    asyncio.run(serve(arguments.host, arguments.port, arguments.triton_url, arguments.max_len))
