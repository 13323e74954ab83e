"""Naming cluster-tree nodes with a local causal language model (``build_tree --namer-model``).

Each node's prompt holds its keyword description (its c-TF-IDF terms, or its taxonomy label) and the titles of its
most-impressed items; the model's greedy answer, cleaned to at most 4 lower-case words, becomes the node's
description. An answer that cleans to nothing, or to a name another node holds, falls back to the node's keyword
description, so descriptions stay unique over the tree. torch and transformers are imported only when a model is
loaded: a tree built without a namer never pays for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from tqdm import tqdm

from serendip.core.cluster_tree import ClusterNode, ClusterTree
from serendip.core.errors import ConfigError

NAMER_FLAG = "--namer-model"
NAME_WORDS = 4
TITLES_PER_NODE = 5
TITLE_CHARS = 100
"""A longer title is cut to this many characters in the prompt."""
MAX_NEW_TOKENS = 12
BATCH_SIZE = 8
INSTRUCTION = (
    "Name this interest cluster of videos in 2 to 4 words, from its keywords and example titles. "
    "Answer with the name only."
)


class TextGenerator(Protocol):
    """What :func:`rename_tree` needs of a namer: the model it runs and one generated text per prompt."""

    source: str

    def generate(self, prompts: Sequence[str]) -> list[str]:
        """The model's continuation of each prompt, in order."""
        ...


def representative_titles(node_items: pd.DataFrame, count: int = TITLES_PER_NODE) -> list[str]:
    """Titles of the ``count`` most-impressed of ``node_items`` (item_id, title, impressions) that have a title.

    Ties are broken by item id.
    """
    titled = node_items[node_items["title"].fillna("").astype(str).str.strip() != ""]
    ranked = titled.sort_values(["impressions", "item_id"], ascending=[False, True], kind="stable")
    return [str(title) for title in ranked["title"].head(count)]


def node_prompt(keywords: str, titles: Sequence[str]) -> str:
    """The naming prompt of one node: the instruction, its keyword description and example titles."""
    examples = [f"- {' '.join(title.split())[:TITLE_CHARS]}" for title in titles]
    return "\n".join([INSTRUCTION, f"Keywords: {keywords}", "Example titles:", *examples, "Name:"])


def clean_name(generated: str) -> str:
    """``generated`` as a name: its first line, letters/digits/hyphens/spaces only, at most 4 words, lower case."""
    lines = generated.strip().splitlines()
    kept = "".join(char if char.isalnum() or char == "-" else " " for char in lines[0]) if lines else ""
    words = [word for word in kept.lower().split() if word.strip("-")]
    return " ".join(words[:NAME_WORDS])


class LocalCausalLM:
    """A local transformers causal-LM checkpoint on CPU, generating greedily in left-padded batches.

    A tokenizer with a chat template gets each prompt as one user turn; otherwise the prompt is the raw text.
    """

    def __init__(
        self,
        path: Path,
        batch_size: int = BATCH_SIZE,
        max_new_tokens: int = MAX_NEW_TOKENS,
        progress: bool = True,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not Path(path).is_dir():
            raise ConfigError(f"{NAMER_FLAG} {path}: no such directory (give a local transformers checkpoint)")
        try:
            self.model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConfigError(f"{NAMER_FLAG} {path} is not a loadable causal-LM checkpoint: {first_line}") from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.model.to("cpu").eval()
        self.source = str(path)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.progress = progress

    def model_input(self, prompt: str) -> str:
        """The text fed to the model for ``prompt``: one chat user turn when the tokenizer has a template."""
        if not self.tokenizer.chat_template:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: Sequence[str]) -> list[str]:
        """The greedy continuation (at most ``max_new_tokens`` tokens, special tokens dropped) of each prompt."""
        import torch

        texts = []
        with tqdm(total=len(prompts), desc="naming nodes", unit="node", disable=not self.progress) as bar:
            for start in range(0, len(prompts), self.batch_size):
                batch = [self.model_input(prompt) for prompt in prompts[start : start + self.batch_size]]
                encoded = self.tokenizer(
                    batch, return_tensors="pt", padding=True, add_special_tokens=not self.tokenizer.chat_template
                )
                with torch.inference_mode():
                    output = self.model.generate(
                        **encoded,
                        max_new_tokens=self.max_new_tokens,
                        do_sample=False,
                        pad_token_id=self.tokenizer.pad_token_id,
                    )
                new_tokens = output[:, encoded["input_ids"].shape[1] :]
                texts += self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                bar.update(len(batch))
        return texts


def _unique_names(generated: dict[str, str], keywords: dict[str, str]) -> tuple[dict[str, str], int]:
    """Each node's cleaned name, or its keyword description when that is empty or held by another node.

    Nodes claim names in the order given; a name that is another node's keyword description counts as held,
    so every fallback stays free. Returns the names and the number of fallbacks.
    """
    reserved = set(keywords.values())
    names: dict[str, str] = {}
    claimed: set[str] = set()
    fallbacks = 0
    for node_id, text in generated.items():
        name = clean_name(text)
        held = name in claimed or (name in reserved and name != keywords[node_id])
        if not name or held:
            name = keywords[node_id]
            fallbacks += 1
        names[node_id] = name
        claimed.add(name)
    return names, fallbacks


def rename_tree(
    tree: ClusterTree, items: pd.DataFrame, namer: TextGenerator, titles_per_node: int = TITLES_PER_NODE
) -> tuple[ClusterTree, dict[str, Any]]:
    """``tree`` with every node named by ``namer`` (levels 1..4, then node id), and how the nodes were named.

    ``items`` needs ``item_id``, ``title`` and ``impressions``. The report holds the method, the model, the counts
    of generated names and of keyword fallbacks, and every node's keyword description (its former description).
    """
    node_ids = [node_id for level in range(1, tree.num_levels + 1) for node_id in tree.nodes_at(level)]
    keywords = {node_id: tree.description(node_id) for node_id in node_ids}
    item_ids = items["item_id"].astype(str)
    by_id = items.assign(item_id=item_ids).set_index(item_ids.to_numpy())
    prompts = [
        node_prompt(keywords[node_id], representative_titles(by_id.loc[tree.items_in(node_id)], titles_per_node))
        for node_id in node_ids
    ]
    generated = dict(zip(node_ids, namer.generate(prompts), strict=True))
    names, fallbacks = _unique_names(generated, keywords)
    nodes = [
        ClusterNode(node_id, tree.node(node_id).level, tree.parent(node_id), names[node_id]) for node_id in node_ids
    ]
    leaves = {item_id: tree.path_of(item_id)[-1] for item_id in tree.item_ids}
    report = {
        "method": "llm",
        "model": namer.source,
        "named": len(node_ids) - fallbacks,
        "fallbacks": fallbacks,
        "keyword_descriptions": keywords,
    }
    return ClusterTree(nodes, leaves, tree.num_levels), report
