"""Triton python-backend model running the SASRec user encoder.

HISTORY [B, max_len] int64 (left-padded item indices) -> USER_EMBEDDING [B, hidden] float32.
Requests gathered by dynamic batching are run as one forward pass. Runs on the instance's GPU when
the instance group is KIND_GPU, else on CPU with ``torch_threads`` threads.

Config parameters: ``model_format`` ``torchscript`` (``torch.jit.load``) or ``export`` (an AOTInductor package of
the ``torch.export`` program, ``torch._inductor.aoti_load_package``, compiled for this instance kind's device),
``model_file`` the file in the version directory, ``trim_histories`` ``true`` when the encoder takes a batch cut to
its longest history (positions counted from the most recent item): the leading columns that are padding in every
history of a batch are then dropped before the forward pass, which costs in proportion to the length.
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

from triton_models.specs import HISTORY, USER_EMBEDDING  # noqa: E402


class TritonPythonModel:
    """Batched user-embedding inference."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        if args["model_instance_kind"] == "GPU":
            self.device = torch.device(f"cuda:{args['model_instance_device_id']}")
        else:
            self.device = torch.device("cpu")
            torch.set_num_threads(int(parameters.get("torch_threads", "1")))
        model_path = Path(args["model_repository"]) / args["model_version"] / parameters["model_file"]
        self.trim_histories = parameters.get("trim_histories", "false") == "true"
        model_format = parameters.get("model_format", "torchscript")
        if model_format == "torchscript":
            self.encoder = torch.jit.load(str(model_path), map_location=self.device)
            self.encoder.eval()
        elif model_format == "export":
            from torch._inductor import aoti_load_package

            device_index = self.device.index if self.device.type == "cuda" else -1
            self.encoder = aoti_load_package(str(model_path), device_index=device_index)
        else:
            raise ValueError(f"unknown seqrec model_format {model_format!r} (torchscript or export)")

    def execute(self, requests):
        histories = [pb_utils.get_input_tensor_by_name(r, HISTORY.name).as_numpy() for r in requests]
        batch = np.concatenate(histories)
        if self.trim_histories:
            batch = without_shared_padding(batch)
        with torch.no_grad():
            batch = torch.from_numpy(batch).to(self.device)
            users = self.encoder(batch).float().cpu().numpy()
        bounds = np.cumsum([0] + [len(h) for h in histories])
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor(USER_EMBEDDING.name, users[start:end])])
            for start, end in zip(bounds[:-1], bounds[1:], strict=True)
        ]


def without_shared_padding(histories: np.ndarray) -> np.ndarray:
    """``histories`` [B, L] without the leading columns that are padding (0) in every row (at least one kept)."""
    used = np.flatnonzero(histories.any(axis=0))
    return np.ascontiguousarray(histories[:, used[0] if used.size else -1 :])
