"""Sampled softmax: the loss choice, the negative sampler, the logQ-corrected loss, deterministic training, and the
sparse item-table updates of large catalogues."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from serendip.artifacts.sasrec import ItemVocabulary, SASRecConfig
from serendip.models.sasrec import training
from serendip.models.sasrec.export import export_user_encoder, script_user_encoder
from serendip.models.sasrec.losses import (
    PROPOSAL_EXPONENT,
    SAMPLED_SOFTMAX_MIN_ITEMS,
    NegativeSampler,
    resolve_loss,
    sampled_softmax_loss,
)
from serendip.models.sasrec.model import SASRec
from serendip.models.sasrec.sequences import history_tensor, leave_last_out, positive_sequences
from serendip.models.sasrec.training import TrainingOptions, train_sasrec, uses_sparse_items
from tests.retriever.chain_world import chain_interactions


def test_auto_samples_only_above_the_threshold() -> None:
    assert resolve_loss("auto", SAMPLED_SOFTMAX_MIN_ITEMS) == "full"
    assert resolve_loss("auto", SAMPLED_SOFTMAX_MIN_ITEMS + 1) == "sampled"
    assert resolve_loss("full", 10**6) == "full" and resolve_loss("sampled", 10) == "sampled"
    with pytest.raises(ValueError, match="loss must be"):
        resolve_loss("partial", 10)  # type: ignore[arg-type]


def test_sampler_draws_items_by_smoothed_popularity_under_its_seed() -> None:
    counts = np.array([0.0, 1000.0, 0.0, 10.0, 0.0])  # index 0 is padding
    sampler = NegativeSampler(counts, num_negatives=20_000, seed=3)
    draws = sampler.sample()
    assert draws.min() >= 1 and draws.max() <= 4
    proposal = (counts[1:] + 1.0) ** PROPOSAL_EXPONENT
    proposal /= proposal.sum()
    frequencies = np.bincount(draws.numpy(), minlength=5)[1:] / len(draws)
    np.testing.assert_allclose(frequencies, proposal, atol=0.01)
    np.testing.assert_allclose(
        sampler.log_expected_count(torch.tensor([1, 4])).numpy(), np.log(20_000 * proposal[[0, 3]]), rtol=1e-6
    )
    assert torch.equal(NegativeSampler(counts, 20_000, seed=3).sample(), draws)


def test_loss_is_the_logq_corrected_softmax_over_target_and_shared_negatives() -> None:
    torch.manual_seed(0)
    table = torch.randn(6, 4)
    states = torch.randn(1, 3, 4)
    targets = torch.tensor([[0, 2, 5]])  # the padding position is ignored
    sampler = NegativeSampler(np.array([0.0, 5, 1, 0, 2, 9]), num_negatives=3, seed=0)
    negatives = torch.tensor([5, 1, 3])
    sampler.sample = lambda: negatives  # type: ignore[method-assign]
    log_q = sampler.log_expected_count

    expected = []
    for position, target in ((1, 2), (2, 5)):
        logits = [states[0, position] @ table[target] - log_q(torch.tensor(target))]
        logits += [states[0, position] @ table[n] - log_q(n) for n in negatives if n != target]  # hit masked
        expected.append(-F.log_softmax(torch.stack(logits), dim=0)[0])
    loss = sampled_softmax_loss(states, targets, table, sampler)
    torch.testing.assert_close(loss, torch.stack(expected).mean())


def _chain_split():
    vocabulary = ItemVocabulary([f"i{i:02d}" for i in range(40)])
    return leave_last_out(positive_sequences(chain_interactions(num_users=120), vocabulary, min_satisfaction=0.5))


CHAIN_CONFIG = SASRecConfig(num_items=40, hidden=16, layers=1, heads=1, inner=32, max_len=12, dropout=0.0)


def _train_chain_twice() -> training.TrainingResult:
    """Sampled-softmax training on the chain, twice with one seed; asserts the runs are identical, returns one."""
    split = _chain_split()
    options = TrainingOptions(
        epochs=4, batch_size=32, learning_rate=1e-2, eval_every=2, loss="sampled", num_negatives=8, seed=5
    )
    first = train_sasrec(split, CHAIN_CONFIG, options, show_progress=False)
    second = train_sasrec(split, CHAIN_CONFIG, options, show_progress=False)
    for name, tensor in first.model.state_dict().items():
        torch.testing.assert_close(tensor, second.model.state_dict()[name], rtol=0, atol=0)
    assert [e["loss"] for e in first.log] == [e["loss"] for e in second.log]
    return first


def test_sampled_training_is_deterministic_and_learns_the_chain() -> None:
    first = _train_chain_twice()
    assert first.loss == "sampled"
    assert all(entry["train_seconds"] > 0 for entry in first.log)
    assert first.log[-1]["valid_recall@10"] > 0.5  # popularity is near 10/40 on this uniform chain


def test_sparse_item_updates_only_above_the_threshold_and_only_with_sampled_softmax() -> None:
    threshold = training.SPARSE_ITEMS_MIN_ITEMS
    assert threshold == SAMPLED_SOFTMAX_MIN_ITEMS
    assert uses_sparse_items("sampled", threshold + 1)
    assert not uses_sparse_items("sampled", threshold) and not uses_sparse_items("full", 10 * threshold)


def test_sparse_steps_match_the_dense_first_step_and_update_only_their_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    config = SASRecConfig(num_items=40, hidden=16, layers=1, heads=1, inner=32, max_len=6, dropout=0.0)
    torch.manual_seed(0)
    sparse_model = SASRec(config)
    dense_model = copy.deepcopy(sparse_model)
    sampler = NegativeSampler(np.ones(41), num_negatives=4, seed=0)
    sampler.sample = lambda: torch.tensor([30, 31, 32, 33])  # type: ignore[method-assign]
    options = TrainingOptions(learning_rate=1e-2)
    monkeypatch.setattr(training, "SPARSE_ITEMS_MIN_ITEMS", 39)
    sparse_step = training.training_step(sparse_model, "sampled", options, sampler)
    monkeypatch.setattr(training, "SPARSE_ITEMS_MIN_ITEMS", 40)
    dense_step = training.training_step(dense_model, "sampled", options, sampler)
    assert sparse_model.item_embedding.sparse and not dense_model.item_embedding.sparse

    inputs = torch.tensor([[0, 0, 1, 2, 3, 4], [0, 5, 6, 7, 8, 9]])
    targets = torch.tensor([[0, 0, 2, 3, 4, 10], [0, 6, 7, 8, 9, 11]])
    before = sparse_model.item_table().detach().clone()
    assert sparse_step(inputs, targets) == pytest.approx(dense_step(inputs, targets), abs=1e-6)
    assert sparse_model.item_embedding.weight.grad.is_sparse
    for name, tensor in sparse_model.state_dict().items():  # Adam's first step, lr g / (|g| + eps), lazy or not
        torch.testing.assert_close(tensor, dense_model.state_dict()[name], rtol=0, atol=1e-4)  # lr: 1e-2
    changed = (sparse_model.item_table().detach() != before).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [*range(1, 12), 30, 31, 32, 33]

    after_first = sparse_model.item_table().detach().clone()
    sparse_step(torch.tensor([[0, 0, 0, 0, 12, 13]]), torch.tensor([[0, 0, 0, 0, 13, 14]]))
    changed = (sparse_model.item_table().detach() != after_first).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [12, 13, 14, 30, 31, 32, 33]  # lazy: no momentum


def test_sparse_training_is_deterministic_learns_the_chain_and_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "SPARSE_ITEMS_MIN_ITEMS", 10)
    first = _train_chain_twice()
    assert first.log[-1]["valid_recall@10"] > 0.5
    model = first.model
    assert not model.item_embedding.sparse and not model.training  # an ordinary SASRec again
    histories = history_tensor([[1, 2, 3], [7]], CHAIN_CONFIG.max_len)
    with torch.no_grad():
        expected = model(histories)
        torch.testing.assert_close(script_user_encoder(copy.deepcopy(model))(histories), expected)
        torch.testing.assert_close(export_user_encoder(copy.deepcopy(model)).module()(histories), expected)
