"""Segments are equal, disjoint and deterministic by seed; requests follow the SASRec split; users respond from
the world's ground truth, deterministically by seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serendip.artifacts.world import World, load_fresh_uploads, load_world
from serendip.evaluation.arms import RuledOracleArm
from serendip.evaluation.replay import ArmSpec, EvaluationLogs
from serendip.evaluation.simulator import (
    EvaluationRequest,
    Slate,
    WorldUsers,
    affine_serving_clusters,
    assign_segments,
    fresh_requests,
    heldout_requests,
    oracle_rankings,
    sample_requests,
    simulate,
)
from serendip.offline.world import WorldConfig, generate_world

ARMS = [ArmSpec("control", "control", "C"), ArmSpec("explore", "exploration", "E"), ArmSpec("mllm", "treatment", "M")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A 200-item world without videos (ground truth only)."""
    config = WorldConfig(num_items=200, num_users=90, branching=(2, 2, 3, 2), seed=5, with_video=False)
    return load_world(generate_world(config, tmp_path_factory.mktemp("world"), progress=False, log=lambda _: None))


def test_segments_are_equal_disjoint_and_deterministic_by_seed() -> None:
    users = [f"u{i:03d}" for i in range(103)] + ["u000"]  # duplicates count once
    segments = assign_segments(users, ["a", "b", "c"], seed=7)
    sizes = {arm: len(members) for arm, members in segments.items()}
    assert sizes == {"a": 34, "b": 34, "c": 34}  # 103 // 3; one user left out
    members = [user for segment in segments.values() for user in segment]
    assert len(set(members)) == len(members) == 102
    assert segments == assign_segments(reversed(users), ["a", "b", "c"], seed=7)
    assert segments != assign_segments(users, ["a", "b", "c"], seed=8)


def test_heldout_requests_are_the_leave_last_out_test_cases() -> None:
    ts = pd.date_range("2026-01-01", periods=6, freq="min", tz="UTC")
    interactions = pd.DataFrame(
        {
            "user_id": ["u1"] * 5 + ["u2"],
            "item_id": ["a", "b", "c", "d", "e", "a"],
            "ts": [ts[0], ts[1], ts[2], ts[3], ts[4], ts[5]],
            "satisfaction": [0.9, 0.1, 0.8, 0.7, 0.6, 0.9],
        }
    )
    requests = heldout_requests(interactions, min_satisfaction=0.5)
    assert requests == [EvaluationRequest("r000000", "u1", "d", ("a", "c", "d"), "e")]  # u2 has < 3 positives
    assert heldout_requests(interactions, 0.5, known_items=["a", "c", "e"])[0].history == ("a", "c")
    many = [EvaluationRequest(f"r{i}", f"u{i}", "a", ("a",)) for i in range(10)]
    assert sample_requests(many, 4, seed=1) == sample_requests(many, 4, seed=1)
    assert [r.request_id for r in sample_requests(many, 4, seed=1)] == sorted(
        r.request_id for r in sample_requests(many, 4, seed=1)
    )


def test_users_respond_from_the_world_model_deterministically(world: World) -> None:
    users = WorldUsers(world)
    truth = world.ground_truth.set_index("item_id")
    context = truth.index[0]
    same = [i for i in truth.index[1:] if truth.loc[i, "level_3"] == truth.loc[context, "level_3"]][:3]
    first = users.respond("u00", context, same, np.random.default_rng(1))
    assert first == users.respond("u00", context, same, np.random.default_rng(1))
    assert all(0.0 <= s <= 1.0 for s in first[0])
    assert {users.relation(context, item) for item in same} == {"same"}
    interested = str(truth.loc[same[0], "level_2"]) in users.interests["u00"]
    expected = world.oracle.expected_satisfaction(context, same[0], interested=interested)
    assert users.expected_satisfaction("u00", context, same[0]) == pytest.approx(expected)


def test_simulate_serves_each_segment_its_own_arm_and_logs_every_nomination(world: World) -> None:
    requests = heldout_requests(world.interactions, 0.5)
    items = world.items["item_id"].tolist()
    nominations = {
        arm.name: [Slate(tuple(items[offset : offset + 4]), ("c",), "LIVE") for _ in requests]
        for offset, arm in zip((0, 2, 10), ARMS, strict=True)
    }
    logs = simulate(ARMS, requests, nominations, WorldUsers(world), seed=3, visual_scores={items[0]: 0.5})
    segment_size = len({r.user_id for r in requests}) // 3
    assert logs.requests["arm"].value_counts().to_dict() == {arm.name: segment_size for arm in ARMS}
    served = logs.impressions.merge(logs.requests[["request_id", "arm"]], on="request_id", suffixes=("", "_segment"))
    assert (served["arm"] == served["arm_segment"]).all()
    assert len(logs.impressions) == 4 * len(logs.requests)
    assert len(logs.nominations) == 3 * 4 * len(logs.requests)
    again = simulate(ARMS, requests, nominations, WorldUsers(world), seed=3)
    pd.testing.assert_frame_equal(logs.impressions, again.impressions)
    other = simulate(ARMS, requests, nominations, WorldUsers(world), seed=4)
    assert not logs.requests["arm"].equals(other.requests["arm"])


