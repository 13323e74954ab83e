"""Triton python-backend model ``mllm``: ranks serendipitous clusters for context videos.

Inputs per request (batch dimension 1): ITEM_ID, TITLE, FRAMES [n, H, W, 3] uint8 or THUMBNAIL
[H, W, 3] uint8, optional CANDIDATES (cluster ids allowed), NUM_CLUSTERS. Outputs: CLUSTER_IDS and
SCORES [1, k] best first, REASONING [1, 1]. All requests gathered by the dynamic batcher are ranked in
one engine call. The engine (``torch`` or ``tensorrt_llm``) and the artifact subdirectory come from the
config's parameters.
"""

import os
import site
import sys

# The stub ignores PYTHONPATH: add the project's site directories handed over by the launcher.
_preexisting = list(sys.path)
for _site_dir in filter(None, os.environ.get("SERENDIP_SITE_DIRS", "").split(os.pathsep)):
    site.addsitedir(_site_dir)
sys.path[:] = [p for p in sys.path if p not in _preexisting] + _preexisting

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

from serendip.models.mllm.contexts import PlanningContext  # noqa: E402
from serendip.models.mllm.errors import MllmError  # noqa: E402
from triton_models.engines import load_planner_engine  # noqa: E402
from triton_models.specs import (  # noqa: E402
    CANDIDATES,
    CLUSTER_IDS,
    FRAMES,
    ITEM_ID,
    NUM_CLUSTERS,
    REASONING,
    SCORES,
    THUMBNAIL,
    TITLE,
)


def _optional(request, spec):
    tensor = pb_utils.get_input_tensor_by_name(request, spec.name)
    return None if tensor is None else tensor.as_numpy()


def _tensor(spec, values):
    return pb_utils.Tensor(spec.name, np.array(values, dtype=spec.numpy_dtype))


def _text(values) -> str:
    if values is None or values.size == 0:
        return ""
    value = values.reshape(-1)[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class TritonPythonModel:
    """Batched cluster ranking with the configured planner engine."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        if args["model_instance_kind"] == "GPU":
            device = f"cuda:{args['model_instance_device_id']}"
        else:
            device = "cpu"
            torch.set_num_threads(int(parameters.get("torch_threads", "1")))
            os.nice(int(parameters.get("cpu_nice", "0")))  # serving preempts CPU inference, not the reverse
        artifact = Path(args["model_repository"]) / args["model_version"] / parameters["artifact_subdir"]
        self.engine = load_planner_engine(parameters["engine"], artifact, device=device)
        self.num_clusters = len(self.engine.descriptions)

    def _context(self, request):
        candidates = _optional(request, CANDIDATES)
        frames = _optional(request, FRAMES)
        thumbnail = _optional(request, THUMBNAIL)
        return PlanningContext(
            item_id=_text(_optional(request, ITEM_ID)),
            title=_text(_optional(request, TITLE)),
            frames=None if frames is None else frames[0],
            thumbnail=None if thumbnail is None else thumbnail[0],
            candidate_cluster_ids=(None if candidates is None else [c.decode("utf-8") for c in candidates.reshape(-1)]),
        )

    def execute(self, requests):
        responses = [None] * len(requests)
        contexts, positions, wanted = [], [], []
        for position, request in enumerate(requests):
            try:
                contexts.append(self._context(request))
            except (MllmError, UnicodeDecodeError, IndexError) as error:
                responses[position] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
                continue
            count = int(_optional(request, NUM_CLUSTERS).reshape(-1)[0])
            wanted.append(min(max(count, 1), self.num_clusters))
            positions.append(position)
        plans = []
        if contexts:
            try:
                plans = self.engine.rank_clusters(contexts, max(wanted))
            except MllmError:
                # One bad context must not fail the others: rank them one by one to isolate it.
                plans = None
        for index, position in enumerate(positions):
            try:
                plan = (
                    plans[index]
                    if plans is not None
                    else self.engine.rank_clusters([contexts[index]], wanted[index])[0]
                )
            except MllmError as error:
                responses[position] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
                continue
            plan = plan[: wanted[index]]
            reasoning = next((cluster.reasoning for cluster in plan if cluster.reasoning), "")
            responses[position] = pb_utils.InferenceResponse(
                [
                    _tensor(CLUSTER_IDS, [[c.cluster_id.encode() for c in plan]]),
                    _tensor(SCORES, [[c.score for c in plan]]),
                    _tensor(REASONING, [[reasoning.encode()]]),
                ]
            )
        return responses
