"""The offline stages, each a call of the project's own job: world, tree, curation, one SASRec epoch, popular
corpus, ANN indexes. Every function takes a :class:`SizeContext` and returns its figures (``seconds`` first)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from threadpoolctl import threadpool_limits

from bench.ann import compare, history_queries
from bench.scale.context import SizeContext
from bench.scale.isolation import Figures
from retriever.loading import load_retrieval_model
from serendip.artifacts.sasrec import SASREC_KIND, ItemVocabulary, SASRecConfig
from serendip.artifacts.store import ArtifactWriter, input_record, read_manifest, resolve_artifact
from serendip.artifacts.tree import TREE_KIND
from serendip.artifacts.world import WORLD_KIND
from serendip.core.schema import load_dataset
from serendip.jobs import build_tree, curate, make_world, popular_corpus, train_sasrec
from serendip.models.sasrec import ann, training
from serendip.models.sasrec.export import write_sasrec_files
from serendip.models.sasrec.ranking_metrics import popularity_scores
from serendip.models.sasrec.sequences import leave_last_out, positive_sequences

SASREC_VALIDATION_CASES = 2_000
"""Validation cases ranked after the epoch: the job ranks every user against every item (users x items, see
docs/scale.md), so only a sample is, and the epoch's own time is what is reported."""


def world(context: SizeContext) -> Figures:
    """``make_world --no-video``: items, proportional users and interactions, no fresh uploads."""
    job = make_world.MakeWorldJob(
        items=context.items,
        users=context.users,
        video=False,
        with_taxonomy=context.tree_method == "taxonomy",
        fresh_uploads=0,
        seed=context.seed,
        artifacts=context.root,
        quiet=True,
    )
    started = time.perf_counter()
    directory = make_world.run(job)
    seconds = time.perf_counter() - started
    counts = read_manifest(directory)["counts"]
    return {"seconds": seconds, "users": counts["users"], "interactions": counts["interactions"]}


def tree(context: SizeContext) -> Figures:
    """``build_tree`` on the world: k-means over co-engagement and text (block weights chosen on held-out pairs), or
    the world's taxonomy imported (``tree_method``)."""
    root = context.root
    job = build_tree.BuildTreeJob(world=root / WORLD_KIND, method=context.tree_method, artifacts=root, quiet=True)
    started = time.perf_counter()
    build_tree.run(job)
    return {"seconds": time.perf_counter() - started}


def curation(context: SizeContext) -> Figures:
    """``curate`` on the world and the tree (the video variants switch themselves off: no item has a video)."""
    root = context.root
    job = curate.CurateJob(world=root / WORLD_KIND, tree=root / TREE_KIND, artifacts=root, quiet=True)
    started = time.perf_counter()
    directory = curate.run(job)
    return {"seconds": time.perf_counter() - started, "examples": read_manifest(directory)["counts"]["examples"]}


def corpus(context: SizeContext) -> Figures:
    """``popular_corpus``: the fewest items covering 80 % of impressions."""
    job = popular_corpus.PopularCorpusJob(world=context.root / WORLD_KIND, artifacts=context.root, quiet=True)
    started = time.perf_counter()
    _, selection = popular_corpus.run(job)
    return {"seconds": time.perf_counter() - started, "corpus_items": int(selection.summary()["items"])}


def sasrec_epoch(context: SizeContext) -> Figures:
    """One epoch of SASRec with sampled softmax (the job's model and defaults), published as a ``sasrec`` artifact.

    ``seconds`` is the epoch's optimisation steps (``train_seconds`` of the training log); ``job_seconds`` adds
    loading, the split, ranking ``SASREC_VALIDATION_CASES`` validation cases and publishing.
    """
    job = train_sasrec.TrainSasrecJob(epochs=1, loss="sampled", seed=context.seed)
    started = time.perf_counter()
    data_dir = resolve_artifact(context.root, WORLD_KIND)
    dataset = load_dataset(data_dir / "items.parquet", data_dir / "interactions.parquet")
    vocabulary = ItemVocabulary(dataset.items["item_id"].tolist())
    split = leave_last_out(positive_sequences(dataset.interactions, vocabulary, job.min_satisfaction))
    sampled = replace(split, valid=split.valid[:SASREC_VALIDATION_CASES], test=[])
    config = SASRecConfig(
        num_items=len(vocabulary), hidden=job.hidden, layers=job.layers, heads=job.heads, max_len=job.max_len,
        dropout=job.dropout,
    )  # fmt: skip
    options = training.TrainingOptions(
        epochs=job.epochs, batch_size=job.batch_size, learning_rate=job.learning_rate, seed=job.seed, loss=job.loss,
        num_negatives=job.num_negatives,
    )  # fmt: skip
    result = training.train_sasrec(sampled, config, options, show_progress=False)
    parameters = {"source": "bench.scale: one epoch", "model": config.to_dict(), "training": vars(options)}
    with ArtifactWriter(context.root, SASREC_KIND, parameters, inputs={"data": input_record(data_dir)}) as writer:
        write_sasrec_files(
            writer.dir, result.model, config, vocabulary, popularity_scores(split.train, len(vocabulary))
        )
    return {
        "seconds": result.log[0]["train_seconds"],
        "job_seconds": time.perf_counter() - started,
        "train_sequences": len(split.train),
    }


ANN_QUERIES = 300
ANN_EXCLUDED = 20
UNUSED_TRITON = "127.0.0.1:1"
"""The retrieval model's Triton client connects lazily and top-k never calls it."""


def ann_indexes(context: SizeContext) -> Figures:
    """``python -m serendip.models.sasrec.ann`` with the quantised scan on every planning-level cluster
    (``--exact-below 1``, ``--ivf-from`` above the catalogue: the default build would leave the 10k world's clusters
    of a few hundred items exact, and measure no build there), then recall@10 and latency of the Retriever's ANN
    path against exact on history-like queries inside random clusters (``bench.ann.compare``)."""
    job = ann.BuildAnnJob(
        sasrec=context.root / SASREC_KIND,
        tree=context.root / TREE_KIND,
        artifacts=context.root,
        exact_below=1,
        ivf_from=context.items + 1,
    )
    started = time.perf_counter()
    directory = ann.run(job)
    seconds = time.perf_counter() - started
    threadpool_limits(limits=1)  # top-k as the Retriever runs it (its --search-threads)
    exact = load_retrieval_model(job.sasrec, job.tree, UNUSED_TRITON, job.planning_level).index
    approximate = load_retrieval_model(job.sasrec, job.tree, UNUSED_TRITON, job.planning_level, directory).index
    rng = np.random.default_rng(0)
    clusters = sorted(approximate.ann)
    if not clusters:
        raise ValueError(f"no cluster holds the {2**ann.PQ_BITS} items a quantised index needs: nothing to compare")
    requests = []
    for user in history_queries(exact.embeddings, ANN_QUERIES, rng):
        cluster = clusters[rng.integers(len(clusters))]
        start, end = exact.spans[cluster]
        excluded = rng.integers(start, end, min(ANN_EXCLUDED, (end - start) // 2))
        requests.append((cluster, user, [exact.item_ids[row] for row in excluded]))
    return {
        "seconds": seconds,
        "indexed_clusters": read_manifest(directory)["counts"]["indexed_clusters"],
        "index": job.mid_index,
        "refine_factor": job.refine_factor,
    } | compare(exact, approximate, requests)
