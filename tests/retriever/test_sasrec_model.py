"""SASRec learns the chain world, beats popularity, and its TorchScript export equals eager."""

from __future__ import annotations

import numpy as np
import torch

from serendip.models.sasrec.export import script_user_encoder
from serendip.models.sasrec.ranking_metrics import evaluate, popularity_scores, recall_ndcg_at_k, target_ranks
from serendip.models.sasrec.sequences import EvaluationCase, history_tensor, leave_last_out
from serendip.models.sasrec.training import score_with
from tests.retriever.parity import parity_histories


def test_target_ranks_mask_history_and_padding() -> None:
    scores = np.array([[9.0, 1.0, 5.0, 3.0, 4.0]])  # column 0 is padding
    # item 2 has the top score but is in the history, so target 4 ranks first after masking.
    assert target_ranks(scores, [EvaluationCase(history=[2], target=4)]).tolist() == [1]
    assert target_ranks(scores, [EvaluationCase(history=[], target=4)]).tolist() == [2]


def test_recall_and_ndcg_by_hand() -> None:
    metrics = recall_ndcg_at_k(np.array([1, 3, 11]), k=10)
    assert metrics["recall@10"] == 2 / 3
    assert np.isclose(metrics["ndcg@10"], (1.0 + 1.0 / np.log2(4.0)) / 3)


def test_leave_last_out_holds_out_the_last_two_items() -> None:
    split = leave_last_out([[1, 2, 3, 4], [5, 6]])
    assert split.train == [[1, 2], [5, 6]]
    assert split.valid == [EvaluationCase([1, 2], 3)]
    assert split.test == [EvaluationCase([1, 2, 3], 4)]


def test_sasrec_beats_popularity_on_the_chain_world(trained_sasrec) -> None:
    result, split, artifact = trained_sasrec
    popularity = popularity_scores(split.train, len(artifact.vocabulary))
    popular = evaluate(lambda histories: np.tile(popularity, (len(histories), 1)), split.test)
    learned = evaluate(score_with(result.model), split.test)
    assert learned["recall@10"] >= 0.9
    assert learned["recall@10"] >= 2 * popular["recall@10"]


def test_torchscript_export_matches_eager(trained_sasrec) -> None:
    result, split, artifact = trained_sasrec
    histories = history_tensor([case.history for case in split.test[:16]] + [[], [3]], artifact.config.max_len)
    with torch.no_grad():
        eager = result.model(histories)
    exported = torch.jit.load(str(artifact.user_encoder_path))
    with torch.no_grad():
        torch.testing.assert_close(exported(histories), eager, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(script_user_encoder(result.model)(histories), eager, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(artifact.item_embeddings, result.model.item_table().numpy())


def test_torch_export_program_matches_torchscript(trained_sasrec) -> None:
    """The artifact's ExportedProgram (run eagerly) gives the TorchScript's embeddings, batch size dynamic."""
    _result, split, artifact = trained_sasrec
    scripted = torch.jit.load(str(artifact.user_encoder_path))
    exported = torch.export.load(str(artifact.exported_user_encoder_path)).module()
    for histories in parity_histories(split, artifact.config):
        with torch.no_grad():
            torch.testing.assert_close(exported(histories), scripted(histories), rtol=1e-5, atol=1e-5)
