"""The SASRec user encoder on CUDA (``gpu``: skipped where no CUDA device exists): same embeddings as on CPU."""

from __future__ import annotations

import pytest
import torch

from serendip.models.sasrec.sequences import history_tensor

pytestmark = pytest.mark.gpu


def test_torchscript_user_encoder_on_cuda_matches_cpu(trained_sasrec) -> None:
    _result, split, artifact = trained_sasrec
    histories = history_tensor([case.history for case in split.test[:32]] + [[], [3]], artifact.config.max_len)
    encoder = torch.jit.load(str(artifact.user_encoder_path))
    with torch.no_grad():
        on_cpu = encoder(histories)
        on_cuda = torch.jit.load(str(artifact.user_encoder_path), map_location="cuda")(histories.cuda())
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-4, atol=1e-4)
