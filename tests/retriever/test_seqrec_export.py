"""The ``export`` format of seqrec (``build-engines --seqrec-format export``): the AOTInductor package compiled
from the artifact's ``torch.export`` program gives the TorchScript's embeddings to 1e-5, in-process and served by a
real tritonserver. ``slow``: compiling the package takes 15-45 s on CPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from tests.retriever.parity import parity_histories
from triton_models.launcher import TritonServer
from triton_models.seqrec import USER_ENCODER_PACKAGE, write_seqrec_model
from triton_models.specs import HISTORY, SEQREC, USER_EMBEDDING

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def export_repository(tmp_path_factory: pytest.TempPathFactory, trained_sasrec) -> Path:
    """A repository whose seqrec serves the AOTInductor package (compiled here, for CPU)."""
    repository = tmp_path_factory.mktemp("seqrec-export-repository")
    write_seqrec_model(repository, trained_sasrec[2], model_format="export")
    return repository


@pytest.fixture(scope="module")
def export_triton(export_repository: Path) -> Iterator[TritonServer]:
    with TritonServer(export_repository) as server:
        yield server


def test_aoti_package_matches_torchscript(trained_sasrec, export_repository: Path) -> None:
    from torch._inductor import aoti_load_package

    _result, split, artifact = trained_sasrec
    package = aoti_load_package(str(export_repository / SEQREC.name / "1" / USER_ENCODER_PACKAGE))
    scripted = torch.jit.load(str(artifact.user_encoder_path))
    for histories in parity_histories(split, artifact.config):
        with torch.no_grad():
            torch.testing.assert_close(package(histories), scripted(histories), rtol=1e-5, atol=1e-5)


def test_triton_serves_the_export_format_with_torchscript_embeddings(trained_sasrec, export_triton) -> None:
    _result, split, artifact = trained_sasrec
    scripted = torch.jit.load(str(artifact.user_encoder_path))
    with grpcclient.InferenceServerClient(export_triton.grpc_url) as client:
        config = client.get_model_config(SEQREC.name).config
        assert config.parameters["model_format"].string_value == "export"
        for histories in parity_histories(split, artifact.config)[:4]:  # Triton's max batch size is 64
            tensor = grpcclient.InferInput(HISTORY.name, list(histories.shape), "INT64")
            tensor.set_data_from_numpy(histories.numpy())
            served = client.infer(SEQREC.name, [tensor]).as_numpy(USER_EMBEDDING.name)
            with torch.no_grad():
                expected = scripted(histories).numpy()
            np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)
