"""Export a trained SASRec into a ``sasrec`` artifact: the user encoder as TorchScript and as a ``torch.export``
ExportedProgram, plus the serving tables (layout: ``serendip.artifacts.sasrec``); and compile that ExportedProgram
into an AOTInductor package for one device (``build-engines --seqrec-format export``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from serendip.artifacts.sasrec import (
    EXPORTED_USER_ENCODER,
    USER_ENCODER,
    ItemVocabulary,
    SASRecConfig,
    write_sasrec_tables,
)
from serendip.models.sasrec.model import SASRec


def _inference_copy_of(model: SASRec) -> SASRec:
    """``model`` itself, switched to eval mode with gradients off."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def script_user_encoder(model: SASRec) -> torch.jit.ScriptModule:
    """Scripted, frozen, inference-optimised copy of ``model`` in eval mode."""
    return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(_inference_copy_of(model))))


def export_user_encoder(model: SASRec) -> torch.export.ExportedProgram:
    """``model`` in eval mode as an ExportedProgram: history [batch, max_len] int64 -> user embedding [batch, D].

    Both dimensions are dynamic: any batch size, and any length up to ``max_len`` (Triton's config fixes the
    length at ``max_len``; the serving model may cut a batch to its longest history). Traced with a batch of 2 and
    the full length, so neither size is specialised to 1.
    """
    model = _inference_copy_of(model)
    sample = torch.zeros(2, model.max_len, dtype=torch.int64)
    sample[:, -1] = 1
    batch = torch.export.Dim("batch", min=1)
    length = torch.export.Dim("length", min=1, max=model.max_len)
    with torch.no_grad():
        return torch.export.export(model, (sample,), dynamic_shapes={"history": {0: batch, 1: length}})


def compile_user_encoder(exported: Path, package: Path, device: str = "cpu") -> Path:
    """Compile the ExportedProgram file ``exported`` with AOTInductor into the ``.pt2`` package ``package`` for
    ``device`` ("cpu" or "cuda"; needs a C++ compiler, and CUDA for "cuda"). Load it with
    ``torch._inductor.aoti_load_package``. Tens of seconds on CPU."""
    from torch._inductor import aoti_compile_and_package  # seconds to import: only where a package is compiled
    from torch.export.passes import move_to_device_pass

    program = torch.export.load(str(exported))
    if device != "cpu":
        if not torch.cuda.is_available():
            raise RuntimeError(f"compiling the user encoder for {device} needs a CUDA device on this machine")
        program = move_to_device_pass(program, device)
    with torch.no_grad():
        return Path(aoti_compile_and_package(program, package_path=str(package)))


def write_sasrec_files(
    directory: Path, model: SASRec, config: SASRecConfig, vocabulary: ItemVocabulary, popularity: np.ndarray
) -> None:
    """Write the serving files of a trained model into ``directory`` (encoders that accept trimmed histories)."""
    script_user_encoder(model).save(str(directory / USER_ENCODER))
    torch.export.save(export_user_encoder(model), str(directory / EXPORTED_USER_ENCODER))
    item_embeddings = model.item_table().detach().numpy().astype(np.float32)
    write_sasrec_tables(directory, replace(config, trimmed_histories=True), vocabulary, item_embeddings, popularity)
