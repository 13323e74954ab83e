"""Load-test targets: Planner.Plan / Planner.Recommend / Retriever.Retrieve over gRPC, Triton models directly.

Each target pre-builds a pool of requests from a :class:`RequestMix` (serialised once, so the client spends
its CPU on sending, not on protobuf) and yields a :data:`Call` that cycles through the pool.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import tritonclient.grpc.aio as triton_aio
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import np_to_triton_dtype

from bench.echo_server import ECHO_METHOD
from bench.load.calls import Call
from bench.load.mix import RequestMix

GRPC_TARGETS = {
    "plan": "/serendip.v1.Planner/Plan",
    "recommend": "/serendip.v1.Planner/Recommend",
    "retrieve": "/serendip.v1.Retriever/Retrieve",
    "retrieve-floor": "/serendip.v1.Retriever/Retrieve",
    "grpc-echo": ECHO_METHOD,
}
TRITON_PREFIX = "triton:"
TARGET_HELP = "plan | recommend | retrieve | retrieve-floor | triton:<model> (seqrec, mllm, echo) | grpc-echo"
CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
ECHO_PAYLOAD_BYTES = 64
ECHO_VECTOR = np.arange(16, dtype=np.float32)[None, :]


@dataclass(frozen=True)
class Endpoints:
    """Where the services under test listen (loopback only)."""

    planner: str | None = None
    retriever: str | None = None
    triton: str | None = None
    grpc_echo: str | None = None
    retriever_floor: str | None = None
    """``bench.retriever_floor``: Retrieve as one gRPC hop and one Triton call, nothing else"""

    def for_target(self, target: str) -> str:
        """The address serving ``target``; ValueError when unknown or not configured."""
        if target.startswith(TRITON_PREFIX):
            address = self.triton
        else:
            address = {
                "plan": self.planner,
                "recommend": self.planner,
                "retrieve": self.retriever,
                "retrieve-floor": self.retriever_floor,
                "grpc-echo": self.grpc_echo,
            }.get(target)
            if target not in GRPC_TARGETS:
                raise ValueError(f"unknown target {target!r}; one of {TARGET_HELP}")
        if address is None:
            raise ValueError(f"no address configured for target {target!r}")
        return require_loopback(address)


def require_loopback(address: str) -> str:
    """``address`` (``host:port``) unchanged when its host is a loopback address; ValueError otherwise."""
    host = address.rsplit(":", 1)[0].strip("[]")
    loopback = host == "localhost"
    with contextlib.suppress(ValueError):
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    if not loopback:
        raise ValueError(f"{address}: not a loopback address; load is only ever sent to 127.0.0.1 / ::1 / localhost")
    return address


def grpc_payloads(target: str, mix: RequestMix | None, count: int) -> list[bytes]:
    """``count`` serialised requests of a gRPC target drawn from ``mix``."""
    if target == "grpc-echo":
        return [b"x" * ECHO_PAYLOAD_BYTES]
    if mix is None:
        raise ValueError(f"target {target!r} needs a request mix (artifacts)")
    draw = {
        "plan": mix.plan_request,
        "recommend": mix.recommend_request,
        "retrieve": mix.retrieve_request,
        "retrieve-floor": mix.retrieve_request,
    }[target]
    return [draw().SerializeToString() for _ in range(count)]


@contextlib.asynccontextmanager
async def grpc_call(address: str, method: str, payloads: Sequence[bytes]) -> AsyncIterator[Call]:
    """A Call sending ``payloads`` in turn to ``method`` over one channel (responses left unparsed)."""
    async with grpc.aio.insecure_channel(require_loopback(address), options=CHANNEL_OPTIONS) as channel:
        send = channel.unary_unary(method)
        pool = itertools.cycle(payloads)

        async def call(timeout_s: float) -> object:
            return await send(next(pool), timeout=timeout_s)

        yield call


def _infer_input(name: str, values: np.ndarray) -> triton_aio.InferInput:
    tensor = triton_aio.InferInput(name, list(values.shape), np_to_triton_dtype(values.dtype))
    tensor.set_data_from_numpy(values)
    return tensor


def model_config(repository: Path, model: str) -> model_config_pb2.ModelConfig:
    """The parsed ``config.pbtxt`` of ``model`` in a Triton model repository."""
    return text_format.Parse((repository / model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def mllm_pixel_needs(repository: Path, model: str = "mllm") -> str:
    """The ``frames`` parameter of the built mllm config: ``""`` (title only), a frame count, or ``thumbnail``."""
    config = model_config(repository, model)
    return config.parameters["frames"].string_value if "frames" in config.parameters else ""


def mllm_inputs(mix: RequestMix, world: Path, pixel_needs: str, count: int) -> list[list[triton_aio.InferInput]]:
    """Inputs of ``count`` distinct context items for the ``mllm`` model, pixels decoded from the world's media."""
    from planner.content import ItemStore

    store = ItemStore.load(world)
    frames = int(pixel_needs) if pixel_needs.isdigit() else 0
    thumbnail = pixel_needs == "thumbnail"
    item_ids = list(dict.fromkeys(mix.item_ids.tolist()))[:count]
    requests = []
    for item_id in item_ids:
        content = store.content(item_id, frames, thumbnail)
        inputs = [
            _infer_input("ITEM_ID", np.array([[item_id.encode()]], dtype=np.object_)),
            _infer_input("TITLE", np.array([[content.title.encode()]], dtype=np.object_)),
            _infer_input("NUM_CLUSTERS", np.array([[3]], dtype=np.int32)),
            _infer_input("CANDIDATES", np.array([[c.encode() for c in mix.candidate_clusters(item_id)]], np.object_)),
        ]
        if content.frames is not None:
            inputs.append(_infer_input("FRAMES", content.frames[None]))
        if content.thumbnail is not None:
            inputs.append(_infer_input("THUMBNAIL", content.thumbnail[None]))
        requests.append(inputs)
    return requests


