"""``python -m serendip.jobs.popular_corpus``: the smallest item set by impressions reaching an impression coverage.

Paper §3.2: limiting batch inference to the most popular videos covers 80 % of impressions. Items are ranked
by impressions (ties by item id) and the shortest prefix reaching ``--coverage`` of all impressions is kept.
Writes ``<artifacts>/corpus/<version>/corpus.parquet`` (rank, item_id, impressions, cumulative_impressions,
cumulative_coverage); the achieved coverage and item count are printed and stored in the manifest counts.
Items without an ``impressions`` column need ``--interactions`` (impressions are then counted from it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from serendip.artifacts.catalogue import CatalogueSource, open_catalogue
from serendip.artifacts.corpus import CorpusSelection, publish_corpus
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT
from serendip.core.cli import run_job
from serendip.core.errors import SchemaError
from serendip.core.schema import IMPRESSIONS_UNIFORM
from serendip.offline.corpus import DEFAULT_COVERAGE, select_popular


@dataclass(frozen=True)
class PopularCorpusJob(CatalogueSource):
    """Options of one corpus selection: the catalogue, the coverage to reach."""

    coverage: float = DEFAULT_COVERAGE
    """impression fraction to reach"""
    artifacts: Path = DEFAULT_ARTIFACTS_ROOT
    """artifacts root"""
    quiet: bool = False
    """print only the published version dir"""


def run(job: PopularCorpusJob) -> tuple[Path, CorpusSelection]:
    """Select and publish the popular corpus; returns its version dir and the selection."""
    catalogue = open_catalogue(job, job.artifacts)
    items_report = catalogue.reports[0]
    if items_report.derived.get("impressions") == IMPRESSIONS_UNIFORM:
        raise SchemaError(
            f"{items_report.source} has no impressions column: pass --interactions interactions.parquet "
            f"to count them, or add the column (docs/data.md §1)"
        )
    selection = select_popular(catalogue.items, job.coverage)
    corpus_dir = publish_corpus(job.artifacts, selection, catalogue.inputs)
    if not job.quiet:
        print(catalogue.summary())
        summary = selection.summary()
        print(
            f"popular corpus: {summary['items']} of {summary['catalogue_items']} items cover "
            f"{summary['coverage_achieved']:.2%} of {summary['impressions_total']} impressions "
            f"(target {job.coverage:.0%})"
        )
        print(json.dumps(summary, indent=1))
    print(corpus_dir)
    return corpus_dir, selection


def main(argv: list[str] | None = None) -> tuple[Path, CorpusSelection]:
    """``run`` with options from the command line."""
    return run_job(run, PopularCorpusJob, argv, __doc__, "python -m serendip.jobs.popular_corpus")


if __name__ == "__main__":
    main()
