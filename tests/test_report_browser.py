"""index.html in a real headless browser: Debian's chromium driven by Playwright, the page opened from file://.

No console error, no network request, tables and plots present and loaded, a click on a header sorts
its column, and the plugin named ``<script>alert(1)</script>`` is shown as text (no alert fires). At 1280
and 1920 px the verdict column is on screen, on one line, even with its tables scrolled sideways, and a
policy has one colour everywhere. Screenshots go to test-artifacts/ (the path is printed: look at them).
Install the browser with scripts/install_browser.sh.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_report_html import GRID_NAME, XSS, build_store

from benchmark.report.leaderboard import write_report

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no {CHROMIUM}: install Debian's chromium with scripts/install_browser.sh"
)


@dataclass
class Session:
    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Iterator[Session]:
    from playwright.sync_api import sync_playwright

    folder = tmp_path_factory.mktemp("browser")
    store, registry = build_store(folder)
    write_report(store, folder / "out", grid=GRID_NAME, registry=registry)
    url = (folder / "out" / "index.html").as_uri()
    profile = folder / "profile"
    profile.mkdir()  # an empty user-data-dir
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.new_page()
            s = Session(page, url)
            page.on("request", lambda request: s.requests.append(request.url))
            page.on("console", lambda message: s.errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: s.errors.append(str(error)))

            def dialog(d):
                s.dialogs.append(d.message)
                d.dismiss()

            page.on("dialog", dialog)
            page.goto(url, wait_until="load")
            yield s
        finally:
            context.close()


def test_no_console_error_no_request_no_alert(session):
    assert session.errors == []
    assert session.dialogs == []
    assert session.url in session.requests  # the recording works: it saw the page itself
    assert [u for u in session.requests if u != session.url and not u.startswith("data:")] == []


def test_tables_and_plots_are_present(session):
    page = session.page
    assert page.locator("table.sortable").count() == 2 * 3 + 1
    assert page.locator("#run-table tbody tr").count() == 12
    loaded = page.evaluate(
        "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0 && i.src.startsWith('data:image/png'))"
    )
    assert len(loaded) == 2 + 16 and all(loaded)  # 2 curve figures, 16 gallery panels
    assert page.locator("figure img").first.is_visible()


def test_the_hostile_name_is_text(session):
    page = session.page
    assert page.evaluate("document.scripts.length") == 1
    cells = page.locator("#board-0-0 td", has_text=XSS)
    assert cells.count() >= 1
    assert cells.first.inner_text() == f"{XSS}[loud=True]"
    assert page.locator("h4", has_text=XSS).count() >= 2  # the metric's leaderboards
    assert session.dialogs == []


def column(page, table: str, index: int) -> list[str]:
    return page.eval_on_selector_all(
        f"{table} tbody tr",
        f"rows => rows.map(r => r.cells[{index}].getAttribute('data-sort') ?? r.cells[{index}].textContent)",
    )


def test_clicking_a_header_sorts_its_column(session):
    page = session.page
    headers = page.locator("#run-table thead th")
    names = headers.all_inner_texts()
    seed = names.index("seed")
    before = [float(v) for v in column(page, "#run-table", seed)]
    assert before != sorted(before)  # rows come ordered by run id, which is not the seed order
    headers.nth(seed).click()
    after = [float(v) for v in column(page, "#run-table", seed)]
    assert after == sorted(before) and after != before
    assert headers.nth(seed).get_attribute("aria-sort") == "ascending"
    headers.nth(seed).click()
    assert [float(v) for v in column(page, "#run-table", seed)] == sorted(before, reverse=True)
    # text columns sort as text, and whole rows move with their cells
    policy = names.index("policy")
    pairs = set(zip(column(page, "#run-table", names.index("run")), column(page, "#run-table", policy), strict=True))
    headers.nth(policy).click()
    policies = column(page, "#run-table", policy)
    assert policies == sorted(policies) and policies[0] == f"{XSS}[loud=True]" and policies[-1] == "mix[lambda=0.5]"
    assert set(zip(column(page, "#run-table", names.index("run")), policies, strict=True)) == pairs

    # a leaderboard column of "mean ± half-width" texts sorts by the mean, numerically
    board = page.locator("#board-1-0 thead th")
    auc = board.all_inner_texts().index("level")
    board.nth(auc).click()
    keys = [float(v) for v in column(page, "#board-1-0", auc) if v != ""]
    assert keys == sorted(keys)


def test_screenshots_for_a_person_to_look_at(session):
    ARTIFACTS.mkdir(exist_ok=True)
    page = session.page
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "report-top.png"))
    page.locator("#curves figure").first.screenshot(path=str(ARTIFACTS / "report-curves.png"))
    page.locator("table.gallery").last.screenshot(path=str(ARTIFACTS / "report-gallery.png"))
    for name in ("report-top.png", "report-curves.png", "report-gallery.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000


#: The verdict cells of every leaderboard, as (left, right, height, line height) in CSS pixels.
VERDICT_BOXES = """() => Array.from(document.querySelectorAll("table.sortable[id^=board] td.status")).map(cell => {
  const box = cell.getBoundingClientRect();
  return [box.left, box.right, box.height, parseFloat(getComputedStyle(cell).lineHeight)];
})"""
#: Per data-policy label, the colours of its swatches, and the metric a selector switches to.
SWATCHES = """() => Array.from(document.querySelectorAll("[data-policy] > .swatch")).map(
  s => [s.parentElement.getAttribute("data-policy"), getComputedStyle(s).backgroundColor])"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_verdict_column_in_view_and_one_colour_per_policy(session, width):
    page = session.page
    page.set_viewport_size({"width": width, "height": 1000})
    page.evaluate("window.scrollTo(0, 0)")
    # each dataset's tables scroll together, sideways, to their far end: the verdict column stays
    for scrolled in (False, True):
        if scrolled:
            page.evaluate("document.querySelectorAll('div.scroll').forEach(d => { d.scrollLeft = d.scrollWidth; })")
        boxes = page.evaluate(VERDICT_BOXES)
        assert len(boxes) == 2 * 3 * 2  # 2 datasets x 3 metrics x 2 configurations
        for left, right, height, line in boxes:
            assert left >= 0 and right <= width, (scrolled, left, right)
            assert height < 2 * line  # one line, not wrapped
    assert all(
        h == "status"
        for h in page.eval_on_selector_all(
            "table[id^=board]", "ts => ts.map(t => t.tHead.rows[0].cells[0].textContent)"
        )
    )
    colours: dict[str, set[str]] = {}
    for label, colour in page.evaluate(SWATCHES):
        colours.setdefault(label, set()).add(colour)
    assert len(colours) == 2 and all(len(c) == 1 for c in colours.values()), colours
    assert len(set.union(*colours.values())) == 2
    # the metric selector shows another metric's matrix
    select = page.locator("select.metric-choice").first
    select.select_option("1")
    assert page.locator("div.answer").first.locator("div.view:not([hidden])").count() == 1
    assert page.locator("div.answer").first.locator('div.view[data-view="1"]').is_visible()
    select.select_option("0")
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("document.querySelectorAll('div.scroll').forEach(d => { d.scrollLeft = 0; })")
    page.screenshot(path=str(ARTIFACTS / f"report-{width}-top.png"))
    page.evaluate("document.querySelector('#leaderboard h3').scrollIntoView()")
    page.screenshot(path=str(ARTIFACTS / f"report-{width}-leaderboard.png"))
    print(f"screenshots: {ARTIFACTS}/report-{width}-*.png")
    assert session.errors == []
