"""The explorer against the real stack, in a real browser.

The SMALL pipeline and a ServingStack as in ``tests/planner/conftest.py`` (built once per session), the
explorer served by uvicorn on a free loopback port, and headless Chromium from the distribution's packages
driven by selenium. Chromium is installed with apt-get when missing and the tests run as root; otherwise
the browser tests skip, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from serendip.artifacts.lineage import resolve_bundle
from serendip.artifacts.model_repository import REPOSITORY_KIND
from serendip.explorer.app import ExplorerSettings, create_app
from serendip.pipeline import SMALL, run_pipeline
from serendip.stack import ServingStack
from triton_models.launcher import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1300,1400",
)


@dataclass(frozen=True)
class Explorer:
    """A running explorer: its base URL and what it reads."""

    url: str
    artifacts: Path
    reports: Path
    stack: ServingStack


@pytest.fixture(scope="session")
def explorer_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """world (200 items) -> tree -> curation -> MLLM (a few steps) -> SASRec -> model repository."""
    root = tmp_path_factory.mktemp("explorer-artifacts")
    run_pipeline(root, SMALL, until=REPOSITORY_KIND, log=lambda _: None)
    return root


@pytest.fixture(scope="session")
def explorer_stack(explorer_artifacts: Path) -> Iterator[ServingStack]:
    """Real tritonserver (mllm + seqrec), Retriever and Planner on loopback, from the pipeline's lineage."""
    with ServingStack(resolve_bundle(explorer_artifacts), plans_poll_s=0.2) as stack:
        yield stack


@pytest.fixture(scope="session")
def explorer_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reports directory with one evaluation report (a figure and a table) and a BENCHMARKS.md naming a figure."""
    from PIL import Image

    reports = tmp_path_factory.mktemp("reports")
    eval_dir = reports / "eval" / "20260101T000000"
    eval_dir.mkdir(parents=True)
    Image.new("RGB", (120, 80), (30, 90, 160)).save(eval_dir / "fig6_novelty_quality.png")
    (eval_dir / "table.md").write_text("# Offline A/B\n\n| arm | novelty |\n|---|---|\n| mllm | **+12 %** |\n")
    replay_dir = reports / "replay" / "20260101T000000"
    replay_dir.mkdir(parents=True)
    Image.new("RGB", (120, 80), (160, 90, 30)).save(replay_dir / "hit_ratio.png")
    (reports / "BENCHMARKS.md").write_text(
        "# Benchmarks\n\nHit ratio over time: `reports/replay/20260101T000000/hit_ratio.png`.\n"
    )
    return reports


@pytest.fixture(scope="session")
def explorer(explorer_artifacts: Path, explorer_stack: ServingStack, explorer_reports: Path) -> Iterator[Explorer]:
    """The explorer app on uvicorn, in a thread, on a free loopback port."""
    settings = ExplorerSettings(
        artifacts=explorer_artifacts,
        planner_address=explorer_stack.planner_address,
        retriever_address=explorer_stack.retriever_address,
        reports=explorer_reports,
        benchmarks=explorer_reports / "BENCHMARKS.md",
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="explorer", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the explorer did not start")
        time.sleep(0.05)
    yield Explorer(f"http://127.0.0.1:{port}", explorer_artifacts, explorer_reports, explorer_stack)
    server.should_exit = True
    thread.join(10)


def ensure_chromium() -> str | None:
    """None when Chromium and chromedriver are there (installed now if missing and root); else why not."""
    if CHROMIUM.is_file() and CHROMEDRIVER.is_file():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{CHROMIUM} or {CHROMEDRIVER} missing; install them with `apt-get install chromium chromium-driver`"
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]
    for command in (install, ["apt-get", "update", "-qq"], install):
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode == 0 and CHROMIUM.is_file() and CHROMEDRIVER.is_file():
            return None
    return f"could not install chromium chromium-driver with apt-get: {done.stderr.strip()[-500:]}"


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless Chromium driven by selenium, with a fresh profile; skipped when Chromium cannot be had."""
    reason = ensure_chromium()
    if reason is not None:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots(pytestconfig: pytest.Config) -> Path:
    """reports/explore/ under the repository root."""
    directory = pytestconfig.rootpath / "reports" / "explore"
    directory.mkdir(parents=True, exist_ok=True)
    return directory
