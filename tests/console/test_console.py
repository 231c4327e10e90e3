"""The SONA console in a real headless Chromium against a real server (issue 16).

Each test opens ``/`` in a fresh page, drives it like a person (typing, picking, clicking)
and asserts what the page shows, then that the browser console logged no error. The
experiment test runs last: a running experiment changes what every viewer is served.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_fixtures import Console

from sona.sync.client import SyncClient
from sona.testing.http import call

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.realdata]

TIMEOUT_MS = 60_000  # the first search loads the MiniLM query encoder (~10 s on 2 cores)


def screenshot_dir(fallback: Path) -> Path:
    """``$SONA_SCREENSHOT_DIR`` (to look at the page after a run), else ``fallback``."""
    found = Path(os.environ.get("SONA_SCREENSHOT_DIR") or fallback)
    found.mkdir(parents=True, exist_ok=True)
    return found


class Page:
    """A playwright page on the console that records console errors and page exceptions."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.set_default_timeout(TIMEOUT_MS)

    def texts(self, selector: str) -> list[str]:
        return [str(t) for t in self.page.locator(selector).all_inner_texts()]

    def ids(self, selector: str) -> list[str]:
        return [str(x) for x in self.page.locator(selector).evaluate_all(
            "nodes => nodes.map(n => n.dataset.id)")]


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    wrapped = Page(context.new_page())
    wrapped.page.goto(console.url + "/")
    # the status bar and the first viewer's list load on their own
    wrapped.page.wait_for_selector("#rec-list li.rec")
    yield wrapped
    context.close()


def test_page_shows_health_model_and_leaderboard(page: Page, console: Console) -> None:
    p = page.page
    assert p.title() == "SONA console"
    p.wait_for_function("document.querySelector('#model-pill').textContent.includes('v1')")
    assert p.inner_text("#health-pill") == "health: healthy"
    assert p.inner_text("#ready-pill") == "ready: healthy"
    assert "console-recs v1" in p.inner_text("#model-pill")
    assert "collaborative 0.50" in p.inner_text("#blend")
    # the leaderboard is the repository's experiments/results, ml100k-pipeline first shown
    p.wait_for_selector("#board-table tr.run")
    assert p.locator("#board-select").input_value() != ""
    board = p.locator("#board-select option:checked").inner_text()
    assert board == "ml100k-pipeline"
    first = p.locator("#board-table tr.run").first.locator("td").all_inner_texts()
    assert first[0] == "1" and float(first[2]) > 0.3  # ndcg@10 of the best run
    link = p.locator("#board-table tr.run a").first.get_attribute("href") or ""
    assert link.startswith("http://127.0.0.1:5000/#/runs/") and len(link) > 35
    assert page.errors == []


def test_search_with_autocomplete_facets_and_similar(page: Page, console: Console,
                                                     tmp_path: Path) -> None:
    p = page.page
    p.locator("#search-input").press_sequentially("star w", delay=30)
    p.wait_for_selector("#suggestions li")
    suggestions = page.texts("#suggestions li")
    assert suggestions[0].startswith("Star Wars")
    p.locator("#suggestions li").first.dispatch_event("mousedown")
    p.wait_for_selector("#search-results li")
    assert p.input_value("#search-input") == "Star Wars"
    titles = page.texts("#search-results li .title")
    assert titles[0].startswith("Star Wars (1977)")
    assert "results in" in p.inner_text("#search-meta")
    # facets: genre buckets with counts; picking one filters every result to it
    genres = p.locator("#facets button[data-facet='genres']")
    assert genres.count() > 0
    assert p.inner_text("#facets") .count("no platform data") == 1  # ML-100K has no offers
    p.locator("#facets button[data-facet='genres'][data-value='sci_fi']").click()
    p.wait_for_selector("#facets button.on[data-value='sci_fi']")
    rows = p.locator("#search-results li")
    assert rows.count() > 0
    for i in range(rows.count()):
        assert "sci_fi" in rows.nth(i).inner_text()
    assert "sci_fi ✕" in p.inner_text("#active-filters")
    # similar items of the first result
    p.locator("#search-results li button:has-text('similar')").first.click()
    p.wait_for_selector("#similar-list li")
    assert "Like" in p.inner_text("#similar-meta")
    assert len(page.texts("#similar-list li")) == 10
    p.screenshot(path=str(screenshot_dir(tmp_path) / "console-search.png"), full_page=True)
    assert page.errors == []


