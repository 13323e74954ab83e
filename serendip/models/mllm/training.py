"""Supervised fine-tuning of the planner MLLM: the same loop on CPU (default) or CUDA (when present).

* Loss: next-token cross-entropy on the response tokens only (prompt and padding labelled -100).
* Full fine-tuning for the embedded tiny model; LoRA (peft) on the language model's projections for a
  ``--base-model`` checkpoint, merged into the weights (``merge_and_unload``) for serving.
* Every ``checkpoint_every`` steps (and at the end): a ``save_pretrained`` checkpoint under
  ``checkpoints/step-NNNNNN`` (the newest ``keep_checkpoints`` are kept), then a held-out evaluation.
* ``train_log.jsonl``: one ``{"event": "train", ...}`` record every ``log_every`` steps (loss, learning rate,
  steps/s) and one ``{"event": "eval", ...}`` record per checkpoint.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from tqdm import tqdm

from serendip.models.mllm.batching import EncodedPrompt, PromptEncoder, training_batch
from serendip.models.mllm.checkpoint import PlannerModel, resolve_device, save_model
from serendip.models.mllm.errors import MllmConfigError, TrainingDataError
from serendip.models.mllm.evaluation import HeldoutEvaluator
from serendip.models.mllm.examples import SftExample
from serendip.models.mllm.prompts import PromptVariant, VisualSetting, chat_messages
from serendip.models.mllm.vision_inputs import VisualInput, pixels_to_input

LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
"""LoRA adapts the language model's attention and MLP projections; the vision tower stays frozen."""
TRAIN_LOG = "train_log.jsonl"
CHECKPOINTS_DIR = "checkpoints"


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of one SFT run (all recorded in the artifact manifest)."""

    variant: PromptVariant = PromptVariant.VIDEO_COT
    visual: VisualSetting = field(default_factory=VisualSetting)
    steps: int = 600
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    max_minutes: float | None = None
    seed: int = 0
    device: str = "auto"
    lora: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    related_dropout: float = 0.2
    """video_cot_rag: share of training examples prompted without their related keywords (as a fresh upload)"""

    def __post_init__(self) -> None:
        if not 0 <= self.related_dropout < 1:
            raise MllmConfigError(f"related_dropout must be in [0, 1), got {self.related_dropout}")
        for name in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every", "lora_rank"):
            if getattr(self, name) < 1:
                raise MllmConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise MllmConfigError(f"learning_rate must be > 0, got {self.learning_rate}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        return asdict(self) | {"variant": str(self.variant), "visual": self.visual.name}


@dataclass(frozen=True)
class PreparedExample:
    """An SFT example rendered for one prompt variant: prompt tokens (+ pixels) and response tokens."""

    example: SftExample
    prompt: EncodedPrompt
    response_ids: list[int]


def training_corpus(
    examples: Iterable[SftExample], descriptions: Iterable[str], titles: Iterable[str] = ()
) -> list[str]:
    """Texts the embedded tokenizer is trained on: prompts, targets, cluster descriptions and titles."""
    texts = list(descriptions) + list(titles)
    for example in examples:
        texts += [example.prompt, example.target]
    return texts


def prepare_examples(
    examples: Sequence[SftExample],
    planner: PlannerModel,
    encoder: PromptEncoder,
    variant: PromptVariant,
    visual: VisualSetting,
    progress: bool = False,
) -> list[PreparedExample]:
    """Encode prompts (pixels patchified once per context item) and targets into token ids."""
    if not examples:
        raise TrainingDataError("no SFT examples to prepare")
    visuals: dict[str, VisualInput] = {}
    prepared = []
    for example in tqdm(examples, desc=f"encoding {variant}/{visual.name}", unit="ex", disable=not progress):
        visual_input = None
        if variant.uses_video:
            if example.pixels is None:
                raise TrainingDataError(f"example {example.example_id!r} ({variant}) has no pixels")
            if example.context_item_id not in visuals:
                visuals[example.context_item_id] = pixels_to_input(example.pixels, planner.geometry, visual.thumbnail)
            visual_input = visuals[example.context_item_id]
        messages = chat_messages(example.prompt, visual if variant.uses_video else None)
        prompt = encoder.encode_prompt(messages, visual_input)
        prepared.append(PreparedExample(example, prompt, encoder.encode_response(example.target)))
    return prepared


def apply_lora(model: torch.nn.Module, config: TrainingConfig) -> torch.nn.Module:
    """Wrap ``model`` with LoRA adapters on the language model's projections (everything else frozen)."""
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=LORA_TARGETS,
        bias="none",
    )
    return get_peft_model(model, lora)


def _learning_rate_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class TrainingSummary:
    """What a run did: steps, time, throughput, the eval records, and where the final model is."""

    steps: int
    seconds: float
    steps_per_second: float
    examples_per_second: float
    final_loss: float
    evals: list[dict[str, Any]]
    model_dir: Path
    stopped_early: bool
    device: str


