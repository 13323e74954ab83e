"""Bad inputs through every job's command line: a documented error or a clean report, never a traceback.

Each case breaks a copy of a tiny world's catalogue (48 items, imported as your own items.parquet and
interactions.parquet), runs the job's ``main([...])`` in process and checks the exit status, that the message
names the field or problem, and that no traceback was printed. Unusable inputs exit non-zero with one
``job: message`` line; recoverable bad rows and media go through with a summary line per table.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from serendip.jobs import build_tree, curate, evaluate, popular_corpus, train_mllm
from serendip.models.mllm.training import TrainingConfig
from serendip.offline.world import WorldConfig, generate_world

BUILD_OPTIONS = "--branching 2,2,2,2 --collaborative-weight 1 --text-weight 1 --visual-weight 1 --workers 1 --quiet"
"""build_tree options of every case: the tiny world's branching, no weight search (a build takes about a second)."""
Tables = tuple[pd.DataFrame, pd.DataFrame | None]
Breakage = Callable[[pd.DataFrame, pd.DataFrame, Path], Tables]


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48-item world: 2x2x2x2 taxonomy, real mp4s and thumbnails."""
    config = WorldConfig(num_items=48, num_users=80, branching=(2, 2, 2, 2), seed=7, workers=1, fresh_uploads=0)
    return generate_world(config, tmp_path_factory.mktemp("bad-inputs"), progress=False, log=lambda _: None)


@pytest.fixture(scope="module")
def tables(world_dir: Path) -> Tables:
    """The world's items (media paths made absolute) and interactions, as your own catalogue would hold them."""
    items = pd.read_parquet(world_dir / "items.parquet")
    for column in ("video_path", "thumbnail_path"):
        items[column] = [str(world_dir / path) for path in items[column]]
    return items, pd.read_parquet(world_dir / "interactions.parquet")


