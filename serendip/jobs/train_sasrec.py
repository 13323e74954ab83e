"""``python -m serendip.jobs.train_sasrec``: train the SASRec retriever on positive-feedback sessions.

Reads items.parquet + interactions.parquet (a world artifact or your own data, validated on load),
trains SASRec with cross-entropy over all items, evaluates leave-last-out full ranking against a
popularity baseline, and publishes a versioned ``sasrec`` artifact (TorchScript user encoder, item
embeddings .npy, vocabulary, metrics, training log, manifest).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from serendip.artifacts.sasrec import SASREC_KIND, ItemVocabulary, SASRecConfig
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, ArtifactWriter, input_record, resolve_artifact
from serendip.artifacts.world import WORLD_KIND
from serendip.core.schema import load_dataset
from serendip.models.sasrec.export import write_sasrec_files
from serendip.models.sasrec.ranking_metrics import evaluate, popularity_scores
from serendip.models.sasrec.sequences import leave_last_out, positive_sequences
from serendip.models.sasrec.training import TrainingOptions, score_with, train_sasrec


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m serendip.jobs.train_sasrec",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_ARTIFACTS_ROOT / WORLD_KIND,
        help="directory with items.parquet and interactions.parquet: a world artifact (version or kind dir, "
        "LATEST is followed) or your own export (default: %(default)s)",
    )
    data.add_argument(
        "--min-satisfaction",
        type=float,
        default=0.5,
        help="interactions at or above this satisfaction are positives (default: %(default)s)",
    )
    model = parser.add_argument_group("model (RecBole SASRec defaults)")
    model.add_argument("--hidden", type=int, default=64)
    model.add_argument("--layers", type=int, default=2)
    model.add_argument("--heads", type=int, default=2)
    model.add_argument("--max-len", type=int, default=50, help="history length the model reads (default: 50)")
    model.add_argument("--dropout", type=float, default=0.2)
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=int, default=40)
    training.add_argument("--batch-size", type=int, default=128)
    training.add_argument("--learning-rate", type=float, default=1e-3)
    training.add_argument("--seed", type=int, default=0)
    parser.add_argument("--artifacts", type=Path, default=DEFAULT_ARTIFACTS_ROOT, help="default: %(default)s")
    return parser.parse_args(argv)


def _data_directory(path: Path) -> Path:
    if (path / "items.parquet").is_file():
        return path
    return resolve_artifact(path, WORLD_KIND)


def main(argv: list[str] | None = None) -> Path:
    """Train, evaluate, publish; returns the artifact version directory."""
    args = parse_args(argv)
    data_dir = _data_directory(args.data)
    dataset = load_dataset(data_dir / "items.parquet", data_dir / "interactions.parquet")
    vocabulary = ItemVocabulary(dataset.items["item_id"].tolist())
    split = leave_last_out(positive_sequences(dataset.interactions, vocabulary, args.min_satisfaction))
    if not split.test:
        sys.exit(f"no user has 3 or more positive interactions in {data_dir}; nothing to evaluate on")
    config = SASRecConfig(
        num_items=len(vocabulary),
        hidden=args.hidden,
        layers=args.layers,
        heads=args.heads,
        max_len=args.max_len,
        dropout=args.dropout,
    )
    options = TrainingOptions(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed
    )
    print(
        f"{len(split.train)} training sequences, {len(split.test)} test users, {len(vocabulary)} items",
        flush=True,
    )
    result = train_sasrec(split, config, options)
    popularity = popularity_scores(split.train, len(vocabulary))
    metrics = {
        "protocol": "leave-last-out, full ranking over all items, history items masked",
        "best_epoch": result.best_epoch,
        "sasrec": evaluate(score_with(result.model), split.test),
        "popularity": evaluate(lambda histories: np.tile(popularity, (len(histories), 1)), split.test),
    }
    metrics["recall@10_vs_popularity"] = metrics["sasrec"]["recall@10"] / max(metrics["popularity"]["recall@10"], 1e-12)
    parameters = {"min_satisfaction": args.min_satisfaction, "model": config.to_dict(), "training": vars(options)}
    inputs = {"data": input_record(data_dir)} if (data_dir / "manifest.json").is_file() else {"data": str(data_dir)}
    with ArtifactWriter(args.artifacts, SASREC_KIND, parameters, inputs=inputs) as writer:
        write_sasrec_files(writer.dir, result.model, config, vocabulary, popularity)
        (writer.dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (writer.dir / "training_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in result.log))
        writer.counts.update(
            {"items": len(vocabulary), "train_sequences": len(split.train), "test_users": len(split.test)}
        )
    print(json.dumps({k: metrics[k] for k in ("sasrec", "popularity", "recall@10_vs_popularity")}, indent=2))
    print(f"published {writer.final_dir}")
    return writer.final_dir


if __name__ == "__main__":
    main()
