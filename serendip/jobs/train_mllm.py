"""``python -m serendip.jobs.train_mllm``: fine-tune the planner MLLM on curated serendipitous SFT examples.

Reads a curation artifact (``python -m serendip.jobs.curate``), fine-tunes a vision-language model to name the
serendipitous cluster of a context video in one of the paper's prompt variants (text_only, video_only,
video_text, video_cot) with 1/2/4/8 sampled frames or the thumbnail, evaluates match rate, recall and
recall@n on the held-out contexts at every checkpoint against popularity and random baselines, and publishes
``<artifacts>/mllm/<version>/``: planner.json, grammar.ebnf, descriptions.json, model/ (Hugging Face
checkpoint), checkpoints/, train_log.jsonl, metrics.json, curves_*.png, manifest.json.

Model: by default the embedded tiny Qwen2-VL (~3 M parameters, built from a config, tokenizer trained on the
curated text; nothing is downloaded). ``--base-model PATH`` fine-tunes any local Qwen2-VL-family checkpoint
instead, with LoRA adapters merged into the weights at the end. CPU by default, CUDA when present
(``--device``). See docs/mllm.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch
import transformers

from serendip.artifacts.curation import CURATION_KIND
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, ArtifactWriter, input_record, resolve_artifact
from serendip.models.mllm.grammar import DEFAULT_MAX_REASONING_CHARS
from serendip.models.mllm.pipeline import ModelChoice, train_planner
from serendip.models.mllm.prompts import PromptVariant, VisualSetting
from serendip.models.mllm.tiny_config import TinyModelSpec
from serendip.models.mllm.tokenizer import DEFAULT_VOCAB_SIZE
from serendip.models.mllm.training import TrainingConfig
from serendip.models.mllm.vision_inputs import DEFAULT_IMAGE_SIZE


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``serendip.jobs.mllm_ablations``: data, model and optimisation."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--curation",
        type=Path,
        default=DEFAULT_ARTIFACTS_ROOT / CURATION_KIND,
        help="curation artifact (version or kind dir; LATEST is followed) (default: %(default)s)",
    )
    data.add_argument("--heldout-limit", type=int, default=None, help="evaluate on at most this many held-out examples")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--base-model",
        type=Path,
        default=None,
        help="local Hugging Face Qwen2-VL-family checkpoint to fine-tune with LoRA (default: the embedded tiny "
        "model, built from a config)",
    )
    model.add_argument(
        "--image-size", type=int, default=DEFAULT_IMAGE_SIZE, help="frame side in pixels (default: %(default)s)"
    )
    model.add_argument(
        "--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE, help="tiny model's BPE vocabulary (default: %(default)s)"
    )
    model.add_argument("--text-layers", type=int, default=TinyModelSpec.text_layers)
    model.add_argument("--text-hidden", type=int, default=TinyModelSpec.text_hidden_size)
    model.add_argument(
        "--text-head-dim",
        type=int,
        default=TinyModelSpec.text_head_dim,
        help="64 (default) or 128: TensorRT-LLM's Qwen2-VL kernels expect 128 (see docs/mllm.md)",
    )
    model.add_argument("--vision-layers", type=int, default=TinyModelSpec.vision_layers)
    model.add_argument(
        "--max-reasoning-chars",
        type=int,
        default=DEFAULT_MAX_REASONING_CHARS,
        help="bound of the CoT reasoning in the answer grammar (default: %(default)s)",
    )
    training = parser.add_argument_group("training")
    training.add_argument("--steps", type=int, default=TrainingConfig.steps, help="default: %(default)s")
    training.add_argument("--batch-size", type=int, default=TrainingConfig.batch_size, help="default: %(default)s")
    training.add_argument(
        "--learning-rate", type=float, default=None, help="default: 2e-3 for the tiny model, 2e-4 with LoRA"
    )
    training.add_argument("--warmup-steps", type=int, default=TrainingConfig.warmup_steps)
    training.add_argument(
        "--checkpoint-every",
        type=int,
        default=TrainingConfig.checkpoint_every,
        help="save + evaluate every K steps (default: %(default)s)",
    )
    training.add_argument("--keep-checkpoints", type=int, default=TrainingConfig.keep_checkpoints)
    training.add_argument(
        "--max-minutes",
        type=float,
        default=10.0,
        help="stop training after this wall time, then checkpoint and evaluate (default: %(default)s)",
    )
    training.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:1")
    training.add_argument("--lora-rank", type=int, default=TrainingConfig.lora_rank)
    training.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice, one per core; 1 is faster when other jobs share the cores)",
    )
    training.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def training_config(args: argparse.Namespace, variant: PromptVariant, visual: VisualSetting) -> TrainingConfig:
    """A TrainingConfig from parsed options."""
    lora = args.base_model is not None
    return TrainingConfig(
        variant=variant,
        visual=visual,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate or (2e-4 if lora else 2e-3),
        warmup_steps=args.warmup_steps,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        max_minutes=args.max_minutes,
        seed=args.seed,
        device=args.device,
        lora=lora,
        lora_rank=args.lora_rank,
    )


def model_choice(args: argparse.Namespace) -> ModelChoice:
    """A ModelChoice from parsed options."""
    tiny = TinyModelSpec(
        text_hidden_size=args.text_hidden,
        text_layers=args.text_layers,
        text_head_dim=args.text_head_dim,
        vision_layers=args.vision_layers,
    )
    return ModelChoice(args.base_model, tiny, args.vocab_size, args.image_size, args.max_reasoning_chars)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m serendip.jobs.train_mllm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prompt = parser.add_argument_group("prompt")
    prompt.add_argument(
        "--variant",
        choices=[str(variant) for variant in PromptVariant],
        default=str(PromptVariant.VIDEO_COT),
        help="prompt variant, paper Fig. 2 (default: %(default)s)",
    )
    prompt.add_argument(
        "--frames", default="4", help="video input: 1, 2, 4 or 8 sampled frames, or 'thumbnail' (default: %(default)s)"
    )
    add_training_arguments(parser)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS_ROOT, help="default: %(default)s")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    """Train, evaluate, publish; returns the artifact version directory."""
    args = parse_args(argv)
    transformers.utils.logging.disable_progress_bar()  # one progress bar per save_pretrained is noise
    if args.threads:
        torch.set_num_threads(args.threads)
    curation_dir = resolve_artifact(args.curation, CURATION_KIND)
    config = training_config(args, PromptVariant(args.variant), VisualSetting.parse(args.frames))
    choice = model_choice(args)
    parameters = {"training": config.to_dict(), "model": choice.to_dict(), "heldout_limit": args.heldout_limit}
    with tempfile.TemporaryDirectory(prefix="train-mllm-") as scratch:
        result = train_planner(
            curation_dir, config, Path(scratch) / "run", choice, args.heldout_limit, progress=not args.quiet
        )
        with ArtifactWriter(
            args.artifacts,
            MLLM_KIND,
            parameters,
            inputs={"curation": input_record(curation_dir)},
            bulk_dirs=("checkpoints",),
        ) as writer:
            for path in result.run_dir.iterdir():
                shutil.move(str(path), writer.dir / path.name)
            writer.counts.update(result.counts | {"steps": result.summary.steps})
    print(json.dumps({key: result.metrics[key] for key in ("model", "baselines", "training")}, indent=2))
    print(f"published {writer.final_dir}")
    return writer.final_dir


if __name__ == "__main__":
    main()
