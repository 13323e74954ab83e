"""Fresh uploads placed in the tree by their pixels or title, and the Planner using the placement."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from planner.content import ContextContent
from planner.fallback import FallbackCluster, FallbackPolicy
from planner.placement import ContentPlacement, TitlePlacement, VisualPlacement, pixel_features
from planner.planning import Planner, Source
from serendip.core.frames import save_jpeg
from serendip.service.deadlines import Deadline
from tests.retriever.chain_world import build_tree

TOPIC_WORDS = {"c3-000": "kayak", "c3-001": "lantern", "c3-010": "waffle", "c3-011": "koala"}


def _catalogue() -> tuple[dict[str, str], dict[str, str]]:
    """Titles naming their cluster's topic word (plus filler), and the cluster of each item."""
    titles, cluster_of = {}, {}
    for number, (cluster, word) in enumerate(TOPIC_WORDS.items()):
        for copy in range(5):
            item_id = f"i{number}{copy}"
            titles[item_id] = f"quick {word} guide part {copy}" if copy < 4 else "wait for the end"
            cluster_of[item_id] = cluster
    return titles, cluster_of


def test_a_title_is_placed_where_its_nearest_titles_are() -> None:
    placement = TitlePlacement(*_catalogue())
    assert placement.place("my first kayak trip") == "c3-000"
    assert placement.place("KOALA moments, a guide") == "c3-011"
    assert placement.place("wait for it") is None  # one vague title in every cluster: no majority
    assert placement.place("nothing in common here") is None  # no similar title at all
    assert placement.place("") is None


def test_without_a_majority_the_title_stays_unplaced() -> None:
    titles, cluster_of = _catalogue()
    strict = TitlePlacement(titles, cluster_of, min_share=0.9)
    assert strict.place("kayak and lantern") is None  # two clusters share the vote
    assert TitlePlacement(titles, cluster_of, min_share=0.4).place("kayak and lantern") in {"c3-000", "c3-001"}
    assert TitlePlacement({}, {}).place("kayak") is None
    assert TitlePlacement({"a": "the and of"}, {"a": "c3-000"}).place("the") is None  # only stop words


def test_the_planner_plans_an_unknown_upload_from_its_placed_cluster() -> None:
    tree = build_tree()
    siblings = {cluster: tree.siblings(cluster, 1) for cluster in TOPIC_WORDS}
    policy = FallbackPolicy(
        {cluster: [FallbackCluster(s, 1.0) for s in others] for cluster, others in siblings.items()},
        [FallbackCluster("c3-111", 0.5)],
    )
    cluster_of = {item_id: cluster for item_id in tree.item_ids if (cluster := tree.node_of(item_id, 3))}
    words = {item_id: TOPIC_WORDS.get(cluster) for item_id, cluster in cluster_of.items()}
    catalogue_titles = {item_id: f"a {word} video" for item_id, word in words.items() if word}
    planner = Planner(tree, 3, 1, policy, placement=ContentPlacement(TitlePlacement(catalogue_titles, cluster_of)))
    upload = ContextContent("the best waffle video", np.zeros((2, 8, 8, 3), dtype=np.uint8), None)
    outcome = asyncio.run(planner.plan("upload-1", upload, [], 2, Deadline.after(1.0)))
    assert outcome.source is Source.FALLBACK and outcome.context_cluster == "c3-010"
    assert [p.cluster_id for p in outcome.clusters] == siblings["c3-010"][:2]
    placed = []
    real_place = planner.placement.place  # type: ignore[union-attr]
    planner.placement.place = lambda content: placed.append(content) or real_place(content)  # type: ignore[union-attr,method-assign]
    again = asyncio.run(planner.plan("upload-1", upload, [], 2, Deadline.after(1.0)))
    assert again.context_cluster == "c3-010" and placed == []  # an upload asked for again is placed once
    vague = ContextContent("ok but why", None, None)
    outcome = asyncio.run(planner.plan("upload-2", vague, [], 2, Deadline.after(1.0)))
    assert outcome.context_cluster is None and [p.cluster_id for p in outcome.clusters] == ["c3-111"]


COLOURS = {"c3-000": (200, 30, 30), "c3-001": (30, 200, 30), "c3-010": (30, 30, 200)}


def _image(colour: tuple[int, int, int], seed: int) -> np.ndarray:
    """A 32x32 image of one colour, with a little noise and a small square of another colour."""
    rng = np.random.default_rng(seed)
    image = np.clip(np.array(colour) + rng.normal(0, 8, (32, 32, 3)), 0, 255).astype(np.uint8)
    image[:6, :6] = rng.integers(0, 256, 3)
    return image


def test_pixels_are_placed_where_the_nearest_thumbnails_are(tmp_path: Path) -> None:
    thumbnails, cluster_of = {}, {}
    for cluster, colour in COLOURS.items():
        for copy in range(4):
            item_id = f"{cluster}-{copy}"
            save_jpeg(_image(colour, copy), tmp_path / f"{item_id}.jpg")
            thumbnails[item_id], cluster_of[item_id] = str(tmp_path / f"{item_id}.jpg"), cluster
    thumbnails["broken"], cluster_of["broken"] = str(tmp_path / "missing.jpg"), "c3-000"
    visual = VisualPlacement.from_thumbnails(thumbnails, cluster_of)
    assert len(visual) == 12  # the unreadable thumbnail is left out
    assert visual.place(_image(COLOURS["c3-001"], 99)) == "c3-001"
    frames = np.stack([_image(COLOURS["c3-010"], seed) for seed in (7, 8)])
    assert visual.place(frames) == "c3-010"
    assert pixel_features(frames).shape == pixel_features(frames[0]).shape
    assert VisualPlacement({}, {}).place(frames) is None
    content = ContentPlacement(TitlePlacement(*_catalogue()), visual)
    assert content.place(ContextContent("a koala video", None, _image(COLOURS["c3-000"], 5))) == "c3-000"
    assert content.place(ContextContent("a koala video", None, None)) == "c3-011"  # no pixels: the title
