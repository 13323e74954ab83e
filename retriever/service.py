"""The Retriever servicer: validates requests, then retrieves (once a sequence model is loaded)."""

from __future__ import annotations

import grpc

from retriever.validation import validate_retrieve_request
from serendip.service.errors import FailedPreconditionError
from serendip.service.server import ServiceBinding
from serendip.v1 import retriever_pb2, retriever_pb2_grpc

NO_MODEL = (
    "no model/artifacts loaded: this Retriever build validates requests but has no sequence model "
    "or cluster index to answer from yet"
)


class RetrieverServicer(retriever_pb2_grpc.RetrieverServicer):
    """serendip.v1.Retriever. Without a loaded model every valid call is FAILED_PRECONDITION."""

    async def Retrieve(
        self, request: retriever_pb2.RetrieveRequest, context: grpc.aio.ServicerContext
    ) -> retriever_pb2.RetrieveResponse:
        validate_retrieve_request(request)
        raise FailedPreconditionError(NO_MODEL)


def retriever_binding(servicer: RetrieverServicer) -> ServiceBinding:
    """Bind ``servicer`` as serendip.v1.Retriever."""
    return ServiceBinding(
        full_name=retriever_pb2.DESCRIPTOR.services_by_name["Retriever"].full_name,
        add_to_server=lambda server: retriever_pb2_grpc.add_RetrieverServicer_to_server(servicer, server),
    )
