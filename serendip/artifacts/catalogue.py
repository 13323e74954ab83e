"""A job's catalogue input: a ``world`` artifact or a user's ``items.parquet``, with the record naming it.

Every job that reads a catalogue (popular corpus, frame decoding) takes the same options and records
the same manifest input, so lineage reads the same whichever way the catalogue came in.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from serendip.artifacts.store import file_sha256, input_record
from serendip.artifacts.world import WORLD_KIND, load_world
from serendip.core.schema import load_items


def add_catalogue_arguments(parser: argparse.ArgumentParser) -> None:
    """--world / --items / --media-root."""
    source = parser.add_argument_group("catalogue (one of)")
    source.add_argument("--world", type=Path, help="world artifact: version or kind dir (default: <artifacts>/world)")
    source.add_argument("--items", type=Path, help="your items.parquet (see docs/data.md for the schema)")
    source.add_argument("--media-root", type=Path, help="base of relative video/thumbnail paths (default: items' dir)")


def load_catalogue(args: argparse.Namespace) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validated items of --world or --items, and the manifest input record naming them."""
    if args.world is not None and args.items is not None:
        raise SystemExit("give --world or --items, not both")
    if args.items is not None:
        items, report = load_items(args.items, args.media_root)
        inputs = {"items": {"path": str(args.items), "sha256": file_sha256(args.items)}}
    else:
        world = load_world(args.world or args.artifacts / WORLD_KIND)
        items, report = world.items, world.items_report
        inputs = {"world": input_record(world.dir)}
    if report.rows_dropped:
        logging.getLogger(__name__).warning(report.summary())
    return items, inputs
