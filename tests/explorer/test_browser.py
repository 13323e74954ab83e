"""The explorer end to end: real stack, real HTTP server, headless Chromium (slow: a pipeline and a stack)."""

from __future__ import annotations

import http.client
import io
import json
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import numpy as np
import pytest
from PIL import Image

from serendip.artifacts.world import WORLD_KIND, load_world
from serendip.v1 import common_pb2, planner_pb2, planner_pb2_grpc
from tests.explorer.conftest import Explorer

pytestmark = pytest.mark.slow

PAGE_LOADS = 5


def direct_plan(stack, item_id: str) -> planner_pb2.PlanResponse:
    with grpc.insecure_channel(stack.planner_address) as channel:
        request = planner_pb2.PlanRequest(context_item=common_pb2.ItemRef(item_id=item_id), include_reasoning=True)
        return planner_pb2_grpc.PlannerStub(channel).Plan(request, timeout=5)


def direct_recommend(stack, item_id: str, num_items: int = 12) -> planner_pb2.RecommendResponse:
    with grpc.insecure_channel(stack.planner_address) as channel:
        request = planner_pb2.RecommendRequest(context_item=common_pb2.ItemRef(item_id=item_id), num_items=num_items)
        return planner_pb2_grpc.PlannerStub(channel).Recommend(request, timeout=5)


def settled_plan(stack, item_id: str, timeout_s: float = 60.0) -> planner_pb2.PlanResponse:
    """The item's plan once it is served from the plan table (the Planner writes misses back nearline)."""
    deadline = time.monotonic() + timeout_s
    plan = direct_plan(stack, item_id)
    while plan.source != planner_pb2.PLAN_SOURCE_CACHE and time.monotonic() < deadline:
        time.sleep(0.5)
        plan = direct_plan(stack, item_id)
    return plan


def open_page(driver, url: str) -> None:
    driver.get(url)
    wait_loaded(driver, url)


