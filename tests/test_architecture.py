"""The import contract in pyproject.toml (import-linter): kept by the tree, broken by an upward import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("serendip", "planner", "retriever", "triton_models", "ray_jobs", "bench")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the packages in ``tree`` (first on the path, ahead of the editable install)."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=environment, capture_output=True, text=True, timeout=300
    )


def _copy_tree(target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The project's packages and pyproject.toml, copied (each test may change its copy)."""
    return _copy_tree(tmp_path)


def test_the_tree_keeps_the_layer_contract(project_copy: Path) -> None:
    completed = _lint_imports(project_copy)
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert "0 broken" in completed.stdout


def test_an_upward_import_breaks_it(project_copy: Path) -> None:
    """A service importing a composition root, and a service importing torch, each fail the lint."""
    (project_copy / "retriever" / "upward.py").write_text("import serendip.demo  # noqa: F401\n")
    (project_copy / "planner" / "heavy.py").write_text("import torch  # noqa: F401\n")
    completed = _lint_imports(project_copy)
    assert completed.returncode != 0
    assert "retriever.upward -> serendip.demo" in completed.stdout
    assert "planner.heavy -> torch" in completed.stdout
