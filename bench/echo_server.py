"""A bare grpc.aio server whose one unary method returns its request bytes: the raw-gRPC baseline."""

from __future__ import annotations

import argparse
import asyncio

import grpc

ECHO_METHOD = "/bench.Echo/Echo"


async def serve(host: str, port: int) -> None:
    """Serve the echo method until cancelled."""
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})])
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await server.wait_for_termination()


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Raw grpc.aio echo server (benchmark baseline).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    asyncio.run(serve(arguments.host, arguments.port))
