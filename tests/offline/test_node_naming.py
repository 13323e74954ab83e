"""Naming tree nodes with a local causal LM: a real tiny Qwen2 checkpoint written here, never downloaded.

Its weights are random (initialised wide, so greedy answers vary between prompts); the names are nonsense but
deterministic, so the tests check the mechanics: clean-up, uniqueness, keyword fallback, an unchanged tree
structure, errors and the build_tree job's report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from serendip.artifacts.world import World, load_world
from serendip.core.cluster_tree import ClusterTree
from serendip.core.errors import ConfigError
from serendip.jobs import build_tree as build_tree_job
from serendip.models.mllm.tokenizer import train_tokenizer
from serendip.offline.node_naming import (
    INSTRUCTION,
    LocalCausalLM,
    clean_name,
    node_prompt,
    rename_tree,
    representative_titles,
)
from serendip.offline.tree_builder import TreeBuildConfig, build_tree
from serendip.offline.world import WorldConfig, generate_world

BRANCHING = (2, 2, 2, 2)
TREE_OPTIONS = ["--branching", "2,2,2,2", "--collaborative-weight", "1", "--text-weight", "1", "--visual-weight", "0"]
"""build_tree options matching the ``keyword_tree`` fixture: fixed weights, no weight search."""


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48-item world without videos: 2x2x2x2 taxonomy (30 nodes)."""
    config = WorldConfig(
        num_items=48, num_users=80, branching=BRANCHING, seed=7, workers=1, fresh_uploads=0, with_video=False
    )
    return generate_world(config, tmp_path_factory.mktemp("naming-world"), progress=False, log=lambda _: None)


@pytest.fixture(scope="module")
def world(world_dir: Path) -> World:
    """The world, loaded."""
    return load_world(world_dir)


@pytest.fixture(scope="module")
def keyword_tree(world: World) -> ClusterTree:
    """The world's k-means tree, its nodes described by c-TF-IDF keywords."""
    config = TreeBuildConfig(
        method="kmeans", branching=BRANCHING, collaborative_weight=1, text_weight=1, visual_weight=0
    )
    return build_tree(world.items, config, interactions=world.interactions).tree


@pytest.fixture(scope="module")
def checkpoint(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 causal LM (hidden 32, 2 layers) with a tokenizer trained on the world's titles."""
    tokenizer = train_tokenizer(list(world.items["title"]) + [INSTRUCTION], vocab_size=512)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        initializer_range=0.5,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-namer")
    Qwen2ForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def renamed(keyword_tree: ClusterTree, world: World, checkpoint: Path) -> tuple[ClusterTree, dict]:
    """The keyword tree named by the tiny model (batches of 8, so prompts are left-padded)."""
    return rename_tree(keyword_tree, world.items, LocalCausalLM(checkpoint, progress=False))


class FixedAnswers:
    """A namer that answers ``answer(prompt)`` for each prompt."""

    source = "fixed"

    def __init__(self, answer: Callable[[str], str]) -> None:
        self.answer = answer

    def generate(self, prompts: Sequence[str]) -> list[str]:
        return [self.answer(prompt) for prompt in prompts]


def _all_nodes(tree: ClusterTree) -> list[str]:
    return [node_id for level in range(1, tree.num_levels + 1) for node_id in tree.nodes_at(level)]


def _greedy_name(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, prompt: str) -> str:
    """The cleaned greedy answer of ``model`` to one prompt as a chat user turn, generated alone (no padding)."""
    chat = [{"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        output = model.generate(input_ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return clean_name(tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True))


@pytest.mark.parametrize(
    ("generated", "name"),
    [
        ("  Jazz & Piano: Late-Night Sessions!\nsecond line", "jazz piano late-night sessions"),
        ("\n\nstreet food markets of asia today", "street food markets of"),
        ("Café 24/7", "café 24 7"),
        ("-- ?! --", ""),
        ("", ""),
    ],
)
def test_clean_name(generated: str, name: str) -> None:
    assert clean_name(generated) == name


def test_prompt_holds_keywords_and_the_most_impressed_titles() -> None:
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d", "e", "f", "g"],
            "title": ["low", "top", "", "tie b", "tie a", "mid", "second\nline"],
            "impressions": [1, 90, 99, 50, 50, 40, 60],
        }
    )
    titles = representative_titles(items, count=5)
    assert titles == ["top", "second\nline", "tie b", "tie a", "mid"]  # untitled c skipped; ties by item id
    assert node_prompt("jazz piano", titles[:2]) == (
        f"{INSTRUCTION}\nKeywords: jazz piano\nExample titles:\n- top\n- second line\nName:"
    )


def test_every_node_gets_a_unique_clean_name(renamed: tuple[ClusterTree, dict]) -> None:
    tree, report = renamed
    names = [tree.description(node_id) for node_id in _all_nodes(tree)]
    assert len(set(names)) == len(names) == 30
    for name in names:
        assert name and name == name.strip() and name == name.lower(), name
        assert len(name.split()) <= 4, name
        assert all(char.isalnum() or char in " -" for char in name), name
    assert report["method"] == "llm" and report["named"] + report["fallbacks"] == 30


def test_names_are_the_greedy_answers_or_the_keyword_fallback(
    renamed: tuple[ClusterTree, dict], keyword_tree: ClusterTree, world: World, checkpoint: Path
) -> None:
    tree, report = renamed
    assert report["model"] == str(checkpoint)
    assert report["keyword_descriptions"] == {
        node_id: keyword_tree.description(node_id) for node_id in _all_nodes(tree)
    }
    keywords = set(report["keyword_descriptions"].values())
    tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, local_files_only=True).eval()
    claimed: set[str] = set()
    generated_names = 0
    for node_id in _all_nodes(tree):
        own_keywords = keyword_tree.description(node_id)
        node_items = world.items[world.items["item_id"].isin(keyword_tree.items_in(node_id))]
        expected = _greedy_name(tokenizer, model, node_prompt(own_keywords, representative_titles(node_items)))
        free = expected and expected not in claimed and (expected not in keywords or expected == own_keywords)
        assert tree.description(node_id) == (expected if free else own_keywords), node_id
        claimed.add(tree.description(node_id))
        generated_names += bool(free)
    assert generated_names == report["named"] >= 1
    assert report["fallbacks"] == 30 - generated_names