def triton_inputs(
    model: str, mix: RequestMix | None, count: int, repository: Path | None = None, world: Path | None = None
) -> list[list[triton_aio.InferInput]]:
    """``count`` input lists for a Triton model: ``seqrec*`` (held-out histories), ``mllm``, ``echo*``."""
    if model.startswith("echo"):
        return [[_infer_input("INPUT0", ECHO_VECTOR)]]
    if mix is None:
        raise ValueError(f"Triton model {model!r} needs a request mix (artifacts)")
    if model.startswith("seqrec"):
        return [[_infer_input("HISTORY", mix.seqrec_history())] for _ in range(count)]
    if model == "mllm":
        if repository is None or world is None:
            raise ValueError("the mllm target needs the model repository and the world artifact")
        return mllm_inputs(mix, world, mllm_pixel_needs(repository), count)
    raise ValueError(f"no request generator for Triton model {model!r} (seqrec*, mllm, echo*)")


@contextlib.asynccontextmanager
async def triton_call(url: str, model: str, requests: Sequence[list[triton_aio.InferInput]]) -> AsyncIterator[Call]:
    """A Call sending ``requests`` in turn to Triton ``model`` over one tritonclient.grpc.aio channel."""
    async with triton_aio.InferenceServerClient(require_loopback(url)) as client:
        pool = itertools.cycle(requests)

        async def call(timeout_s: float) -> object:
            return await client.infer(model, next(pool), client_timeout=timeout_s)

        yield call


@contextlib.asynccontextmanager
async def target_call(
    target: str,
    endpoints: Endpoints,
    mix: RequestMix | None,
    *,
    pool_size: int = 512,
    repository: Path | None = None,
    world: Path | None = None,
) -> AsyncIterator[Call]:
    """The Call of any target name (see :data:`TARGET_HELP`)."""
    address = endpoints.for_target(target)
    if target.startswith(TRITON_PREFIX):
        model = target.removeprefix(TRITON_PREFIX)
        async with triton_call(address, model, triton_inputs(model, mix, pool_size, repository, world)) as call:
            yield call
    else:
        async with grpc_call(address, GRPC_TARGETS[target], grpc_payloads(target, mix, pool_size)) as call:
            yield call