def click_and_wait(driver, element) -> None:
    """Click a link or submit button and wait until the page it leads to has loaded."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    element.click()
    WebDriverWait(driver, 60).until(expected_conditions.staleness_of(element))
    wait_loaded(driver, driver.current_url)


def wait_loaded(driver, url: str) -> None:
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.readyState") != "complete":
        assert time.monotonic() < deadline, f"{url} did not finish loading"
        time.sleep(0.05)


def image_sizes(driver, selector: str = "img") -> list[tuple[str, int]]:
    """(src, naturalWidth) of every matching image once each has finished loading."""
    script = (
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(img => [img.getAttribute('src').slice(0, 80), img.complete ? img.naturalWidth : -1]);"
    )
    deadline = time.monotonic() + 20
    sizes = driver.execute_script(script, selector)
    while any(width < 0 for _, width in sizes) and time.monotonic() < deadline:
        time.sleep(0.1)
        sizes = driver.execute_script(script, selector)
    return [(src, width) for src, width in sizes]


def texts(driver, selector: str, attribute: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [element.get_attribute(attribute) for element in driver.find_elements(By.CSS_SELECTOR, selector)]


def most_watched_item(artifacts: Path) -> str:
    items = load_world(artifacts / WORLD_KIND).items
    return str(items.sort_values(["impressions", "item_id"], ascending=[False, True])["item_id"].iloc[0])


def test_plan_view_shows_what_the_services_answer(explorer: Explorer, browser, screenshots: Path) -> None:
    from selenium.webdriver.common.by import By

    item_id = most_watched_item(explorer.artifacts)
    plan = settled_plan(explorer.stack, item_id)
    recommend = direct_recommend(explorer.stack, item_id)

    load_ms = []
    for _ in range(PAGE_LOADS):
        open_page(browser, f"{explorer.url}/item/{item_id}")
        timing = browser.execute_script("return performance.getEntriesByType('navigation')[0].toJSON()")
        load_ms.append(timing["loadEventEnd"] - timing["startTime"])
    browser.save_screenshot(str(screenshots / "plan_view.png"))
    (screenshots / "plan_view_load_ms.json").write_text(
        json.dumps({"item_id": item_id, "loads_ms": load_ms, "median_ms": statistics.median(load_ms)}, indent=2)
    )
    print(f"plan view page load (navigation start -> load event, {PAGE_LOADS} loads): {load_ms} ms")

    sources = planner_pb2.PlanSource.Name(plan.source).removeprefix("PLAN_SOURCE_")
    assert browser.find_element(By.ID, "plan-source").text == sources
    assert texts(browser, ".plan-cluster", "data-cluster-id") == [c.cluster.cluster_id for c in plan.clusters]
    assert texts(browser, "#recommend .card", "data-item-id") == [item.item_id for item in recommend.items]
    if plan.clusters and plan.clusters[0].reasoning:
        assert browser.find_element(By.ID, "plan-reasoning").text == plan.clusters[0].reasoning.strip()
    first_reason = browser.find_element(By.CSS_SELECTOR, "#recommend .reason").text
    assert first_reason == recommend.items[0].reason
    sizes = image_sizes(browser)
    assert len(sizes) > len(recommend.items)
    assert all(width > 0 for _, width in sizes), [src for src, width in sizes if width <= 0]


def test_history_picker_sends_recent_history(explorer: Explorer, browser) -> None:
    from selenium.webdriver.common.by import By

    item_id = most_watched_item(explorer.artifacts)
    open_page(browser, f"{explorer.url}/item/{item_id}")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "#recommend .add-history"))
    history = texts(browser, "#history .card", "data-item-id")
    assert len(history) == 1
    with grpc.insecure_channel(explorer.stack.planner_address) as channel:
        request = planner_pb2.PlanRequest(
            context_item=common_pb2.ItemRef(item_id=item_id),
            recent_history=common_pb2.RecentHistory(events=[common_pb2.HistoryEvent(item_id=history[0])]),
            include_reasoning=True,
        )
        plan = planner_pb2_grpc.PlannerStub(channel).Plan(request, timeout=5)
    assert texts(browser, ".plan-cluster", "data-cluster-id") == [c.cluster.cluster_id for c in plan.clusters]


def test_catalogue_search_and_cluster_filter(explorer: Explorer, browser, screenshots: Path) -> None:
    from selenium.webdriver.common.by import By

    items = load_world(explorer.artifacts / WORLD_KIND).items
    word = str(items["title"].iloc[0]).split()[0]
    open_page(browser, f"{explorer.url}/?q={word}")
    found = texts(browser, "#catalogue .card", "data-item-id")
    expected = items[items["title"].str.lower().str.contains(word.lower(), regex=False)]
    assert found and set(found) <= set(expected["item_id"])
    assert all(width > 0 for _, width in image_sizes(browser, "#catalogue img"))
    browser.save_screenshot(str(screenshots / "catalogue.png"))

    open_page(browser, f"{explorer.url}/")
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(By.ID, "cluster-filter")).select_by_index(1)
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    cluster_id = urlsplit(browser.current_url).query.split("cluster=")[1].split("&")[0]
    cards = browser.find_elements(By.CSS_SELECTOR, "#catalogue .card")
    assert cards
    for card in cards:
        path = [a.get_attribute("href").rsplit("/", 1)[1] for a in card.find_elements(By.CSS_SELECTOR, ".path a")]
        assert cluster_id in path


def jpeg_bytes(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def upload(browser, url: str, path: Path, title: str) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, f"{url}/upload")
    browser.find_element(By.ID, "upload-file").send_keys(str(path))
    browser.find_element(By.ID, "upload-title").send_keys(title)
    click_and_wait(browser, browser.find_element(By.ID, "upload-submit"))


def test_uploaded_jpeg_gets_a_live_or_fallback_plan(
    explorer: Explorer, browser, screenshots: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    image = tmp_path / "upload.jpg"
    image.write_bytes(jpeg_bytes(seed=time.time_ns() % 2**32))
    upload(browser, explorer.url, image, "a fresh upload: juggling at the beach")
    assert browser.find_element(By.ID, "plan-source").text in {"LIVE", "FALLBACK"}
    assert texts(browser, ".plan-cluster", "data-cluster-id")
    assert texts(browser, "#recommend .card", "data-item-id")
    browser.save_screenshot(str(screenshots / "upload_plan.png"))


def test_bad_upload_shows_the_services_invalid_argument(
    explorer: Explorer, browser, screenshots: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    bad = tmp_path / "not-a-picture.jpg"
    bad.write_text("this is not a JPEG")
    upload(browser, explorer.url, bad, "broken")
    error = browser.find_element(By.CSS_SELECTOR, "#plan-error .grpc-error")
    assert error.get_attribute("data-code") == "INVALID_ARGUMENT"
    assert "context_content." in error.text and "JPEG" in error.text
    assert "Traceback" not in browser.page_source
    browser.save_screenshot(str(screenshots / "bad_upload.png"))


def test_tree_and_reports(explorer: Explorer, browser) -> None:
    from selenium.webdriver.common.by import By

    open_page(browser, f"{explorer.url}/tree")
    level_rows = browser.find_elements(By.CSS_SELECTOR, "#levels tr")
    assert len(level_rows) == 1 + 4
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, ".cluster ul a"))  # a level-2 node
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "table a"))  # its first level-3 child
    assert browser.find_elements(By.CSS_SELECTOR, "#siblings tr")
    assert "Retriever.Retrieve" in browser.page_source
    assert all(width > 0 for _, width in image_sizes(browser))

    open_page(browser, f"{explorer.url}/reports")
    figures = image_sizes(browser, "figure img")
    assert sorted(src.rsplit("/", 1)[1] for src, _ in figures) == ["fig6_novelty_quality.png", "hit_ratio.png"]
    assert all(width > 0 for _, width in figures)
    assert "<strong>+12 %</strong>" in browser.page_source


@pytest.mark.parametrize(
    "path",
    [
        "/media/../pyproject.toml",
        "/media/%2e%2e/%2e%2e/etc/passwd",
        "/media/..%2f..%2fetc%2fpasswd",
        "/media//etc/passwd",
        "/media/world/..%5c..%5cetc%5cpasswd",
        "/media/outside.png",
        "/media/world/LATEST",
        "/reports/file/../BENCHMARKS.md",
        "/reports/file/%2e%2e/%2e%2e/etc/hostname",
    ],
)
def test_no_path_leaves_the_served_roots(explorer: Explorer, path: str) -> None:
    outside = explorer.artifacts.parent / "outside.png"
    Image.new("RGB", (4, 4)).save(outside)
    link = explorer.artifacts / "outside.png"
    if not link.is_symlink():
        link.symlink_to(outside)
    host, port = urlsplit(explorer.url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", path)  # sent as written: no client-side normalisation
    response = connection.getresponse()
    body = response.read()
    assert response.status == 404, (path, body[:200])
    assert b"root:" not in body


def test_artifact_images_are_served(explorer: Explorer) -> None:
    world = load_world(explorer.artifacts / WORLD_KIND)
    relative = world.dir.relative_to(explorer.artifacts).as_posix()
    connection = http.client.HTTPConnection(*urlsplit(explorer.url).netloc.split(":"), timeout=10)
    connection.request("GET", f"/media/{relative}/thumbnails/{world.items['item_id'].iloc[0]}.jpg")
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("content-type") == "image/jpeg"
    assert Image.open(io.BytesIO(response.read())).width > 0


def test_page_works_with_triton_down(explorer: Explorer, browser, screenshots: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    stack = explorer.stack
    stack.kill_triton()
    try:
        image = tmp_path / "upload.jpg"
        image.write_bytes(jpeg_bytes(seed=7 + time.time_ns() % 1000))
        upload(browser, explorer.url, image, "uploaded while the model server is down")
        assert browser.find_element(By.ID, "plan-source").text == "FALLBACK"
        assert "FALLBACK: the log-based policy answered" in browser.page_source
        assert texts(browser, ".plan-cluster", "data-cluster-id")
        assert not browser.find_elements(By.ID, "plan-error")
        browser.save_screenshot(str(screenshots / "triton_down.png"))
    finally:
        stack.restart_triton()
