"""Export a trained SASRec into a ``sasrec`` artifact: the TorchScript user encoder plus the serving tables
(layout: ``serendip.artifacts.sasrec``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from serendip.artifacts.sasrec import USER_ENCODER, ItemVocabulary, SASRecConfig, write_sasrec_tables
from serendip.models.sasrec.model import SASRec


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
    item_embeddings = model.item_table().detach().numpy().astype(np.float32)
    write_sasrec_tables(directory, config, vocabulary, item_embeddings, popularity)