class SftTrainer:
    """Runs the SFT loop for one prepared dataset and writes checkpoints, the log and the final model."""

    def __init__(
        self,
        planner: PlannerModel,
        config: TrainingConfig,
        train_set: Sequence[PreparedExample],
        output_dir: str | Path,
        evaluator: HeldoutEvaluator | None = None,
        log: Callable[[str], None] = print,
        progress: bool = True,
    ) -> None:
        if not train_set:
            raise TrainingDataError("the training set is empty")
        self.planner = planner
        self.config = config
        self.train_set = list(train_set)
        self.output_dir = Path(output_dir)
        self.evaluator = evaluator
        self.log = log
        self.progress = progress
        self.device = resolve_device(config.device)
        self.encoder = PromptEncoder(planner.tokenizer, planner.model.config)
        self.evals: list[dict[str, Any]] = []
        self.last_checkpoint_step = 0

    def _write_log(self, record: dict[str, Any]) -> None:
        with open(self.output_dir / TRAIN_LOG, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _batches(self) -> Iterable[list[PreparedExample]]:
        generator = np.random.default_rng(self.config.seed)
        while True:
            order = generator.permutation(len(self.train_set))
            last_start = max(1, len(order) - self.config.batch_size + 1)  # a set smaller than a batch is one batch
            for start in range(0, last_start, self.config.batch_size):
                yield [self.train_set[index] for index in order[start : start + self.config.batch_size]]

    def _checkpoint(self, model: torch.nn.Module, step: int, loss: float) -> None:
        checkpoints = self.output_dir / CHECKPOINTS_DIR
        target = checkpoints / f"step-{step:06d}"
        model.save_pretrained(target)
        self.last_checkpoint_step = step
        self.planner.tokenizer.save_pretrained(target)
        existing = sorted(path for path in checkpoints.iterdir() if path.name.startswith("step-"))
        for stale in existing[: -self.config.keep_checkpoints]:
            shutil.rmtree(stale)
        if self.evaluator is not None:
            started = time.perf_counter()
            metrics = self.evaluator.evaluate(model)
            model.train()
            record = {"event": "eval", "step": step, "train_loss": loss, **metrics,
                      "eval_seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
            self.evals.append(record)
            self._write_log(record)
            shown = ", ".join(f"{key} {value:.3f}" for key, value in metrics.items() if key != "count")
            self.log(f"step {step}: loss {loss:.4f}, held-out {shown}")

    def run(self) -> TrainingSummary:
        """Train, checkpoint, evaluate; returns the summary (final merged model in ``output_dir/model``)."""
        config = self.config
        self.output_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        model = self.planner.model.to(self.device)
        if config.lora:
            model = apply_lora(model, config)
        model.train()
        parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _learning_rate_factor(step, config.warmup_steps, config.steps)
        )
        deadline = time.perf_counter() + config.max_minutes * 60 if config.max_minutes else math.inf
        started = time.perf_counter()
        train_seconds, window_loss, window_steps, loss_value, step = 0.0, 0.0, 0, math.nan, 0
        batches = self._batches()
        progress = tqdm(
            total=config.steps,
            desc=f"train {config.variant}/{config.visual.name}",
            unit="step",
            disable=not self.progress,
        )
        stopped_early = False
        while step < config.steps:
            if time.perf_counter() > deadline:
                stopped_early = True
                self.log(f"time budget of {config.max_minutes} min reached after {step} steps")
                break
            step_started = time.perf_counter()
            chunk = next(batches)
            batch = training_batch([item.prompt for item in chunk], [item.response_ids for item in chunk],
                                   self.encoder.pad_token_id)  # fmt: skip
            output = model(**batch.model_inputs(self.device))
            output.loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            train_seconds += time.perf_counter() - step_started
            loss_value = float(output.loss.detach())
            window_loss, window_steps = window_loss + loss_value, window_steps + 1
            progress.update(1)
            if step % config.log_every == 0 or step == config.steps:
                mean_loss = window_loss / window_steps
                progress.set_postfix(loss=f"{mean_loss:.4f}")
                self._write_log({"event": "train", "step": step, "loss": round(mean_loss, 5),
                                 "learning_rate": scheduler.get_last_lr()[0],
                                 "steps_per_second": round(step / train_seconds, 3)})  # fmt: skip
                window_loss, window_steps = 0.0, 0
            if step % config.checkpoint_every == 0 and step < config.steps:
                self._checkpoint(model, step, loss_value)
        progress.close()
        if step and step != self.last_checkpoint_step:
            self._checkpoint(model, step, loss_value)
        if config.lora:
            model = model.merge_and_unload()
        model.eval()
        self.planner.model = model
        model_dir = save_model(self.planner, self.output_dir / "model")
        seconds = time.perf_counter() - started
        return TrainingSummary(
            steps=step,
            seconds=round(seconds, 2),
            steps_per_second=round(step / train_seconds, 3) if train_seconds else 0.0,
            examples_per_second=round(step * config.batch_size / train_seconds, 2) if train_seconds else 0.0,
            final_loss=loss_value,
            evals=self.evals,
            model_dir=model_dir,
            stopped_early=stopped_early,
            device=str(self.device),
        )
