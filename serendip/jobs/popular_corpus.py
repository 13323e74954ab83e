"""``python -m serendip.jobs.popular_corpus``: the smallest item set by impressions reaching an impression coverage.

Paper §3.2: limiting batch inference to the most popular videos covers 80 % of impressions. Items are ranked
by impressions (ties by item id) and the shortest prefix reaching ``--coverage`` of all impressions is kept.
Writes ``<artifacts>/corpus/<version>/corpus.parquet`` (rank, item_id, impressions, cumulative_impressions,
cumulative_coverage); the achieved coverage and item count are printed and stored in the manifest counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serendip.artifacts.catalogue import add_catalogue_arguments, load_catalogue
from serendip.artifacts.corpus import CorpusSelection, publish_corpus
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT
from serendip.core.errors import DataError
from serendip.offline.corpus import DEFAULT_COVERAGE, select_popular


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m serendip.jobs.popular_corpus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_catalogue_arguments(parser)
    parser.add_argument(
        "--coverage", type=float, default=DEFAULT_COVERAGE, help="impression fraction to reach (default: %(default)s)"
    )
    parser.add_argument(
        "--artifacts", type=Path, default=DEFAULT_ARTIFACTS_ROOT, help="artifacts root (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the published version dir")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> tuple[Path, CorpusSelection]:
    """Select and publish the popular corpus; returns its version dir and the selection."""
    args = parse_args(argv)
    items, inputs = load_catalogue(args)
    selection = select_popular(items, args.coverage)
    corpus_dir = publish_corpus(args.artifacts, selection, inputs)
    if not args.quiet:
        summary = selection.summary()
        print(
            f"popular corpus: {summary['items']} of {summary['catalogue_items']} items cover "
            f"{summary['coverage_achieved']:.2%} of {summary['impressions_total']} impressions "
            f"(target {args.coverage:.0%})"
        )
        print(json.dumps(summary, indent=1))
    print(corpus_dir)
    return corpus_dir, selection


if __name__ == "__main__":
    try:
        main()
    except DataError as error:
        sys.exit(f"popular_corpus: {error}")
