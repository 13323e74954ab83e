"""``planner.json``: how a trained planner model is prompted and what it plans over.

An MLLM artifact directory (``artifacts/mllm/<version>/``) is self-describing for every engine::

    planner.json          this spec: prompt variant, frame setting, planning level l and δ, model subdirectory
    grammar.ebnf          the answer grammar (grammar.py)
    descriptions.json     cluster id <-> description, in grammar order
    model/                Hugging Face checkpoint (merged weights), tokenizer, vision.json, preprocessor_config.json
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serendip.artifacts.mllm import MODEL_DIR, PLANNER_FILE
from serendip.models.mllm.errors import ModelArtifactError
from serendip.models.mllm.prompts import PromptVariant, VisualSetting

PLANNER_FORMAT = "serendip.mllm.planner/v1"


@dataclass(frozen=True)
class PlannerSpec:
    """Prompting and planning parameters of a trained planner model."""

    variant: PromptVariant
    visual: VisualSetting | None
    level: int
    delta: int
    model_dir: str = MODEL_DIR

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the content of ``planner.json``)."""
        return {
            "format": PLANNER_FORMAT,
            "variant": str(self.variant),
            "frames": self.visual.name if self.visual is not None else None,
            "level": self.level,
            "delta": self.delta,
            "model_dir": self.model_dir,
        }

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``planner.json`` into ``directory``."""
        (Path(directory) / PLANNER_FILE).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> PlannerSpec:
        """Read ``planner.json`` from an MLLM artifact directory."""
        path = Path(directory) / PLANNER_FILE
        if not path.is_file():
            raise ModelArtifactError(f"{directory} is not an MLLM artifact (no {PLANNER_FILE})")
        document = json.loads(path.read_text())
        if document.get("format") != PLANNER_FORMAT:
            raise ModelArtifactError(f"{path}: format {document.get('format')!r}, expected {PLANNER_FORMAT!r}")
        frames = document.get("frames")
        return cls(
            variant=PromptVariant(document["variant"]),
            visual=VisualSetting.parse(frames) if frames else None,
            level=int(document["level"]),
            delta=int(document["delta"]),
            model_dir=document.get("model_dir", MODEL_DIR),
        )
