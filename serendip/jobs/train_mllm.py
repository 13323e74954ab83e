"""``python -m serendip.jobs.train_mllm``: fine-tune the planner MLLM on curated serendipitous SFT examples.

Reads a curation artifact (``python -m serendip.jobs.curate``), fine-tunes a vision-language model to name the
serendipitous cluster of a context video in one of the paper's prompt variants (text_only, video_only,
video_text, video_cot) with 1/2/4/8 sampled frames or the thumbnail, evaluates match rate, recall and
recall@n on the held-out contexts at every checkpoint against popularity and random baselines, and publishes
``<artifacts>/mllm/<version>/``: planner.json, grammar.ebnf, descriptions.json, model/ (Hugging Face
checkpoint), checkpoints/, train_log.jsonl, metrics.json, curves_*.png, manifest.json. Without ``--variant`` it
trains the first of video_cot, video_text, video_only, text_only the curation has rows for (a catalogue without
media: text_only) and says so; a curation of thumbnails only (no videos) trains on the thumbnail whatever
``--frames`` says; a ``--variant`` or ``--frames`` the curation lacks stops before training with the one that
would work. ``--variant video_cot_rag --keywords DIR`` trains MMSRARec's retrieval-augmented prompt: the video_cot
rows, each prompt carrying the keywords of the items its context's viewers engaged with (docs/mllm.md).

Model: by default the embedded tiny Qwen2-VL (~3 M parameters, built from a config, tokenizer trained on the
curated text; nothing is downloaded). ``--base-model PATH`` fine-tunes any local Qwen2-VL-family checkpoint
instead, with LoRA adapters merged into the weights at the end. CPU by default, CUDA when present
(``--device``). See docs/mllm.md.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import transformers

from serendip.artifacts.curation import CURATION_FILES, CURATION_KIND
from serendip.artifacts.keywords import KEYWORDS_KIND, load_related_keywords
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, ArtifactWriter, input_record, resolve_artifact
from serendip.core.cli import run_job
from serendip.core.errors import DataError
from serendip.models.mllm.errors import MllmConfigError, MllmError
from serendip.models.mllm.grammar import DEFAULT_MAX_REASONING_CHARS
from serendip.models.mllm.pipeline import ModelChoice, train_planner
from serendip.models.mllm.prompts import NO_FRAMES, THUMBNAIL, PromptVariant, VisualSetting, frame_mode
from serendip.models.mllm.tiny_config import TinyModelSpec
from serendip.models.mllm.tokenizer import DEFAULT_VOCAB_SIZE
from serendip.models.mllm.training import TrainingConfig
from serendip.models.mllm.vision_inputs import DEFAULT_IMAGE_SIZE

VARIANT_PREFERENCE = (
    PromptVariant.VIDEO_COT,
    PromptVariant.VIDEO_TEXT,
    PromptVariant.VIDEO_ONLY,
    PromptVariant.TEXT_ONLY,
)
"""Variants in the order a run without ``--variant`` tries them (the paper's best first)."""


@dataclass(frozen=True)
class MllmTrainingOptions:
    """Data, model and optimisation options; shared with ``serendip.jobs.mllm_ablations``."""

    curation: Path = DEFAULT_ARTIFACTS_ROOT / CURATION_KIND
    """curation artifact (version or kind dir; LATEST is followed)"""
    heldout_limit: int | None = None
    """evaluate on at most this many held-out examples (None: all)"""
    base_model: Path | None = None
    """local Hugging Face Qwen2-VL-family checkpoint to fine-tune with LoRA (None: the embedded tiny model)"""
    image_size: int = DEFAULT_IMAGE_SIZE
    """frame side in pixels"""
    vocab_size: int = DEFAULT_VOCAB_SIZE
    """tiny model's BPE vocabulary"""
    text_layers: int = TinyModelSpec.text_layers
    """tiny model's text decoder layers"""
    text_hidden: int = TinyModelSpec.text_hidden_size
    """tiny model's text hidden size"""
    text_head_dim: int = TinyModelSpec.text_head_dim
    """64 or 128: TensorRT-LLM's Qwen2-VL kernels expect 128 (see docs/mllm.md)"""
    vision_layers: int = TinyModelSpec.vision_layers
    """tiny model's vision encoder layers"""
    max_reasoning_chars: int = DEFAULT_MAX_REASONING_CHARS
    """bound of the CoT reasoning in the answer grammar"""
    steps: int = TrainingConfig.steps
    """optimiser steps"""
    batch_size: int = TrainingConfig.batch_size
    """examples per step"""
    learning_rate: float | None = None
    """None: 2e-3 for the tiny model, 2e-4 with LoRA"""
    warmup_steps: int = TrainingConfig.warmup_steps
    """linear learning-rate warm-up"""
    checkpoint_every: int = TrainingConfig.checkpoint_every
    """save + evaluate every K steps"""
    keep_checkpoints: int = TrainingConfig.keep_checkpoints
    """checkpoints kept on disk"""
    max_minutes: float | None = 10.0
    """stop training after this wall time, then checkpoint and evaluate (None: no cap)"""
    device: str = "auto"
    """auto (CUDA when present, else CPU), cpu, cuda, cuda:1"""
    lora_rank: int = TrainingConfig.lora_rank
    """LoRA adapter rank (with --base-model)"""
    threads: int | None = None
    """torch CPU threads (None: torch's choice, one per core; 1 is faster when other jobs share the cores)"""
    seed: int = 0
    """initialisation and data order"""
    keywords: Path | None = None
    """keywords artifact (python -m ray_jobs.item_keywords): the related keywords video_cot_rag prompts carry"""
    related_dropout: float = TrainingConfig.related_dropout
    """video_cot_rag: share of training prompts without their related keywords (as for a fresh upload)"""
    quiet: bool = False
    """no progress bars"""

    def related_keywords(self, variant: PromptVariant) -> dict[str, str] | None:
        """Item id -> related keywords from ``keywords`` for a RAG variant (None for the others)."""
        if not variant.uses_related:
            return None
        if self.keywords is None:
            raise MllmConfigError(f"{variant} needs --keywords (a keywords artifact: python -m ray_jobs.item_keywords)")
        return load_related_keywords(resolve_artifact(self.keywords, KEYWORDS_KIND))

    def training_config(self, variant: PromptVariant, visual: VisualSetting) -> TrainingConfig:
        """The TrainingConfig of one run."""
        lora = self.base_model is not None
        return TrainingConfig(
            variant=variant,
            visual=visual,
            steps=self.steps,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate or (2e-4 if lora else 2e-3),
            warmup_steps=self.warmup_steps,
            checkpoint_every=self.checkpoint_every,
            keep_checkpoints=self.keep_checkpoints,
            max_minutes=self.max_minutes,
            seed=self.seed,
            device=self.device,
            lora=lora,
            lora_rank=self.lora_rank,
            related_dropout=self.related_dropout,
        )

    def model_choice(self) -> ModelChoice:
        """The model to fine-tune: the base checkpoint, or the tiny model of these sizes."""
        tiny = TinyModelSpec(
            text_hidden_size=self.text_hidden,
            text_layers=self.text_layers,
            text_head_dim=self.text_head_dim,
            vision_layers=self.vision_layers,
        )
        return ModelChoice(self.base_model, tiny, self.vocab_size, self.image_size, self.max_reasoning_chars)

    def prepare_torch(self) -> None:
        """Quiet transformers' per-save progress bars and apply ``threads``."""
        transformers.utils.logging.disable_progress_bar()  # one progress bar per save_pretrained is noise
        if self.threads:
            torch.set_num_threads(self.threads)


@dataclass(frozen=True)
class TrainMllmJob(MllmTrainingOptions):
    """Options of one fine-tuning run: the prompt, then data, model and optimisation."""

    variant: PromptVariant | None = None
    """prompt variant, paper Fig. 2 (None: the first of video_cot, video_text, video_only, text_only curated), or
    video_cot_rag: MMSRARec's video_cot with the related keywords of --keywords in the prompt"""
    frames: str = "4"
    """video input: 1, 2, 4 or 8 sampled frames, or 'thumbnail'"""
    artifacts: Path = DEFAULT_ARTIFACTS_ROOT
    """artifacts root"""


def run(job: TrainMllmJob) -> Path:
    """Train, evaluate, publish; returns the artifact version directory."""
    job.prepare_torch()
    curation_dir = resolve_artifact(job.curation, CURATION_KIND)
    visual = curated_visual(curation_dir, VisualSetting.parse(job.frames))
    config = job.training_config(supported_variant(curation_dir, job.variant, visual), visual)
    related = job.related_keywords(config.variant)
    choice = job.model_choice()
    parameters = {"training": config.to_dict(), "model": choice.to_dict(), "heldout_limit": job.heldout_limit}
    inputs = {"curation": input_record(curation_dir)}
    if related is not None:  # a RAG variant: job.keywords was given and loaded
        inputs["keywords"] = input_record(resolve_artifact(job.keywords, KEYWORDS_KIND))
    with tempfile.TemporaryDirectory(prefix="train-mllm-") as scratch:
        result = train_planner(
            curation_dir,
            config,
            Path(scratch) / "run",
            choice,
            job.heldout_limit,
            progress=not job.quiet,
            related_keywords=related,
        )
        with ArtifactWriter(
            job.artifacts,
            MLLM_KIND,
            parameters,
            inputs=inputs,
            bulk_dirs=("checkpoints",),
        ) as writer:
            for path in result.run_dir.iterdir():
                shutil.move(str(path), writer.dir / path.name)
            writer.counts.update(result.counts | {"steps": result.summary.steps})
    print(json.dumps({key: result.metrics[key] for key in ("model", "baselines", "training")}, indent=2))
    print(f"published {writer.final_dir}")
    return writer.final_dir


def curated_visual(curation_dir: Path, visual: VisualSetting) -> VisualSetting:
    """``visual``, or the thumbnail when that is the curation's only visual frame mode (a catalogue of images,
    no video: the thumbnail stands in for the sampled frames), with a console line."""
    sft = pd.read_parquet(curation_dir / CURATION_FILES["sft"], columns=["split", "frames"])
    modes = set(sft.loc[(sft["split"] == "train") & (sft["frames"] != NO_FRAMES), "frames"])
    if modes == {THUMBNAIL} and not visual.thumbnail:
        print(f"frames=thumbnail: the curation has no video frames (frames={visual.name} asked), only thumbnails")
        return VisualSetting.parse(THUMBNAIL)
    return visual


def supported_variant(curation_dir: Path, requested: PromptVariant | None, visual: VisualSetting) -> PromptVariant:
    """``requested`` when the curation has training rows for it, else (None requested) the best variant it has."""
    sft = pd.read_parquet(curation_dir / CURATION_FILES["sft"], columns=["split", "variant", "frames"])
    train = sft[sft["split"] == "train"]
    available = set(zip(train["variant"], train["frames"], strict=True))
    usable = [variant for variant in VARIANT_PREFERENCE if (str(variant), frame_mode(variant, visual)) in available]
    if requested is None and usable:
        if usable[0] is not VARIANT_PREFERENCE[0]:
            print(f"variant {usable[0]}: the curation has no {VARIANT_PREFERENCE[0]} rows with frames={visual.name}")
        return usable[0]
    if requested is not None and requested.curated_variant in usable:
        return requested
    other_frames = sorted(frames for variant, frames in available if requested and variant == requested.curated_variant)
    if other_frames:
        proposal = f"use --frames {other_frames[0]} (curated: {', '.join(other_frames)})"
    elif usable:
        proposal = f"use --variant {usable[0]}"
    else:
        proposal = "curate again with the variant and frames to train"
    asked = f"variant={requested}" if requested else "any variant"
    raise MllmConfigError(
        f"{curation_dir} has no training rows for {asked} with frames={visual.name}; {proposal} "
        f"(it has: {', '.join(f'{variant}/{frames}' for variant, frames in sorted(available)) or 'none'})"
    )


def main(argv: list[str] | None = None) -> Path:
    """``run`` with options from the command line."""
    return run_job(run, TrainMllmJob, argv, __doc__, "python -m serendip.jobs.train_mllm", (DataError, MllmError))


if __name__ == "__main__":
    main()
