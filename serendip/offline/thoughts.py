"""Chain-of-thought texts a small model can learn: what each item's thought says before the answer.

A caption of a dozen words is learnable; a plot summary of a hundred is not (a tiny model fine-tuned on whole
summaries writes another item's summary as its thought). A text longer than ``MAX_THOUGHT_WORDS`` words becomes a
short keyword line: the item's tags (genres) when it has any, else the ``KEYWORDS_PER_THOUGHT`` words of its text with
the highest TF-IDF among the catalogue's long texts (English stop words out). Shorter texts are kept as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

MAX_THOUGHT_WORDS = 24
KEYWORDS_PER_THOUGHT = 5


def learnable_thoughts(texts: Mapping[str, str], tags: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """item id -> its thought: ``texts`` with every text over MAX_THOUGHT_WORDS words made a keyword line."""
    thoughts = dict(texts)
    long_ids = [item for item, text in texts.items() if len(text.split()) > MAX_THOUGHT_WORDS]
    tagged = {item: list(tags[item]) for item in long_ids if tags and len(tags.get(item) or ())}
    for item, item_tags in tagged.items():
        thoughts[item] = ", ".join(str(tag) for tag in item_tags[:KEYWORDS_PER_THOUGHT])
    untagged = [item for item in long_ids if item not in tagged]
    if not untagged:
        return thoughts
    vectorizer = TfidfVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{3,}\b")
    try:
        weights = vectorizer.fit_transform([texts[item] for item in untagged]).tocsr()
    except ValueError:  # nothing but stop words in every long text
        weights = None
    vocabulary = vectorizer.get_feature_names_out() if weights is not None else np.array([])
    for row, item in enumerate(untagged):
        scores = weights.getrow(row) if weights is not None else None
        if scores is None or scores.nnz == 0:
            thoughts[item] = " ".join(texts[item].split()[:MAX_THOUGHT_WORDS])
            continue
        best = scores.indices[np.argsort(-scores.data, kind="stable")[:KEYWORDS_PER_THOUGHT]]
        thoughts[item] = ", ".join(vocabulary[best])
    return thoughts
