"""The answer grammar: an EBNF accepting exactly one cluster description (after the optional CoT reasoning).

Written once per trained model as two files, used unchanged by every engine:

* ``grammar.ebnf`` -- xgrammar / GBNF syntax, root rule ``root``; the torch engine compiles it with
  ``xgrammar.GrammarCompiler``, TensorRT-LLM takes the same text as ``GuidedDecodingParams(grammar=...)``;
* ``descriptions.json`` -- the clusters (id, level, description) in grammar order, the prompt variant, the CoT
  answer marker and reasoning bound: description -> cluster id is an exact dictionary lookup.

For CoT the reasoning is ``[ -;=-~]{1,max_reasoning_chars}``: one line of printable ASCII without ``<``, so no
special token (``<|im_start|>``, ``<|video_pad|>``…, which xgrammar sees as literal text) can be spelled inside
it, whatever engine applies the grammar. Every byte-level token spells at least one byte, so
:attr:`AnswerGrammar.max_new_tokens` -- reasoning bytes + separator bytes + the longest description's bytes + the
stop token -- is a budget in which greedy decoding always completes a description, whatever token spellings an
(even untrained) model picks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xgrammar
from transformers import PreTrainedTokenizerBase

from serendip.artifacts.mllm import DESCRIPTIONS_FILE, GRAMMAR_FILE
from serendip.models.mllm.errors import GrammarError
from serendip.models.mllm.prompts import ANSWER_LEAD, REASONING_END, PromptVariant

DESCRIPTIONS_FORMAT = "serendip.mllm.descriptions/v1"
DEFAULT_MAX_REASONING_CHARS = 240
COT_ANSWER_MARKER = REASONING_END + ANSWER_LEAD
"""Literal between the CoT reasoning and the description (``"\\ncluster: "``)."""
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def ebnf_literal(text: str) -> str:
    """``text`` as a double-quoted EBNF string literal (backslash, quote and control characters escaped)."""
    return '"' + "".join(_ESCAPES.get(char, char) for char in text) + '"'


@dataclass(frozen=True)
class AnswerGrammar:
    """The grammar text plus the cluster lookup it was built from."""

    cluster_ids: tuple[str, ...]
    descriptions: tuple[str, ...]
    level: int
    variant: PromptVariant
    max_reasoning_chars: int = DEFAULT_MAX_REASONING_CHARS
    ebnf: str = ""
    _by_description: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.descriptions:
            raise GrammarError("the answer grammar needs at least one cluster description")
        if len(self.cluster_ids) != len(self.descriptions):
            raise GrammarError(f"{len(self.cluster_ids)} cluster ids but {len(self.descriptions)} descriptions")
        for cluster_id, description in zip(self.cluster_ids, self.descriptions, strict=True):
            if not description or description != description.strip() or "\n" in description:
                raise GrammarError(f"cluster {cluster_id!r}: description {description!r} is empty or not one line")
            if description in self._by_description:
                other = self._by_description[description]
                raise GrammarError(f"description {description!r} is used by both {other!r} and {cluster_id!r}")
            self._by_description[description] = cluster_id
        if not self.ebnf:
            object.__setattr__(self, "ebnf", self._render())

    def _render(self) -> str:
        answer = "answer ::= " + "\n    | ".join(ebnf_literal(text) for text in self.descriptions)
        if not self.variant.is_cot:
            return f"root ::= answer\n{answer}\n"
        return (
            f"root ::= reasoning {ebnf_literal(COT_ANSWER_MARKER)} answer\n"
            f"reasoning ::= [ -;=-~]{{1,{self.max_reasoning_chars}}}\n{answer}\n"
        )

    def cluster_for(self, description: str) -> str:
        """Cluster id of an exact description; raises GrammarError for anything else."""
        try:
            return self._by_description[description]
        except KeyError:
            raise GrammarError(
                f"{description!r} is not one of the {len(self.descriptions)} cluster descriptions"
            ) from None

    def is_description(self, text: str) -> bool:
        """Whether ``text`` is exactly one of the descriptions."""
        return text in self._by_description

    @property
    def max_new_tokens(self) -> int:
        """A token budget that always completes the grammar (each token spells >= 1 byte): see the module doc."""
        longest_answer = max(len(text.encode()) for text in self.descriptions)
        if not self.variant.is_cot:
            return longest_answer + 1
        return self.max_reasoning_chars + len(COT_ANSWER_MARKER.encode()) + longest_answer + 1

    @property
    def reasoning_ebnf(self) -> str:
        """CoT only: the reasoning and the answer marker's first part, then stop (ranking scores every description)."""
        if not self.variant.is_cot:
            raise GrammarError(f"the {self.variant} variant has no reasoning")
        return (
            f"root ::= reasoning {ebnf_literal(REASONING_END)}\n"
            f"reasoning ::= [ -;=-~]{{1,{self.max_reasoning_chars}}}\n"
        )

    @property
    def reasoning_max_new_tokens(self) -> int:
        """A token budget that always completes :attr:`reasoning_ebnf` (reasoning, marker, stop token)."""
        return self.max_reasoning_chars + len(REASONING_END.encode()) + 1

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write ``grammar.ebnf`` and ``descriptions.json`` into ``directory``."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        (target / GRAMMAR_FILE).write_text(self.ebnf)
        document = {
            "format": DESCRIPTIONS_FORMAT,
            "level": self.level,
            "variant": str(self.variant),
            "answer_marker": COT_ANSWER_MARKER if self.variant.is_cot else None,
            "max_reasoning_chars": self.max_reasoning_chars,
            "clusters": [
                {"cluster_id": cluster_id, "description": description}
                for cluster_id, description in zip(self.cluster_ids, self.descriptions, strict=True)
            ],
        }
        (target / DESCRIPTIONS_FILE).write_text(json.dumps(document, indent=1) + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> AnswerGrammar:
        """Read the files written by :meth:`save`; the EBNF is taken verbatim from ``grammar.ebnf``."""
        source = Path(directory)
        try:
            document: dict[str, Any] = json.loads((source / DESCRIPTIONS_FILE).read_text())
            ebnf = (source / GRAMMAR_FILE).read_text()
        except FileNotFoundError as error:
            raise GrammarError(f"{source} holds no answer grammar ({Path(error.filename).name} missing)") from error
        if document.get("format") != DESCRIPTIONS_FORMAT:
            raise GrammarError(f"{source / DESCRIPTIONS_FILE}: format {document.get('format')!r}, "
                               f"expected {DESCRIPTIONS_FORMAT!r}")  # fmt: skip
        clusters = document["clusters"]
        return cls(
            cluster_ids=tuple(record["cluster_id"] for record in clusters),
            descriptions=tuple(record["description"] for record in clusters),
            level=int(document["level"]),
            variant=PromptVariant(document["variant"]),
            max_reasoning_chars=int(document["max_reasoning_chars"]),
            ebnf=ebnf,
        )


def build_answer_grammar(
    descriptions_by_cluster: Mapping[str, str],
    level: int,
    variant: PromptVariant,
    max_reasoning_chars: int = DEFAULT_MAX_REASONING_CHARS,
) -> AnswerGrammar:
    """Grammar over ``{cluster_id: description}`` (sorted by cluster id) for the prompt ``variant``."""
    ordered = sorted(descriptions_by_cluster.items())
    return AnswerGrammar(
        cluster_ids=tuple(cluster_id for cluster_id, _ in ordered),
        descriptions=tuple(description for _, description in ordered),
        level=level,
        variant=variant,
        max_reasoning_chars=max_reasoning_chars,
    )


def xgrammar_tokenizer_info(tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> xgrammar.TokenizerInfo:
    """xgrammar's view of the tokenizer; ``vocab_size`` is the model's (logit) vocabulary size."""
    stop_token_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    return xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=[stop_token_id])


def compile_grammar(
    grammar: AnswerGrammar, tokenizer: PreTrainedTokenizerBase, vocab_size: int, reasoning_only: bool = False
) -> Any:
    """Compile the EBNF (or, for CoT, its :attr:`~AnswerGrammar.reasoning_ebnf`) for this tokenizer (milliseconds)."""
    try:
        compiler = xgrammar.GrammarCompiler(xgrammar_tokenizer_info(tokenizer, vocab_size))
        return compiler.compile_grammar(grammar.reasoning_ebnf if reasoning_only else grammar.ebnf)
    except RuntimeError as error:
        raise GrammarError(f"xgrammar rejected the answer grammar: {error}") from error


def grammar_accepts(compiled_grammar: Any, token_ids: list[int], stop_token_id: int) -> bool:
    """Whether the token sequence followed by the stop token is a complete sentence of the grammar."""
    matcher = xgrammar.GrammarMatcher(compiled_grammar)
    return all(matcher.accept_token(token_id) for token_id in [*token_ids, stop_token_id]) and matcher.is_terminated()
