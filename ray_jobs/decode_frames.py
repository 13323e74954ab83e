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

import argparse
import json
import sys
from pathlib import Path

from ray_jobs.cli import add_ray_arguments, configure_logging, pool_size
from ray_jobs.decode_job import DEFAULT_SHARD_SIZE, DecodeResult, run_decode, settings_for_model
from ray_jobs.ray_runtime import ray_session
from serendip.artifacts.catalogue import add_catalogue_arguments, load_catalogue
from serendip.artifacts.corpus import CORPUS_KIND, load_corpus_ids
from serendip.artifacts.frames import FRAMES_KIND, DecodeSettings
from serendip.artifacts.mllm import MLLM_KIND
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, input_record, resolve_artifact
from serendip.core.errors import ArtifactError, DataError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m ray_jobs.decode_frames",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_catalogue_arguments(parser)
    corpus = parser.add_argument_group("corpus")
    corpus.add_argument("--corpus", type=Path, help="corpus artifact (default: <artifacts>/corpus)")
    corpus.add_argument("--all-items", action="store_true", help="decode the whole catalogue, not a corpus")
    decoding = parser.add_argument_group("decoding (defaults: the MLLM's)")
    decoding.add_argument(
        "--mllm", type=Path, help="MLLM artifact whose frame settings to use (default: <artifacts>/mllm)"
    )
    decoding.add_argument("--frames", type=int, help=f"frames per item (no MLLM: {DecodeSettings.num_frames})")
    decoding.add_argument(
        "--image-size", type=int, help=f"longer side of stored pixels (no MLLM: {DecodeSettings.image_size})"
    )
    decoding.add_argument("--size-multiple", type=int, help="round stored sides to a multiple of this (no MLLM: 1)")
    runs = parser.add_argument_group("incremental runs")
    runs.add_argument("--full", action="store_true", help="decode every item, ignoring the previous frame store")
    runs.add_argument(
        "--previous", type=Path, help="frame store version to carry from (default: <artifacts>/frames LATEST)"
    )
    runs.add_argument(
        "--shard-size",
        type=int,
        default=DEFAULT_SHARD_SIZE,
        help="videos per shard; a small run is split so no worker idles (default: %(default)s)",
    )
    add_ray_arguments(parser, "decoding")
    parser.add_argument(
        "--artifacts", type=Path, default=DEFAULT_ARTIFACTS_ROOT, help="artifacts root (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or stage logs")
    args = parser.parse_args(argv)
    if args.corpus is not None and args.all_items:
        parser.error("give --corpus or --all-items, not both")
    if args.full and args.previous is not None:
        parser.error("give --full or --previous, not both")
    if args.shard_size < 1:
        parser.error("--shard-size must be >= 1")
    return args


def decode_settings(args: argparse.Namespace) -> DecodeSettings:
    """The MLLM's settings (when an MLLM artifact is there), overridden by explicit flags."""
    mllm = args.mllm or args.artifacts / MLLM_KIND
    try:
        base = settings_for_model(resolve_artifact(mllm, MLLM_KIND))
    except ArtifactError:
        if args.mllm is not None:
            raise
        base = DecodeSettings()
    return DecodeSettings(
        num_frames=args.frames or base.num_frames,
        image_size=args.image_size or base.image_size,
        size_multiple=args.size_multiple or base.size_multiple,
    )


def main(argv: list[str] | None = None) -> DecodeResult:
    """Decode and publish a frame store version; returns what the run did."""
    args = parse_args(argv)
    configure_logging(args.quiet)
    items, inputs = load_catalogue(args)
    if not args.all_items:
        try:
            corpus_ids, corpus_dir = load_corpus_ids(args.corpus or args.artifacts / CORPUS_KIND)
        except ArtifactError as error:
            raise ArtifactError(f"{error}; run `python -m serendip.jobs.popular_corpus` or pass --all-items") from None
        unknown = set(corpus_ids) - set(items["item_id"])
        if unknown:
            raise ArtifactError(f"corpus {corpus_dir} names {len(unknown)} items not in the catalogue")
        items = items[items["item_id"].isin(corpus_ids)]
        inputs["corpus"] = input_record(corpus_dir)
    previous = None
    if not args.full:
        try:
            previous = resolve_artifact(args.previous or args.artifacts / FRAMES_KIND, FRAMES_KIND)
        except ArtifactError:
            if args.previous is not None:
                raise
    with ray_session(args.address, args.num_cpus):
        result = run_decode(
            args.artifacts,
            items,
            decode_settings(args),
            inputs,
            previous_dir=previous,
            shard_size=args.shard_size,
            workers=pool_size(args.workers, args.cpus_per_worker),
            cpus_per_worker=args.cpus_per_worker,
            progress=not args.quiet,
        )
    print(json.dumps(result.report(), indent=1))
    return result


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        sys.exit(f"decode_frames: {error}")
