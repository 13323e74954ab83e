"""The serving encoder: the last-position-only forward pass and histories cut to their batch's longest one give
the embeddings of the full computation, eagerly, as TorchScript and as a torch.export program."""

from __future__ import annotations

import pytest
import torch

from serendip.artifacts.sasrec import SASRecConfig
from serendip.models.sasrec.export import export_user_encoder, script_user_encoder
from serendip.models.sasrec.model import SASRec

CONFIG = SASRecConfig(num_items=60, hidden=16, layers=2, heads=2, inner=32, max_len=12, dropout=0.0)


@pytest.fixture(scope="module")
def model() -> SASRec:
    torch.manual_seed(7)
    return SASRec(CONFIG).eval()


def short_histories() -> torch.Tensor:
    """Left-padded histories of 5, 3 and 1 items: the first 7 columns are padding in every row."""
    histories = torch.zeros(3, CONFIG.max_len, dtype=torch.int64)
    histories[0, -5:] = torch.tensor([3, 9, 27, 41, 58])
    histories[1, -3:] = torch.tensor([12, 4, 4])
    histories[2, -1] = 33
    return histories


def full_computation(model: SASRec, histories: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.encode(histories)[:, -1]


def test_eval_forward_is_the_last_position_of_the_full_encoding(model: SASRec) -> None:
    histories = short_histories()
    with torch.no_grad():
        torch.testing.assert_close(model(histories), full_computation(model, histories), rtol=1e-5, atol=1e-5)


def test_training_forward_still_runs_every_position(model: SASRec) -> None:
    histories = short_histories()
    model.train()
    try:
        with torch.no_grad():
            torch.testing.assert_close(model(histories), full_computation(model, histories), rtol=1e-5, atol=1e-5)
    finally:
        model.eval()


@pytest.mark.parametrize("kept", [5, 6, CONFIG.max_len])
def test_cut_histories_encode_as_at_full_length(model: SASRec, kept: int) -> None:
    """Dropping leading all-padding columns changes nothing: positions count back from the most recent item."""
    histories = short_histories()
    expected = full_computation(model, histories)
    cut = histories[:, -kept:]
    scripted = script_user_encoder(model)
    exported = export_user_encoder(model).module()
    with torch.no_grad():
        for encoder in (model, scripted, exported):
            torch.testing.assert_close(encoder(cut), expected, rtol=1e-5, atol=1e-5)


def test_cutting_into_a_history_changes_its_embedding(model: SASRec) -> None:
    """The parity above is not vacuous: dropping a real item does change the embedding."""
    histories = short_histories()
    with torch.no_grad():
        assert not torch.allclose(model(histories[:, -4:])[0], full_computation(model, histories)[0], atol=1e-4)
