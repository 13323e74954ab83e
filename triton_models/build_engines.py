"""``python -m triton_models.build_engines`` (``make build-engines``): the Triton model repository.

From the trained ``mllm`` and ``sasrec`` artifacts, writes a versioned ``model_repository`` artifact
(temp dir, then atomic rename; ``LATEST`` switched last) holding:

- ``mllm/``    python-backend model; engine ``torch`` (transformers, CPU or CUDA) or ``tensorrt_llm``
               (TensorRT-LLM LLM API, needs the NGC tritonserver:<ver>-trtllm-python-py3 image and a GPU)
- ``seqrec/``  python-backend model running the SASRec user encoder with dynamic batching: the TorchScript, or
               (``--seqrec-format export``) an AOTInductor package compiled here from its ``torch.export`` program
- ``seqrec.libtorch.pbtxt``  the ``pytorch_libtorch`` config of the same TorchScript, for the NGC image
- ``manifest.json``  inputs (artifact versions and hashes), parameters, file hashes

Every model has a warm-up, so Triton reports ready only once the models have run once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from google.protobuf import text_format

from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.model_repository import LIBTORCH_CONFIG_FILE, REPOSITORY_KIND
from serendip.artifacts.sasrec import SASREC_KIND, SASRecArtifact
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, ArtifactWriter, input_record, resolve_artifact
from serendip.core.cli import CommaInts, run_job
from serendip.core.errors import DataError
from serendip.models.mllm.errors import MllmError
from triton_models.engines import EngineKind
from triton_models.mllm_model import write_mllm_model
from triton_models.seqrec import SEQREC_MAX_BATCH_SIZE, SeqrecFormat, seqrec_libtorch_config, write_seqrec_model
from triton_models.trtllm_engine import NGC_IMAGE_HINT, TensorRTLLMUnavailableError, import_tensorrt_llm


@dataclass(frozen=True)
class BuildEnginesJob:
    """Options of one model repository: the trained artifacts, the engine and device, batching."""

    artifacts: Path = DEFAULT_ARTIFACTS_ROOT
    """artifacts root"""
    mllm: Path | None = None
    """MLLM artifact (None: <artifacts>/mllm, LATEST)"""
    sasrec: Path | None = None
    """SASRec artifact (None: <artifacts>/sasrec, LATEST)"""
    engine: EngineKind = EngineKind.TORCH
    """runtime of the MLLM"""
    device: Literal["cpu", "cuda"] = "cpu"
    """instance kind of both models"""
    mllm_instances: int = 1
    """mllm model instances"""
    mllm_queue_delay_us: int = 5000
    """mllm dynamic-batching delay"""
    seqrec_queue_delay_us: int = 0
    """seqrec dynamic-batching delay: 0, since its client, the Retriever, already sends the calls that arrive
    while one is under way as one batch (a delay would only add to every Retrieve's latency)"""
    seqrec_preferred_batch_sizes: CommaInts = ()
    """seqrec dynamic-batching preferred sizes (e.g. 8,16,32 with --seqrec-queue-delay-us 2000 when many clients,
    such as several Retrievers, call one Triton; measured in docs/loadtest.md)"""
    seqrec_format: SeqrecFormat = "torchscript"
    """seqrec runs the TorchScript, or an AOTInductor package compiled now from the torch.export program (needs g++)"""

    def __post_init__(self) -> None:
        for size in self.seqrec_preferred_batch_sizes:
            if not 1 <= size <= SEQREC_MAX_BATCH_SIZE:
                raise ValueError(
                    f"--seqrec-preferred-batch-sizes: {size} is outside 1..{SEQREC_MAX_BATCH_SIZE} (seqrec's max batch)"
                )


def build_repository(job: BuildEnginesJob) -> Path:
    """Write a new model_repository version and return its directory."""
    mllm_dir = resolve_artifact(job.mllm or job.artifacts, MLLM_KIND)
    sasrec_dir = resolve_artifact(job.sasrec or job.artifacts, SASREC_KIND)
    engine, gpu = EngineKind(job.engine), job.device == "cuda"
    parameters = {
        "engine": engine.value,
        "device": job.device,
        "mllm_instances": job.mllm_instances,
        "mllm_queue_delay_us": job.mllm_queue_delay_us,
        "seqrec_queue_delay_us": job.seqrec_queue_delay_us,
        "seqrec_preferred_batch_sizes": list(job.seqrec_preferred_batch_sizes),
        "seqrec_format": job.seqrec_format,
    }
    inputs = {"mllm": input_record(mllm_dir), "sasrec": input_record(sasrec_dir)}
    sasrec = SASRecArtifact.load(sasrec_dir)
    with ArtifactWriter(job.artifacts, REPOSITORY_KIND, parameters, inputs=inputs, bulk_dirs=()) as writer:
        write_mllm_model(
            writer.dir,
            mllm_dir,
            engine=engine,
            gpu=gpu,
            instance_count=job.mllm_instances,
            max_queue_delay_us=job.mllm_queue_delay_us,
        )
        write_seqrec_model(
            writer.dir,
            sasrec,
            model_format=job.seqrec_format,
            max_queue_delay_us=job.seqrec_queue_delay_us,
            preferred_batch_sizes=job.seqrec_preferred_batch_sizes,
            gpu=gpu,
        )
        (writer.dir / LIBTORCH_CONFIG_FILE).write_text(text_format.MessageToString(seqrec_libtorch_config(sasrec)))
        writer.counts["models"] = 2
    return writer.final_dir


def run(job: BuildEnginesJob) -> Path:
    """Build, then say how to serve it; returns the repository version directory."""
    if job.engine == EngineKind.TENSORRT_LLM:
        try:
            import_tensorrt_llm()
        except TensorRTLLMUnavailableError:
            print(
                f"note: tensorrt_llm is not installed here; the repository is written, but serving it needs "
                f"TensorRT-LLM: {NGC_IMAGE_HINT}",
                file=sys.stderr,
            )
    repository = build_repository(job)
    print(f"published {repository}")
    print(f"serve it with: make serve   (or tritonserver --model-repository {repository})")
    return repository


def main(argv: list[str] | None = None) -> Path:
    """``run`` with options from the command line; a missing or stale artifact ends as one line naming it."""
    return run_job(run, BuildEnginesJob, argv, __doc__, "python -m triton_models.build_engines", (DataError, MllmError))


if __name__ == "__main__":
    main()
