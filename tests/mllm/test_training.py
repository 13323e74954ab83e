"""SFT: a few steps train, checkpoint, log and save a model that reloads with AutoModelForImageTextToText."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText

from serendip.models.mllm.batching import IGNORE_INDEX, PromptEncoder, training_batch
from serendip.models.mllm.checkpoint import PlannerModel, load_model, save_model
from serendip.models.mllm.evaluation import HeldoutEvaluator, HeldoutItem
from serendip.models.mllm.grammar import build_answer_grammar, compile_grammar
from serendip.models.mllm.prompts import PromptVariant
from serendip.models.mllm.training import PreparedExample, SftTrainer, TrainingConfig, prepare_examples
from tests.mllm.conftest import TWO_FRAMES, tiny_planner
from tests.mllm.synthetic import synthetic_examples

VARIANT = PromptVariant.VIDEO_COT


def _prepared(planner: PlannerModel, count: int = 12) -> tuple[list[PreparedExample], HeldoutEvaluator]:
    examples, task = synthetic_examples(VARIANT, TWO_FRAMES, count)
    encoder = PromptEncoder(planner.tokenizer, planner.model.config)
    prepared = prepare_examples(examples, planner, encoder, VARIANT, TWO_FRAMES)
    grammar = build_answer_grammar(task.descriptions, 3, VARIANT, max_reasoning_chars=16)
    compiled = compile_grammar(grammar, planner.tokenizer, planner.vocab_size)
    heldout = [HeldoutItem(p.example.context_item_id, p.prompt, p.example.label_cluster_id) for p in prepared[-3:]]
    return prepared[:-3], HeldoutEvaluator(encoder, grammar, compiled, heldout)


def test_loss_is_masked_to_the_response_tokens(untrained_planner: PlannerModel, encoder: PromptEncoder) -> None:
    prepared, _ = _prepared(untrained_planner, 5)
    batch = training_batch([p.prompt for p in prepared[:2]], [p.response_ids for p in prepared[:2]], 0)
    for row, item in enumerate(prepared[:2]):
        labels = batch.labels[row].tolist()
        prompt_length, response_length = len(item.prompt.input_ids), len(item.response_ids)
        assert set(labels[:prompt_length]) == {IGNORE_INDEX}
        assert labels[prompt_length : prompt_length + response_length] == item.response_ids
        assert set(labels[prompt_length + response_length :]) <= {IGNORE_INDEX}
        assert item.response_ids[-1] == encoder.eos_token_id


def test_few_steps_checkpoint_log_and_reload(tmp_path: Path) -> None:
    planner = tiny_planner()
    train_set, evaluator = _prepared(planner)
    config = TrainingConfig(
        variant=VARIANT, visual=TWO_FRAMES, steps=3, batch_size=4, checkpoint_every=2, log_every=1, device="cpu"
    )
    summary = SftTrainer(planner, config, train_set, tmp_path, evaluator, progress=False).run()
    assert summary.steps == 3 and summary.steps_per_second > 0
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "train"] == [1, 2, 3]
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [2, 3] and all(0 <= r["recall@3"] <= 1 for r in evals)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records if r["event"] == "train")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000002", "step-000003"]

    reloaded = AutoModelForImageTextToText.from_pretrained(summary.model_dir).eval()
    batch = training_batch([train_set[0].prompt], [train_set[0].response_ids], 0)
    with torch.no_grad():
        expected = planner.model(**batch.model_inputs("cpu")).logits
        actual = reloaded(**batch.model_inputs("cpu")).logits
    torch.testing.assert_close(actual, expected)
    assert load_model(summary.model_dir).geometry == planner.geometry


def test_lora_fine_tunes_a_local_base_checkpoint_and_merges(tmp_path: Path) -> None:
    save_model(tiny_planner(seed=1), tmp_path / "base")
    planner = load_model(tmp_path / "base")
    train_set, _ = _prepared(planner)
    config = TrainingConfig(
        variant=VARIANT, visual=TWO_FRAMES, steps=2, batch_size=4, learning_rate=1e-2, lora=True, lora_rank=4,
        checkpoint_every=2, device="cpu",
    )  # fmt: skip
    summary = SftTrainer(planner, config, train_set, tmp_path / "run", progress=False).run()
    merged = load_file(summary.model_dir / "model.safetensors")
    base = load_file(tmp_path / "base" / "model.safetensors")
    assert not any("lora" in name for name in merged)
    assert merged.keys() == base.keys()
    query = "model.layers.0.self_attn.q_proj.weight"  # saved in the released Qwen2-VL key layout
    assert not torch.equal(merged[query], base[query])
    vision_weights = [name for name in base if name.startswith("visual.")]
    assert vision_weights and all(torch.equal(merged[name], base[name]) for name in vision_weights)
    assert (tmp_path / "run" / "checkpoints" / "step-000002" / "adapter_config.json").is_file()
    AutoModelForImageTextToText.from_pretrained(summary.model_dir)
