"""``python -m ray_jobs.decode_frames``: decode the popular corpus's videos into the frame store, sharded on Ray.

For each item of the corpus (``--corpus``, default ``<artifacts>/corpus``; ``--all-items`` for the whole
catalogue): N uniformly sampled frames and the thumbnail, resized for the model, one Parquet row per item with
the content hash of its video. Decoding runs on a Ray Data actor pool of CPU workers, one shard of
``--shard-size`` videos per call. Corrupt or truncated videos land in ``errors.parquet``; the job goes on.

Incremental: items whose content hash is in the previous frame store version (``<artifacts>/frames`` LATEST,
same decode settings) are carried over, not decoded again (``--full`` decodes everything). A killed run
restarted with the same inputs skips the shards it had committed. Frame count and size default to the MLLM's
(``--mllm``, default ``<artifacts>/mllm``). Writes ``<artifacts>/frames/<version>/`` (docs/ray_jobs.md).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ray_jobs.cli import IncrementalRunOptions, RayOptions, configure_logging, emit_report, pool_size, previous_version
from ray_jobs.decode_job import DEFAULT_SHARD_SIZE, DecodeResult, run_decode, settings_for_model
from ray_jobs.ray_runtime import ray_session
from serendip.artifacts.catalogue import CatalogueSource, load_catalogue
from serendip.artifacts.corpus import CORPUS_KIND, load_corpus_ids
from serendip.artifacts.frames import FRAMES_KIND, DecodeSettings
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.store import input_record, resolve_artifact
from serendip.core.cli import parse_config
from serendip.core.errors import ArtifactError, DataError


@dataclass(frozen=True)
class DecodeFramesJob(IncrementalRunOptions, RayOptions, CatalogueSource):
    """Options of one decoding run: the catalogue and corpus, the Ray pool, the decode settings, incremental runs."""

    corpus: Path | None = None
    """corpus artifact (None: <artifacts>/corpus)"""
    all_items: bool = False
    """decode the whole catalogue, not a corpus"""
    mllm: Path | None = None
    """MLLM artifact whose frame settings to use (None: <artifacts>/mllm)"""
    frames: int | None = None
    """frames per item (None: the MLLM's; no MLLM: 4)"""
    image_size: int | None = None
    """longer side of stored pixels (None: the MLLM's; no MLLM: 32)"""
    size_multiple: int | None = None
    """round stored sides to a multiple of this (None: the MLLM's; no MLLM: 1)"""
    shard_size: int = DEFAULT_SHARD_SIZE
    """videos per shard; a small run is split so no worker idles"""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.corpus is not None and self.all_items:
            raise ValueError("give --corpus or --all-items, not both")

    def decode_settings(self) -> DecodeSettings:
        """The MLLM's settings (when an MLLM artifact is there), overridden by the explicit options."""
        mllm = self.mllm or self.artifacts / MLLM_KIND
        try:
            base = settings_for_model(resolve_artifact(mllm, MLLM_KIND))
        except ArtifactError:
            if self.mllm is not None:
                raise
            base = DecodeSettings()
        return DecodeSettings(
            num_frames=self.frames or base.num_frames,
            image_size=self.image_size or base.image_size,
            size_multiple=self.size_multiple or base.size_multiple,
        )


def run(job: DecodeFramesJob) -> DecodeResult:
    """Decode and publish a frame store version; returns what the run did."""
    configure_logging(job.quiet)
    items, inputs = load_catalogue(job, job.artifacts)
    if not job.all_items:
        try:
            corpus_ids, corpus_dir = load_corpus_ids(job.corpus or job.artifacts / CORPUS_KIND)
        except ArtifactError as error:
            raise ArtifactError(f"{error}; run `python -m serendip.jobs.popular_corpus` or pass --all-items") from None
        unknown = set(corpus_ids) - set(items["item_id"])
        if unknown:
            raise ArtifactError(f"corpus {corpus_dir} names {len(unknown)} items not in the catalogue")
        items = items[items["item_id"].isin(corpus_ids)]
        inputs["corpus"] = input_record(corpus_dir)
    previous = previous_version(job.previous, job.artifacts, FRAMES_KIND, job.full)
    with ray_session(job.address, job.num_cpus):
        result = run_decode(
            job.artifacts,
            items,
            job.decode_settings(),
            inputs,
            previous_dir=previous,
            shard_size=job.shard_size,
            workers=pool_size(job.workers, job.cpus_per_worker),
            cpus_per_worker=job.cpus_per_worker,
            progress=not job.quiet,
        )
    emit_report(result.report(), job.report)
    return result


def main(argv: list[str] | None = None) -> DecodeResult:
    """``run`` with options from the command line."""
    return run(parse_config(DecodeFramesJob, argv, __doc__, "python -m ray_jobs.decode_frames"))


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        sys.exit(f"decode_frames: {error}")