def _write(directory: Path, items: pd.DataFrame, interactions: pd.DataFrame | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    items.to_parquet(directory / "items.parquet")
    if interactions is not None:
        interactions.to_parquet(directory / "interactions.parquet")
    return directory


@pytest.fixture(scope="module")
def clean_dir(tables: Tables, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The intact catalogue imported into an artifacts root, with its tree and a text-only curation."""
    root = _write(tmp_path_factory.mktemp("clean"), *tables)
    build_tree.main(["--artifacts", str(root), *BUILD_OPTIONS.split()])
    curate.main(["--artifacts", str(root), "--variants", "text_only", "--top-k", "2", "--quiet"])
    return root


def _corrupt(column: str, count: int | None) -> Breakage:
    """Copies the first ``count`` (None: every) files of ``column`` into the case's dir, overwritten with garbage."""

    def breakage(items: pd.DataFrame, interactions: pd.DataFrame, directory: Path) -> Tables:
        items = items.copy()
        chosen = items.index[:count] if count else items.index
        for row in chosen:
            broken = directory / f"broken-{items.at[row, 'item_id']}{Path(items.at[row, column]).suffix}"
            broken.write_bytes(b"not media " * 20)
            items.at[row, column] = str(broken)
        return items, interactions

    return breakage


def _unknown_items(items: pd.DataFrame, interactions: pd.DataFrame, _: Path) -> Tables:
    interactions = interactions.copy()
    interactions.loc[interactions.index[:5], "item_id"] = "no-such-item"
    return items, interactions


CASES: list[tuple[str, ModuleType, Breakage, str, bool, str]] = [
    # (id, job, breakage, options, fails, text the output must hold)
    (
        "items-missing-column",
        build_tree,
        lambda items, interactions, _: (items.drop(columns="title"), interactions),
        f"--items {{items}} --interactions {{interactions}} {BUILD_OPTIONS}",
        True,
        "lacks required column(s) ['title']",
    ),
    (
        "interactions-missing-column",
        curate,
        lambda items, interactions, _: (items, interactions.drop(columns="satisfaction")),
        "--items {items} --interactions {interactions} --tree {tree} --quiet",
        True,
        "lacks required column(s) ['satisfaction']",
    ),
    (
        "items-missing-column",
        popular_corpus,
        lambda items, interactions, _: (items.drop(columns="item_id"), None),
        "--items {items}",
        True,
        "lacks required column(s) ['item_id']",
    ),
    (
        "duplicate-ids",
        build_tree,
        lambda items, interactions, _: (pd.concat([items, items.head(2)]), interactions),
        f"--items {{items}} --interactions {{interactions}} {BUILD_OPTIONS}",
        False,
        "items: 50 rows, 2 dropped (duplicate_item_id: 2), 0 repaired",
    ),
    (
        "duplicate-ids",
        popular_corpus,
        lambda items, interactions, _: (pd.concat([items, items.head(2)]), None),
        "--items {items}",
        False,
        "items: 50 rows, 2 dropped (duplicate_item_id: 2), 0 repaired",
    ),
    (
        "unknown-items",
        curate,
        _unknown_items,
        "--items {items} --interactions {interactions} --tree {tree} --top-k 2 --quiet",
        False,
        "5 dropped (unknown_item: 5)",
    ),
    (
        "corrupt-mp4",
        build_tree,
        _corrupt("video_path", 3),
        f"--items {{items}} --interactions {{interactions}} {BUILD_OPTIONS}",
        False,
        "3 videos could not be decoded",
    ),
    (
        "corrupt-mp4",
        curate,
        _corrupt("video_path", 3),
        "--items {items} --interactions {interactions} --tree {tree} --frame-counts 1 --quiet",
        False,
        "video or thumbnail unusable (first: v00: ",
    ),
    (
        "corrupt-jpeg",
        curate,
        _corrupt("thumbnail_path", 3),
        "--items {items} --interactions {interactions} --tree {tree} --frame-counts 1 --quiet",
        False,
        "cannot read image",
    ),
    (
        "no-usable-media",
        curate,
        _corrupt("video_path", None),
        "--items {items} --interactions {interactions} --tree {tree} --frame-counts 1 --quiet",
        True,
        "--variants text_only",
    ),
    (
        "no-media-at-all",
        build_tree,
        lambda items, interactions, _: (items.drop(columns=["video_path", "thumbnail_path"]), interactions),
        f"--items {{items}} --interactions {{interactions}} {BUILD_OPTIONS}",
        False,
        "tree (kmeans) of 48 items",
    ),
    (
        "no-media-at-all",
        curate,
        lambda items, interactions, _: (items.assign(video_path=None, thumbnail_path=None), interactions),
        "--items {items} --interactions {interactions} --tree {tree} --top-k 2 --quiet",
        False,
        '"video_variants": "disabled: no item has a video"',
    ),
    (
        "no-impressions",
        popular_corpus,
        lambda items, interactions, _: (items.drop(columns="impressions"), interactions),
        "--items {items}",
        True,
        "has no impressions column: pass --interactions",
    ),
    (
        "no-impressions",
        popular_corpus,
        lambda items, interactions, _: (items.drop(columns="impressions"), interactions),
        "--items {items} --interactions {interactions}",
        False,
        "impressions absent, counted from interactions",
    ),
    (
        "imported-without-interactions",
        curate,
        lambda items, interactions, _: (items, None),
        "--tree {tree} --quiet",
        True,
        "curation needs interactions",
    ),
    (
        "imported-catalogue",
        build_tree,
        lambda items, interactions, _: (items.drop(columns="impressions"), interactions),
        BUILD_OPTIONS,
        False,
        "tree (kmeans) of 48 items",
    ),
    (
        "nothing-imported",
        build_tree,
        lambda items, interactions, _: (items, interactions),
        f"--artifacts {{tmp}}/empty {BUILD_OPTIONS}",
        True,
        "holds no catalogue",
    ),
    (
        "unsupported-variant",
        train_mllm,
        lambda items, interactions, _: (items, interactions),
        "--curation {clean}/curation --variant video_cot --steps 1",
        True,
        "use --variant text_only",
    ),
    (
        "missing-curation",
        train_mllm,
        lambda items, interactions, _: (items, interactions),
        "--curation {tmp}/nowhere --steps 1",
        True,
        "is not an artifact",
    ),
]


def _run(job: ModuleType, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and everything printed, as the shell would see them."""
    try:
        job.main(argv)
        status, message = 0, ""
    except SystemExit as exit_info:
        code = exit_info.code
        status, message = (code, "") if isinstance(code, int) else (1, str(code))
    captured = capsys.readouterr()
    return status, captured.out + captured.err + message


def _options(template: str, directory: Path, clean_dir: Path, tmp_path: Path) -> list[str]:
    paths = {
        "items": directory / "items.parquet",
        "interactions": directory / "interactions.parquet",
        "tree": clean_dir / "tree",
        "clean": clean_dir,
        "tmp": tmp_path,
    }
    argv = template.format(**paths).split()
    return argv if "--artifacts" in argv else [*argv, "--artifacts", str(directory)]


@pytest.mark.parametrize(
    ("job", "breakage", "template", "fails", "expected"),
    [pytest.param(*case[1:], id=f"{case[1].__name__.rsplit('.', 1)[-1]}-{case[0]}") for case in CASES],
)
def test_bad_input_gives_a_message_not_a_traceback(
    job: ModuleType,
    breakage: Breakage,
    template: str,
    fails: bool,
    expected: str,
    tables: Tables,
    clean_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory = _write(tmp_path / "catalogue", *breakage(*tables, tmp_path))
    argv = _options(template, directory, clean_dir, tmp_path)
    status, output = _run(job, argv, capsys)
    assert (status != 0) == fails, output
    assert expected in output
    assert "Traceback" not in output


def test_train_mllm_trains_the_variant_the_curation_supports(
    clean_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = []

    def stop_before_training(curation_dir: Path, config: TrainingConfig, *args: object, **kwargs: object) -> None:
        chosen.append(config.variant)
        raise SystemExit(0)

    monkeypatch.setattr(train_mllm, "train_planner", stop_before_training)
    status, output = _run(train_mllm, ["--curation", str(clean_dir / "curation")], capsys)
    assert status == 0 and chosen == ["text_only"]
    assert "variant text_only: the curation has no video_cot rows" in output


def _replay_logs(directory: Path, items: pd.DataFrame) -> Path:
    """A one-request log directory in the schema of docs/evaluation.md, and an items file without titles."""
    directory.mkdir()
    (directory / "arms.json").write_text('[{"name": "a", "role": "control", "label": "A"}]')
    first, second = items["item_id"].iloc[:2]
    request = {"request_id": ["r"], "user_id": ["u"], "arm": ["a"], "context_item_id": [first], "history": [[first]]}
    pd.DataFrame(request).to_parquet(directory / "requests.parquet")
    impression = {"request_id": ["r"], "arm": ["a"], "item_id": [second], "position": [0], "positive": [True]}
    pd.DataFrame(impression).to_parquet(directory / "impressions.parquet")
    items.drop(columns="title").to_parquet(directory / "items.parquet")
    return directory


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param("--replay {tmp}", "arms.json is missing", id="logs-missing-file"),
        pytest.param(
            "--replay {logs} --items {logs}/items.parquet",
            "lacks required column(s) ['title']",
            id="items-missing-column",
        ),
    ],
)
def test_evaluate_replay_of_bad_logs(
    options: str, expected: str, tables: Tables, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = _replay_logs(tmp_path / "logs", tables[0])
    argv = [*options.format(tmp=tmp_path, logs=logs).split(), "--report-dir", str(tmp_path / "report"), "--quiet"]
    status, output = _run(evaluate, argv, capsys)
    assert status != 0 and expected in output and "Traceback" not in output


def test_the_process_exits_with_one_line(tmp_path: Path) -> None:
    pd.DataFrame({"item_id": ["a"]}).to_parquet(tmp_path / "items.parquet")
    argv = [sys.executable, "-m", "serendip.jobs.popular_corpus", "--items", str(tmp_path / "items.parquet")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(f"popular_corpus: {tmp_path}/items.parquet: items table lacks required column(s)")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stdout + result.stderr