def test_duplicate_or_empty_answers_fall_back_to_keywords(keyword_tree: ClusterTree, world: World) -> None:
    same, report = rename_tree(keyword_tree, world.items, FixedAnswers(lambda _: "Same Name!\nmore"))
    first, *others = _all_nodes(keyword_tree)
    assert same.description(first) == "same name"
    assert all(same.description(node_id) == keyword_tree.description(node_id) for node_id in others)
    assert (report["named"], report["fallbacks"]) == (1, 29)

    empty, report = rename_tree(keyword_tree, world.items, FixedAnswers(lambda _: " ?! "))
    assert all(empty.description(node_id) == keyword_tree.description(node_id) for node_id in _all_nodes(empty))
    assert (report["named"], report["fallbacks"]) == (0, 30)


def test_an_answer_equal_to_another_nodes_keywords_falls_back(keyword_tree: ClusterTree, world: World) -> None:
    """Keyword descriptions stay reserved for their own node, so a later fallback can never collide."""
    clean = [
        node_id
        for node_id in _all_nodes(keyword_tree)
        if clean_name(keyword_tree.description(node_id)) == keyword_tree.description(node_id)
    ]
    taken = keyword_tree.description(clean[-1])
    tree, report = rename_tree(keyword_tree, world.items, FixedAnswers(lambda _: taken))
    assert all(tree.description(node_id) == keyword_tree.description(node_id) for node_id in _all_nodes(tree))
    assert (report["named"], report["fallbacks"]) == (1, 29)  # only the node whose keywords these are


def test_the_tree_structure_is_unchanged(renamed: tuple[ClusterTree, dict], keyword_tree: ClusterTree) -> None:
    tree, _ = renamed
    assert _all_nodes(tree) == _all_nodes(keyword_tree)
    for node_id in _all_nodes(tree):
        assert (tree.node(node_id).level, tree.parent(node_id)) == (
            keyword_tree.node(node_id).level,
            keyword_tree.parent(node_id),
        )
    pd.testing.assert_frame_equal(tree.item_nodes_frame(), keyword_tree.item_nodes_frame())


def test_a_tokenizer_without_chat_template_gets_the_raw_prompt(checkpoint: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for source in checkpoint.iterdir():
        if source.name != "chat_template.jinja":
            (plain / source.name).write_bytes(source.read_bytes())
    namer = LocalCausalLM(plain, progress=False)
    assert namer.model_input("Name:") == "Name:"
    assert len(namer.generate(["a prompt", "a much longer prompt than that"])) == 2


@pytest.mark.parametrize("broken", ["missing", "empty", "not-json"])
def test_a_bad_checkpoint_is_a_config_error(broken: str, tmp_path: Path) -> None:
    path = tmp_path / broken
    if broken != "missing":
        path.mkdir()
    if broken == "not-json":
        (path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="--namer-model") as error:
        LocalCausalLM(path, progress=False)
    assert str(path) in str(error.value)


def test_build_tree_job_names_nodes(
    world_dir: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = ["--world", str(world_dir), *TREE_OPTIONS, "--quiet"]
    with pytest.raises(SystemExit) as failure:
        build_tree_job.main([*options, "--artifacts", str(tmp_path), "--namer-model", str(tmp_path / "nope")])
    assert str(failure.value.code).startswith(f"build_tree: --namer-model {tmp_path / 'nope'}")

    tree_dir = build_tree_job.main([*options, "--artifacts", str(tmp_path), "--namer-model", str(checkpoint)])
    report = json.loads((tree_dir / "report.json").read_text())
    descriptions = report["descriptions"]
    assert descriptions["method"] == "llm" and descriptions["model"] == str(checkpoint)
    tree = ClusterTree.load(tree_dir)
    assert set(descriptions["keyword_descriptions"]) == set(_all_nodes(tree))
    assert descriptions["named"] >= 1 and descriptions["named"] + descriptions["fallbacks"] == 30
    assert f"nodes named by {checkpoint}: {descriptions['named']} generated names" in capsys.readouterr().out

    keyword_dir = build_tree_job.main([*options, "--artifacts", str(tmp_path / "keywords")])
    assert json.loads((keyword_dir / "report.json").read_text())["descriptions"] == {"method": "keywords"}
    keyword_tree = ClusterTree.load(keyword_dir)
    assert {node_id: keyword_tree.description(node_id) for node_id in _all_nodes(keyword_tree)} == descriptions[
        "keyword_descriptions"
    ]
