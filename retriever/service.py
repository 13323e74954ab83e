"""The Retriever servicer: SASRec user embedding from Triton, then top-k inside the requested clusters."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import numpy as np

from retriever.cluster_index import ClusterIndex, ScoredItem
from retriever.seqrec_client import SeqrecClient
from retriever.validation import Mode, validate_retrieve_request
from serendip.artifacts.sasrec import ItemVocabulary, left_pad
from serendip.service.deadlines import Deadline
from serendip.service.errors import FailedPreconditionError, NotFoundError
from serendip.service.server import ServiceBinding
from serendip.v1 import common_pb2, retriever_pb2, retriever_pb2_grpc

NO_MODEL = (
    "no model/artifacts loaded: start the Retriever with --sasrec and --tree "
    "(artifacts of `python -m serendip.jobs.train_sasrec` and `python -m serendip.jobs.build_tree`)"
)
UPSTREAM_TIMEOUT_S = 2.0


@dataclass
class RetrievalModel:
    """Everything the Retriever serves from: vocabulary, per-cluster index, Triton client."""

    vocabulary: ItemVocabulary
    index: ClusterIndex
    max_len: int
    client: SeqrecClient
    version: str


class RetrieverServicer(retriever_pb2_grpc.RetrieverServicer):
    """serendip.v1.Retriever; without a model every valid call is FAILED_PRECONDITION."""

    def __init__(self, model: RetrievalModel | None = None) -> None:
        self.model = model
        self._cluster_refs: dict[str, common_pb2.ClusterRef] = {}

    async def Retrieve(
        self, request: retriever_pb2.RetrieveRequest, context: grpc.aio.ServicerContext
    ) -> retriever_pb2.RetrieveResponse:
        deadline = Deadline.of_call(context, UPSTREAM_TIMEOUT_S)
        mode = validate_retrieve_request(request)
        if self.model is None:
            raise FailedPreconditionError(NO_MODEL)
        model = self.model
        for position, cluster_id in enumerate(request.cluster_ids):
            if cluster_id not in model.index.clusters:
                raise NotFoundError(f"cluster_ids[{position}]", f"unknown cluster {cluster_id!r}")
        if mode == Mode.RETRIEVAL_MODE_CONTEXT_SIMILAR:
            context_index = model.vocabulary.index(request.context_item.item_id)
            if context_index is None:
                raise NotFoundError("context_item.item_id", f"unknown item {request.context_item.item_id!r}")
            history, unknown = [context_index], 0
        else:
            known = [model.vocabulary.index(event.item_id) for event in request.history.events]
            history = [index for index in known if index is not None]
            unknown = len(known) - len(history)
        user = None
        if history:
            histories = np.asarray([left_pad(history, model.max_len)], dtype=np.int64)
            user = (await model.client.user_embeddings(histories, deadline))[0]
        excluded = list(request.exclude_item_ids)
        if not request.include_history_items:
            excluded += [event.item_id for event in request.history.events]
        items = model.index.top_k(
            user,
            list(request.cluster_ids) or None,
            request.k,
            exclude_item_ids=excluded,
            per_cluster_quota=request.per_cluster_quota,
        )
        return retriever_pb2.RetrieveResponse(
            items=[self._item(item) for item in items],
            unknown_history_items=unknown,
            cold_start=user is None,
            model_version=model.version,
        )

    def _item(self, item: ScoredItem) -> retriever_pb2.RetrievedItem:
        return retriever_pb2.RetrievedItem(item_id=item.item_id, score=item.score, cluster=self._ref(item.cluster_id))

    def _ref(self, cluster_id: str) -> common_pb2.ClusterRef:
        """The cluster's reference, built once per cluster."""
        ref = self._cluster_refs.get(cluster_id)
        if ref is None:
            cluster = self.model.index.clusters[cluster_id]  # type: ignore[union-attr]
            ref = common_pb2.ClusterRef(
                cluster_id=cluster.cluster_id, level=cluster.level, description=cluster.description
            )
            self._cluster_refs[cluster_id] = ref
        return ref


def retriever_binding(servicer: RetrieverServicer) -> ServiceBinding:
    """Bind ``servicer`` as serendip.v1.Retriever."""
    return ServiceBinding(
        full_name=retriever_pb2.DESCRIPTOR.services_by_name["Retriever"].full_name,
        add_to_server=lambda server: retriever_pb2_grpc.add_RetrieverServicer_to_server(servicer, server),
    )