def test_viewer_context_changes_the_list_and_explains_it(page: Page, console: Console,
                                                         tmp_path: Path) -> None:
    p = page.page
    viewers = p.locator("#viewer-select option").all_inner_texts()
    assert len(viewers) == 50
    p.select_option("#viewer-select", viewers[5])
    p.wait_for_function(f"document.querySelector('#rec-meta').textContent"
                        f".startsWith('viewer {viewers[5]} ')")
    plain = page.ids("#rec-list li.rec")
    assert len(plain) == 10
    assert "personalized" in p.inner_text("#rec-meta")
    # titles, not bare ids, and the sources each item is based on
    assert not any(t.startswith("item ") for t in page.texts("#rec-list li.rec .title"))
    assert "collaborative" in p.inner_text("#rec-list li.rec >> nth=0")

    # a scared viewer watching with friends at night on a phone: another list
    p.select_option("#ctx-mood", "scared")
    p.check("#viewer-panel input.ctx-with[value='friends']")
    p.select_option("#ctx-time", "night")
    p.select_option("#ctx-device", "mobile")
    p.wait_for_function("ids => { const now = [...document.querySelectorAll('#rec-list li.rec')]"
                        ".map(n => n.dataset.id); return now.length === 10 && "
                        "now.join() !== ids.join(); }", arg=plain)
    in_context = page.ids("#rec-list li.rec")
    assert in_context != plain
    assert "context" in p.inner_text("#rec-list")  # context now drives some items

    # why? shows each source's normalised score times its blend weight
    p.locator("#rec-list li.rec button:has-text('why?')").first.click()
    # the box says "scoring..." until the score answers, then shows the table or the error
    p.wait_for_function("() => { const b = document.querySelector('#rec-list .explain');"
                        " return b && !b.hidden && !b.textContent.startsWith('scoring'); }")
    shown = p.locator("#rec-list .explain").first
    assert shown.locator("table.components").count() == 1, (
        f"why? shows {shown.inner_text()!r}; server log:\n{console.server.log_tail()}")
    explain = p.inner_text("#rec-list .explain")
    assert "score 0." in explain or "score 1." in explain
    for source, weight in [("collaborative", "× 0.50"), ("content_based", "× 0.20"),
                           ("context", "× 0.30")]:
        assert source in explain and weight in explain
    p.screenshot(path=str(screenshot_dir(tmp_path) / "console-viewer.png"), full_page=True)
    assert page.errors == []


def test_continue_watching_shows_synced_progress(page: Page, console: Console,
                                                 tmp_path: Path) -> None:
    p = page.page
    viewer = p.locator("#viewer-select option").first.inner_text()
    client = SyncClient(console.url, user_id=viewer, device_id="console-tv",
                        api_key=console.admin_key, queue_path=tmp_path / "queue.db")
    client.register(name="living room", device_type="tv")
    client.set_progress("50", 1800.0, 7260.0)  # Star Wars, a quarter in
    client.set_progress("1", 4800.0, 4860.0)  # Toy Story, finished: not shown
    assert client.push() == 2
    assert "API key" in p.inner_text("#continue-meta")
    p.fill("#api-key", console.admin_key)
    p.dispatch_event("#api-key", "change")
    p.wait_for_selector("#continue-list li.progress")
    assert page.ids("#continue-list li.progress") == ["50"]
    assert "Star Wars" in p.inner_text("#continue-list") and "25%" in p.inner_text(
        "#continue-list")
    assert page.errors == []


def test_experiment_report_opens_and_refreshes(page: Page, console: Console,
                                               tmp_path: Path) -> None:
    base, key = console.url, console.admin_key
    status, made = call("POST", f"{base}/api/v1/experiments", {
        "name": "console-mmr", "variants": [
            {"name": "control", "weight": 0.5},
            {"name": "diverse", "weight": 0.5, "config": {"mmr_lambda": 0.5}}]}, key)
    assert status == 200, made
    exp_id = made["experiment_id"]
    assert call("PUT", f"{base}/api/v1/experiments/{exp_id}/status", {"status": "running"},
                key)[0] == 200
    events = []
    for user in range(1, 41):
        status, rec = call("POST", f"{base}/api/v1/recommendations",
                           {"user_id": str(user), "limit": 5})
        assert status == 200 and rec["experiment_id"] == exp_id
        if user % 3 == 0:
            events.append({"event_id": f"c{user}", "user_id": str(user), "metric": "click",
                           "exposure_id": rec["exposure_id"], "position": 0,
                           "item_id": rec["recommendations"][0]["content_id"]})
    status, out = call("POST", f"{base}/api/v1/events", {"events": events}, key)
    assert status == 200 and out["recorded"] == len(events)

    p = page.page
    assert "admin scope" in p.inner_text("#experiments-meta")
    p.fill("#api-key", key)
    p.dispatch_event("#api-key", "change")
    row = p.locator(f"#experiments-table tr[data-id='{exp_id}']")
    row.wait_for()
    assert "running" in row.inner_text() and "diverse 0.50" in row.inner_text()
    row.locator("button.report-button").click()
    p.wait_for_selector("#report-variants tr.variant-row")
    variants = p.locator("#report-variants tr.variant-row")
    assert variants.count() == 2
    users = [int(variants.nth(i).locator("td").nth(2).inner_text()) for i in range(2)]
    assert sum(users) == 40
    assert "metric click" in p.inner_text("#report-meta")
    assert p.locator("#report-chart svg rect").count() == 2
    assert "diverse vs control" in p.inner_text("#report-comparisons")
    # live: a new conversion shows up on the next refresh without a reload
    before = p.inner_text("#report-variants")
    status, rec = call("POST", f"{base}/api/v1/recommendations", {"user_id": "1", "limit": 5})
    assert call("POST", f"{base}/api/v1/events", {"events": [
        {"event_id": "late", "user_id": "1", "metric": "click",
         "exposure_id": rec["exposure_id"], "position": 0}]}, key)[1]["recorded"] == 1
    p.wait_for_function("before => document.querySelector('#report-variants').innerText "
                        "!== before", arg=before, timeout=15_000)
    p.screenshot(path=str(screenshot_dir(tmp_path) / "console-experiment.png"), full_page=True)
    assert page.errors == []
