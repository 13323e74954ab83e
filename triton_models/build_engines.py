"""``python -m triton_models.build_engines`` (``make build-engines``): the Triton model repository.

From the trained ``mllm`` and ``sasrec`` artifacts, writes a versioned ``model_repository`` artifact
(temp dir, then atomic rename; ``LATEST`` switched last) holding:

- ``mllm/``    python-backend model; engine ``torch`` (transformers, CPU or CUDA) or ``tensorrt_llm``
               (TensorRT-LLM LLM API, needs the NGC tritonserver:<ver>-trtllm-python-py3 image and a GPU)
- ``seqrec/``  python-backend model running the SASRec TorchScript with dynamic batching
- ``seqrec.libtorch.pbtxt``  the ``pytorch_libtorch`` config of the same TorchScript, for the NGC image
- ``manifest.json``  inputs (artifact versions and hashes), parameters, file hashes

Every model has a warm-up, so Triton reports ready only once the models have run once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from google.protobuf import text_format

from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.model_repository import LIBTORCH_CONFIG_FILE, REPOSITORY_KIND
from serendip.artifacts.sasrec import SASREC_KIND, SASRecArtifact
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, ArtifactWriter, input_record, resolve_artifact
from triton_models.engines import EngineKind
from triton_models.mllm_model import write_mllm_model
from triton_models.seqrec import seqrec_libtorch_config, write_seqrec_model
from triton_models.trtllm_engine import NGC_IMAGE_HINT, TensorRTLLMUnavailableError, import_tensorrt_llm


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m triton_models.build_engines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS_ROOT, help="default: %(default)s")
    parser.add_argument("--mllm", type=Path, help="MLLM artifact (default: <artifacts>/mllm, LATEST)")
    parser.add_argument("--sasrec", type=Path, help="SASRec artifact (default: <artifacts>/sasrec, LATEST)")
    parser.add_argument(
        "--engine", choices=[e.value for e in EngineKind], default=EngineKind.TORCH.value, help="default: torch"
    )
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="instance kind of both models (default: cpu)"
    )
    parser.add_argument("--mllm-instances", type=int, default=1, help="mllm model instances (default: 1)")
    parser.add_argument(
        "--mllm-queue-delay-us", type=int, default=5000, help="mllm dynamic-batching delay (default: 5000)"
    )
    parser.add_argument(
        "--seqrec-queue-delay-us", type=int, default=1000, help="seqrec dynamic-batching delay (default: 1000)"
    )
    return parser.parse_args(argv)


def build_repository(args: argparse.Namespace) -> Path:
    """Write a new model_repository version and return its directory."""
    mllm_dir = resolve_artifact(args.mllm or args.artifacts, MLLM_KIND)
    sasrec_dir = resolve_artifact(args.sasrec or args.artifacts, SASREC_KIND)
    engine, gpu = EngineKind(args.engine), args.device == "cuda"
    parameters = {
        "engine": engine.value,
        "device": args.device,
        "mllm_instances": args.mllm_instances,
        "mllm_queue_delay_us": args.mllm_queue_delay_us,
        "seqrec_queue_delay_us": args.seqrec_queue_delay_us,
    }
    inputs = {"mllm": input_record(mllm_dir), "sasrec": input_record(sasrec_dir)}
    sasrec = SASRecArtifact.load(sasrec_dir)
    with ArtifactWriter(args.artifacts, REPOSITORY_KIND, parameters, inputs=inputs, bulk_dirs=()) as writer:
        write_mllm_model(
            writer.dir,
            mllm_dir,
            engine=engine,
            gpu=gpu,
            instance_count=args.mllm_instances,
            max_queue_delay_us=args.mllm_queue_delay_us,
        )
        write_seqrec_model(writer.dir, sasrec, max_queue_delay_us=args.seqrec_queue_delay_us, gpu=gpu)
        (writer.dir / LIBTORCH_CONFIG_FILE).write_text(text_format.MessageToString(seqrec_libtorch_config(sasrec)))
        writer.counts["models"] = 2
    return writer.final_dir


def main(argv: list[str] | None = None) -> Path:
    """Build, then say how to serve it."""
    args = parse_args(argv)
    if args.engine == EngineKind.TENSORRT_LLM.value:
        try:
            import_tensorrt_llm()
        except TensorRTLLMUnavailableError:
            print(
                f"note: tensorrt_llm is not installed here; the repository is written, but serving it needs "
                f"TensorRT-LLM: {NGC_IMAGE_HINT}",
                file=sys.stderr,
            )
    repository = build_repository(args)
    print(f"published {repository}")
    print(f"serve it with: make serve   (or tritonserver --model-repository {repository})")
    return repository


if __name__ == "__main__":
    main()
