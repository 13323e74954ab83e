"""``python -m serendip.jobs.train_sasrec``: train the SASRec retriever on positive-feedback sessions.

Reads items.parquet + interactions.parquet (a world artifact, by default <artifacts>/world, or your own
data, validated on load: bad rows are dropped, counted in report.json and summed up in one console line; a missing
column or unreadable file stops the job with a one-line error), trains SASRec with full softmax, or sampled
softmax with the logQ correction above 20,000 items (--loss), evaluates leave-last-out full ranking against
a popularity baseline, and publishes a versioned ``sasrec`` artifact (TorchScript user encoder, item
embeddings .npy, vocabulary, metrics, training log, report, manifest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serendip.artifacts.sasrec import SASREC_KIND, ItemVocabulary, SASRecConfig, write_input_report
from serendip.artifacts.store import DEFAULT_ARTIFACTS_ROOT, ArtifactWriter, input_record, resolve_artifact
from serendip.artifacts.world import WORLD_KIND
from serendip.core.cli import run_job
from serendip.core.errors import DataError
from serendip.core.schema import load_dataset
from serendip.models.sasrec.export import write_sasrec_files
from serendip.models.sasrec.losses import LossKind, resolve_loss
from serendip.models.sasrec.ranking_metrics import evaluate, popularity_scores
from serendip.models.sasrec.sequences import leave_last_out, positive_sequences
from serendip.models.sasrec.training import TrainingOptions, score_with, train_sasrec


@dataclass(frozen=True)
class TrainSasrecJob:
    """Options of one SASRec training run (model defaults: RecBole's SASRec)."""

    data: Path | None = None
    """a world artifact (version or kind dir; LATEST is followed) or your dir of items.parquet, interactions.parquet
    (None: <artifacts>/world)"""
    min_satisfaction: float = 0.5
    """interactions at or above this satisfaction are positives"""
    hidden: int = 64
    """hidden size"""
    layers: int = 2
    """transformer layers"""
    heads: int = 2
    """attention heads"""
    max_len: int = 50
    """history length the model reads"""
    dropout: float = 0.2
    """dropout rate"""
    epochs: int = 40
    """training epochs"""
    batch_size: int = 128
    """sequences per step"""
    learning_rate: float = 1e-3
    """Adam learning rate"""
    loss: LossKind = "auto"
    """full: softmax over every item; sampled: sampled softmax, logQ-corrected; auto: sampled above 20,000 items"""
    num_negatives: int = 1024
    """negatives drawn per step (shared by the batch) for sampled softmax"""
    seed: int = 0
    """initialisation and data order"""
    artifacts: Path = DEFAULT_ARTIFACTS_ROOT
    """artifacts root"""

    def __post_init__(self) -> None:
        if self.num_negatives < 1:
            raise ValueError(f"--num-negatives must be at least 1, not {self.num_negatives}")


def _data_directory(job: TrainSasrecJob) -> Path:
    """``--data`` as a dir of parquet files or a world artifact; without it, the world of ``--artifacts``."""
    if job.data is not None and (job.data / "items.parquet").is_file():
        return job.data
    return resolve_artifact(job.data or job.artifacts / WORLD_KIND, WORLD_KIND)


def run(job: TrainSasrecJob) -> Path:
    """Train, evaluate, publish; returns the artifact version directory."""
    data_dir = _data_directory(job)
    dataset = load_dataset(data_dir / "items.parquet", data_dir / "interactions.parquet")
    print("; ".join(report.summary() for report in (dataset.items_report, dataset.interactions_report)), flush=True)
    vocabulary = ItemVocabulary(dataset.items["item_id"].tolist())
    split = leave_last_out(positive_sequences(dataset.interactions, vocabulary, job.min_satisfaction))
    if not split.test:
        raise DataError(f"no user has 3 or more positive interactions in {data_dir}; nothing to evaluate on")
    config = SASRecConfig(
        num_items=len(vocabulary),
        hidden=job.hidden,
        layers=job.layers,
        heads=job.heads,
        max_len=job.max_len,
        dropout=job.dropout,
    )
    options = TrainingOptions(
        epochs=job.epochs,
        batch_size=job.batch_size,
        learning_rate=job.learning_rate,
        seed=job.seed,
        loss=resolve_loss(job.loss, len(vocabulary)),
        num_negatives=job.num_negatives,
    )
    print(
        f"{len(split.train)} training sequences, {len(split.test)} test users, {len(vocabulary)} items, "
        f"{options.loss} softmax",
        flush=True,
    )
    result = train_sasrec(split, config, options)
    popularity = popularity_scores(split.train, len(vocabulary))
    metrics = {
        "protocol": "leave-last-out, full ranking over all items, history items masked",
        "loss": result.loss,
        "best_epoch": result.best_epoch,
        "mean_epoch_train_seconds": float(np.mean([entry["train_seconds"] for entry in result.log])),
        "sasrec": evaluate(score_with(result.model), split.test),
        "popularity": evaluate(lambda histories: np.tile(popularity, (len(histories), 1)), split.test),
    }
    metrics["recall@10_vs_popularity"] = metrics["sasrec"]["recall@10"] / max(metrics["popularity"]["recall@10"], 1e-12)
    parameters = {"min_satisfaction": job.min_satisfaction, "model": config.to_dict(), "training": vars(options)}
    inputs = {"data": input_record(data_dir)} if (data_dir / "manifest.json").is_file() else {"data": str(data_dir)}
    with ArtifactWriter(job.artifacts, SASREC_KIND, parameters, inputs=inputs) as writer:
        write_sasrec_files(writer.dir, result.model, config, vocabulary, popularity)
        (writer.dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (writer.dir / "training_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in result.log))
        write_input_report(writer.dir, dataset)
        writer.counts.update(
            {
                "items": len(vocabulary),
                "train_sequences": len(split.train),
                "test_users": len(split.test),
                "interactions_dropped": dataset.interactions_report.rows_dropped,
            }
        )
    print(json.dumps({k: metrics[k] for k in ("sasrec", "popularity", "recall@10_vs_popularity")}, indent=2))
    print(f"published {writer.final_dir}")
    return writer.final_dir


def main(argv: list[str] | None = None) -> Path:
    """``run`` with options from the command line."""
    return run_job(run, TrainSasrecJob, argv, __doc__, "python -m serendip.jobs.train_sasrec")


if __name__ == "__main__":
    main()
