"""Export a trained SASRec for serving: TorchScript user encoder + item table as .npy (never pickled).

Layout of a ``sasrec`` artifact version directory:

- ``user_encoder.pt``  TorchScript (scripted, frozen): history [B, max_len] int64 -> user embedding [B, D]
- ``item_embeddings.npy``  float32 [N + 1, D]; row 0 is padding
- ``item_ids.json``  catalogue id of model index i at position i - 1
- ``popularity.npy``  float64 [N + 1] training counts (cold-start ranking)
- ``model_config.json``  SASRecConfig fields
- ``metrics.json``, ``training_log.jsonl``, ``manifest.json``
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from serendip.models.sasrec.model import SASRec, SASRecConfig
from serendip.models.sasrec.sequences import ItemVocabulary

USER_ENCODER = "user_encoder.pt"
ITEM_EMBEDDINGS = "item_embeddings.npy"
ITEM_IDS = "item_ids.json"
POPULARITY = "popularity.npy"
MODEL_CONFIG = "model_config.json"


def script_user_encoder(model: SASRec) -> torch.jit.ScriptModule:
    """Scripted, frozen, inference-optimised copy of ``model`` in eval mode."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))


def write_sasrec_files(
    directory: Path, model: SASRec, config: SASRecConfig, vocabulary: ItemVocabulary, popularity: np.ndarray
) -> None:
    """Write the serving files of a trained model into ``directory``."""
    script_user_encoder(model).save(str(directory / USER_ENCODER))
    np.save(directory / ITEM_EMBEDDINGS, model.item_table().detach().numpy().astype(np.float32), allow_pickle=False)
    np.save(directory / POPULARITY, popularity, allow_pickle=False)
    vocabulary.save(directory / ITEM_IDS)
    (directory / MODEL_CONFIG).write_text(json.dumps(config.to_dict(), indent=2))


@dataclass
class SASRecArtifact:
    """The serving files of one ``sasrec`` artifact version, loaded."""

    directory: Path
    config: SASRecConfig
    vocabulary: ItemVocabulary
    item_embeddings: np.ndarray
    popularity: np.ndarray

    @classmethod
    def load(cls, directory: Path) -> SASRecArtifact:
        """Read everything except the TorchScript file (Triton loads that)."""
        directory = Path(directory)
        return cls(
            directory=directory,
            config=SASRecConfig(**json.loads((directory / MODEL_CONFIG).read_text())),
            vocabulary=ItemVocabulary.load(directory / ITEM_IDS),
            item_embeddings=np.load(directory / ITEM_EMBEDDINGS, allow_pickle=False),
            popularity=np.load(directory / POPULARITY, allow_pickle=False),
        )

    @property
    def user_encoder_path(self) -> Path:
        """The TorchScript file."""
        return self.directory / USER_ENCODER

    @property
    def version(self) -> str:
        """The artifact version (directory name)."""
        return self.directory.name
