"""``serendip.serve``: the Planner and the Retriever must serve clusters of the same tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from serendip.artifacts.store import ArtifactWriter, input_record
from serendip.core.errors import ArtifactError
from serendip.serve import check_same_tree


def _tree(root: Path, seed: int) -> Path:
    with ArtifactWriter(root, "tree", {"seed": seed}) as writer:
        (writer.dir / "nodes.json").write_text(f'{{"seed": {seed}}}')
    return writer.final_dir


def _curation(root: Path, tree: Path) -> Path:
    with ArtifactWriter(root, "curation", {"level": 3}, inputs={"tree": input_record(tree)}) as writer:
        (writer.dir / "examples.json").write_text("[]")
    return writer.final_dir


def test_curation_of_the_served_tree_passes(tmp_path: Path) -> None:
    tree = _tree(tmp_path, 1)
    check_same_tree(_curation(tmp_path, tree), tree)


def test_curation_of_another_tree_is_refused_naming_both(tmp_path: Path) -> None:
    old_tree, new_tree = _tree(tmp_path, 1), _tree(tmp_path, 2)
    curation = _curation(tmp_path, old_tree)
    with pytest.raises(ArtifactError) as error:
        check_same_tree(curation, new_tree)
    assert old_tree.name in str(error.value) and new_tree.name in str(error.value)
    assert "make curate" in str(error.value)