def test_logs_round_trip(world: World, tmp_path: Path) -> None:
    requests = heldout_requests(world.interactions, 0.5)[:9]
    item = world.items["item_id"].iloc[0]
    nominations = {arm.name: [Slate((item,), ("c",), "LIVE") for _ in requests] for arm in ARMS}
    logs = simulate(ARMS, requests, nominations, WorldUsers(world), seed=0)
    logs.save(tmp_path)
    loaded = EvaluationLogs.load(tmp_path)
    assert loaded.arms == ARMS
    pd.testing.assert_frame_equal(loaded.impressions, logs.impressions)


def test_affine_clusters_map_to_the_serving_tree_by_item_membership(world: World) -> None:
    mapping = affine_serving_clusters(world, world.true_tree, 3)  # serving tree = the true taxonomy: identity
    truth = world.ground_truth.set_index("item_id")["affine_cluster"].to_dict()
    assert mapping == truth


def test_fresh_requests_put_each_user_on_an_upload_of_their_context_topic(world: World) -> None:
    fresh = load_fresh_uploads(world.dir)
    assert fresh is not None and not set(fresh.items["item_id"]) & set(world.items["item_id"])
    head = heldout_requests(world.interactions, 0.5)
    extra = fresh_requests(head, world.ground_truth, fresh.ground_truth, seed=3)
    assert extra == fresh_requests(head, world.ground_truth, fresh.ground_truth, seed=3)
    assert [r.request_id for r in extra] == [f"{r.request_id}-fresh" for r in head]
    topic = dict(zip(world.ground_truth["item_id"], world.ground_truth["level_2"], strict=True))
    upload_topic = dict(zip(fresh.ground_truth["item_id"], fresh.ground_truth["level_2"], strict=True))
    for before, after in zip(head, extra, strict=True):
        assert (after.user_id, after.history, after.heldout_item_id, after.segment) == (
            before.user_id, before.history, None, "fresh"
        )  # fmt: skip
        assert upload_topic[after.context_item_id] == topic[before.context_item_id]
    assert len({r.context_item_id for r in extra}) > 10
    assert fresh_requests(head, world.ground_truth, fresh.ground_truth.iloc[0:0], seed=3) == []


def test_fresh_contexts_are_simulated_and_leave_the_head_requests_unchanged(world: World) -> None:
    fresh = load_fresh_uploads(world.dir)
    assert fresh is not None
    head = heldout_requests(world.interactions, 0.5)
    extra = fresh_requests(head, world.ground_truth, fresh.ground_truth, seed=0)
    items = world.items["item_id"].tolist()
    nominations = {
        arm.name: [Slate(tuple(items[offset : offset + 4])) for _ in [*head, *extra]]
        for offset, arm in zip((0, 2, 10), ARMS, strict=True)
    }
    users = WorldUsers(world, fresh.ground_truth)
    both = simulate(ARMS, [*head, *extra], nominations, users, seed=3)
    only_head = simulate(ARMS, head, {arm: slates[: len(head)] for arm, slates in nominations.items()}, users, 3)
    assert both.segment_names() == ["head", "fresh"]
    pd.testing.assert_frame_equal(both.segment("head").impressions, only_head.impressions)
    served = both.segment("fresh").requests
    assert (served.groupby("user_id").size() == 1).all() and len(served) == len(only_head.requests)
    upload = fresh.ground_truth.iloc[0]
    partner = world.ground_truth[world.ground_truth["level_3"] == upload["affine_cluster"]]["item_id"].iloc[0]
    assert users.relation(upload["item_id"], partner) == "affine"
    mapping = affine_serving_clusters(world, world.true_tree, 3, fresh.ground_truth)
    assert mapping[upload["item_id"]] == upload["affine_cluster"]


def test_oracle_rankings_put_the_good_siblings_first_and_never_the_own_cluster(world: World) -> None:
    tree, truth = world.true_tree, world.ground_truth.set_index("item_id")
    rankings = oracle_rankings(world, tree, 3, 1)
    assert set(rankings) == set(truth.index)
    for item, ranking in rankings.items():
        own = tree.node_of(item, 3)
        row = truth.loc[item]
        secondary = [row["secondary_cluster"]] if isinstance(row["secondary_cluster"], str) else []
        good = [row["affine_cluster"], *secondary]
        assert ranking[: len(good)] == good  # affine, then secondary
        assert own not in ranking and sorted(ranking) == sorted(tree.siblings(own, 1))
    with_secondary = truth[truth["secondary_cluster"].notna()].index
    assert len(with_secondary) > 0 and all(len(rankings[item]) >= 2 for item in with_secondary)


def test_ruled_oracle_demotes_the_history_clusters_as_the_planner_does(world: World) -> None:
    tree, truth = world.true_tree, world.ground_truth.set_index("item_id")
    rankings = oracle_rankings(world, tree, 3, 1)
    item = next(i for i in truth.index if len(rankings[i]) == 2)  # branching 3 at level 3: two siblings
    affine, other = rankings[item]
    in_cluster = {cluster: tree.items_in(cluster)[0] for cluster in (affine, other)}
    arm = RuledOracleArm(ArmSpec("o", "treatment", "O"), "127.0.0.1:1", rankings, tree, 3)
    windowed = RuledOracleArm(ArmSpec("o", "treatment", "O"), "127.0.0.1:1", rankings, tree, 3, recent_window=1)

    def request(*history: str) -> EvaluationRequest:
        return EvaluationRequest("r", "u", item, (*history, item))

    assert arm.choose(request()) == affine
    assert arm.choose(request(in_cluster[affine])) == other
    assert windowed.choose(request(in_cluster[affine])) == affine  # only the context item is recent
    assert arm.choose(request(in_cluster[affine], in_cluster[other])) == affine  # all demoted: the order is kept
