"""One planner training run from a curation artifact: model, grammar, SFT, held-out metrics, baselines, files.

Shared by ``serendip.jobs.train_mllm`` (one run, published as an ``mllm`` artifact) and ``serendip.jobs.mllm_ablations``
(one run per configuration, into a report directory). Files written into the run directory::

    planner.json  grammar.ebnf  descriptions.json     the serving contract (planner_spec.py)
    model/                                            final weights (LoRA merged) + tokenizer + vision files
    checkpoints/step-NNNNNN/                          the newest checkpoints (save_pretrained)
    train_log.jsonl                                   loss every few steps, held-out metrics per checkpoint
    metrics.json                                      final held-out metrics, baselines, throughput, protocol
    curves_recall.png  curves_match_rate.png          metrics vs training step, baselines dashed
    curves_candidate_recall.png                       recall@1 among the candidates vs the baselines (same footing)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from serendip.artifacts.curation import CurationArtifact, load_curation
from serendip.core.prompts import thought_words
from serendip.models.mllm.batching import PromptEncoder
from serendip.models.mllm.checkpoint import PlannerModel, build_tiny_model, load_model
from serendip.models.mllm.collaborative import save_related_keywords, with_related_prompts
from serendip.models.mllm.errors import MllmConfigError
from serendip.models.mllm.evaluation import (
    HeldoutEvaluator,
    HeldoutItem,
    plot_curves,
    popularity_baseline,
    random_baseline,
)
from serendip.models.mllm.examples import PlanningTask, SftExample, load_sft_examples, planning_task
from serendip.models.mllm.grammar import DEFAULT_MAX_REASONING_CHARS, build_answer_grammar, compile_grammar
from serendip.models.mllm.planner_spec import MODEL_DIR, PlannerSpec
from serendip.models.mllm.prompts import parse_response
from serendip.models.mllm.tiny_config import TinyModelSpec
from serendip.models.mllm.tokenizer import DEFAULT_VOCAB_SIZE
from serendip.models.mllm.training import SftTrainer, TrainingConfig, TrainingSummary, prepare_examples, training_corpus
from serendip.models.mllm.vision_inputs import DEFAULT_IMAGE_SIZE

EVALUATION_PROTOCOL = (
    "held-out context items of the curation split; recall/match rate from unconstrained greedy output, "
    "recall@n from the likelihood ranking of all planning-level descriptions (grammar-constrained CoT); "
    "candidate_recall@n from the same ranking restricted to the context's serendipitous candidates (the siblings "
    "the popularity/random baselines pick among, as serving does): compare it, not recall, with the baselines"
)


@dataclass(frozen=True)
class ModelChoice:
    """Which model to fine-tune: the embedded tiny Qwen2-VL (``base_model`` None) or a local checkpoint."""

    base_model: Path | None = None
    tiny: TinyModelSpec = field(default_factory=TinyModelSpec)
    vocab_size: int = DEFAULT_VOCAB_SIZE
    image_size: int = DEFAULT_IMAGE_SIZE
    max_reasoning_chars: int = DEFAULT_MAX_REASONING_CHARS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        return {
            "base_model": str(self.base_model) if self.base_model else None,
            "tiny": None if self.base_model else self.tiny.to_dict(),
            "vocab_size": None if self.base_model else self.vocab_size,
            "image_size": self.image_size,
            "max_reasoning_chars": self.max_reasoning_chars,
        }


@dataclass
class RunResult:
    """Outcome of :func:`train_planner`."""

    run_dir: Path
    summary: TrainingSummary
    metrics: dict[str, Any]
    counts: dict[str, int]


def _tokenizer_corpus(curation: CurationArtifact, task: PlanningTask) -> list[str]:
    """Train-split prompts and targets of every variant, all titles and all descriptions (variant-independent)."""
    sft = curation.curation.sft
    train_rows = sft[sft["split"] == "train"].drop_duplicates(["variant", "example_id"])
    examples = [
        SftExample(row.example_id, row.context_item_id, row.label_cluster_id, row.prompt, row.target)
        for row in train_rows.itertuples(index=False)
    ]
    titles = curation.curation.examples["title"].dropna().unique().tolist()
    return training_corpus(examples, task.descriptions.values(), titles)


def _candidates_of(task: PlanningTask, context_item_id: str) -> list[str]:
    """The context's serendipitous candidates (what the baselines pick among); empty for an unknown context."""
    cluster = task.context_cluster_of.get(context_item_id)
    return task.serendipitous_candidates.get(cluster, []) if cluster is not None else []


def _planner(choice: ModelChoice, corpus: Callable[[], list[str]], seed: int) -> PlannerModel:
    if choice.base_model is not None:
        return load_model(choice.base_model, image_size=choice.image_size)
    return build_tiny_model(corpus(), choice.tiny, choice.vocab_size, choice.image_size, seed)


