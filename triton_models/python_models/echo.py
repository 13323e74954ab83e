"""Triton python-backend model that returns its FP32 input unchanged.

Used to check a tritonserver installation end to end and as the raw-Triton baseline in
benchmarks. Triton runs this file as ``model.py`` inside an isolated interpreter.
"""

import os
import site
import sys

# The stub ignores PYTHONPATH: add the project's site directories handed over by the launcher.
_preexisting = list(sys.path)
for _site_dir in filter(None, os.environ.get("SERENDIP_SITE_DIRS", "").split(os.pathsep)):
    site.addsitedir(_site_dir)
sys.path[:] = [p for p in sys.path if p not in _preexisting] + _preexisting

import triton_python_backend_utils as pb_utils  # noqa: E402


class TritonPythonModel:
    """Identity model: OUTPUT0 = INPUT0 for every request of a batch."""

    def execute(self, requests):
        responses = []
        for request in requests:
            values = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", values)]))
        return responses