def train_planner(
    curation_dir: str | os.PathLike[str],
    config: TrainingConfig,
    run_dir: str | os.PathLike[str],
    choice: ModelChoice | None = None,
    heldout_limit: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    related_keywords: Mapping[str, str] | None = None,
) -> RunResult:
    """Fine-tune on the curated SFT rows of ``config.variant`` / ``config.visual`` and write the run directory.

    ``related_keywords`` (item id -> keywords of its co-engaged items) is required by ``video_cot_rag``, which
    trains on the ``video_cot`` rows re-prompted with it (``collaborative``) and keeps the table in the run.
    """
    choice = choice or ModelChoice()
    related = related_keywords if config.variant.uses_related else None
    if config.variant.uses_related and related is None:
        raise MllmConfigError(f"{config.variant} needs related keywords: pass a keywords artifact (--keywords)")
    if choice.base_model is not None and not config.lora:
        log("note: fine-tuning all weights of a base model; pass lora=True (--lora) for adapters")
    torch.manual_seed(config.seed)
    output = Path(run_dir)
    output.mkdir(parents=True, exist_ok=True)
    curation = load_curation(curation_dir)
    task = planning_task(curation)
    curated = config.variant.curated_variant
    train_examples = load_sft_examples(curation, "train", curated, config.visual, progress=progress)
    heldout_examples = load_sft_examples(
        curation, "heldout", curated, config.visual, limit=heldout_limit, progress=progress
    )
    if related is not None:
        train_examples = with_related_prompts(train_examples, related, config.related_dropout, config.seed)
        heldout_examples = with_related_prompts(heldout_examples, related)
        covered = sum(example.context_item_id in related for example in heldout_examples)
        log(f"related keywords for {covered} of {len(heldout_examples)} held-out contexts")
    planner = _planner(choice, lambda: _tokenizer_corpus(curation, task), config.seed)
    encoder = PromptEncoder(planner.tokenizer, planner.model.config)
    grammar = build_answer_grammar(task.descriptions, task.level, config.variant, choice.max_reasoning_chars)
    compiled = compile_grammar(grammar, planner.tokenizer, planner.vocab_size)
    train_set = prepare_examples(train_examples, planner, encoder, config.variant, config.visual, progress)
    heldout_set = prepare_examples(heldout_examples, planner, encoder, config.variant, config.visual, progress)
    evaluator = HeldoutEvaluator(
        encoder,
        grammar,
        compiled,
        [
            HeldoutItem(
                item.example.context_item_id,
                item.prompt,
                item.example.label_cluster_id,
                tuple(_candidates_of(task, item.example.context_item_id)),
                thought_words(parse_response(grammar.variant, item.example.target).reasoning or ""),
            )
            for item in heldout_set
        ],
    )
    heldout_pairs = [(task.context_cluster_of[ex.context_item_id], ex.label_cluster_id) for ex in heldout_examples]
    train_labels = [example.label_cluster_id for example in train_examples]
    baselines = {
        "popularity": popularity_baseline(train_labels, heldout_pairs, task.serendipitous_candidates),
        "random": random_baseline(heldout_pairs, task.serendipitous_candidates),
    }
    log(
        f"{len(train_set)} train / {len(heldout_set)} held-out examples, {len(grammar.descriptions)} clusters at "
        f"level {task.level}; popularity recall {baselines['popularity']['recall']:.3f}, "
        f"random {baselines['random']['recall']:.3f}"
    )
    summary = SftTrainer(planner, config, train_set, output, evaluator, log, progress).run()
    grammar.save(output)
    visual = config.visual if config.variant.uses_video else None
    PlannerSpec(config.variant, visual, task.level, task.delta, MODEL_DIR).save(output)
    if related is not None:
        save_related_keywords(output, related)
    final = summary.evals[-1] if summary.evals else {}
    metrics = {
        "protocol": EVALUATION_PROTOCOL,
        "variant": str(config.variant),
        "frames": visual.name if visual else None,
        "model": {key: value for key, value in final.items() if key not in ("event", "train_loss")},
        "baselines": baselines,
        "training": {
            "steps": summary.steps,
            "seconds": summary.seconds,
            "steps_per_second": summary.steps_per_second,
            "examples_per_second": summary.examples_per_second,
            "final_loss": summary.final_loss,
            "stopped_early": summary.stopped_early,
            "device": str(summary.device),
        },
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    name = f"{config.variant}/{visual.name if visual else 'text'}"
    for metric in ("recall", "match_rate"):
        plot_curves(
            {name: summary.evals},
            metric,
            output / f"curves_{metric}.png",
            f"held-out {metric.replace('_', ' ')}",
            {f"{key} baseline": value["recall"] for key, value in baselines.items()} if metric == "recall" else None,
        )
    if any("candidate_recall@1" in record for record in summary.evals):
        plot_curves(
            {name: summary.evals},
            "candidate_recall@1",
            output / "curves_candidate_recall.png",
            "held-out recall@1 among the candidates",
            {f"{key} baseline": value["recall@1"] for key, value in baselines.items()},
        )
    counts = {
        "train_examples": len(train_set),
        "heldout_examples": len(heldout_set),
        "clusters": len(grammar.descriptions),
    }
    return RunResult(output, summary, metrics, counts)
