"""The report in a real browser: headless Chromium (Debian package ``chromium``) driven by playwright.

Opens the page of the finished real tiny study from a file:// URL: no console errors, no
request leaves the file, every plot's DOM is there, and clicking a point of a front shows
that trial's per-layer plan and export command. A full-page screenshot goes to
``test-artifacts/`` for humans. Render time is not asserted here (see
benchmarks/report_render.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install -y chromium); CI installs it")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _open(browser, html: Path):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html.resolve().as_uri())
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
    return page, problems, requests


def test_tiny_report_renders_and_a_click_shows_the_plan(browser, tiny_report, tiny_run):
    page, problems, requests = _open(browser, tiny_report)
    try:
        # 3 fronts, hypervolume, trials over time: each a drawn plotly graph with an SVG
        assert page.locator(".js-plotly-plot .main-svg").count() >= 5
        for fig_id in ("fig-pair-0", "fig-pair-1", "fig-pair-2", "fig-hypervolume", "fig-timeline"):
            assert page.locator(f"#{fig_id} .main-svg").count() >= 1, fig_id
        n_points = page.locator("#fig-pair-0 .scatterlayer path.point").count()
        assert n_points == len(tiny_run.study.trials)
        assert page.locator("#fig-pair-0 text", has_text="dense-fp32").count() == 1  # baselines are labelled
        assert page.locator("#fig-plan[data-trial]").count() == 0  # nothing selected yet

        point = page.locator("#fig-pair-0 .scatterlayer path.point").first
        box = point.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.wait_for_selector(".hoverlayer .hovertext", timeout=10_000)
        hover = page.locator(".hoverlayer .hovertext").first.text_content()
        assert "plan:" in hover and "(measured)" in hover
        page.mouse.click(x, y)
        page.wait_for_selector("#fig-plan[data-trial]", timeout=10_000)

        number = int(page.get_attribute("#fig-plan", "data-trial"))
        trial = tiny_run.study.trials[number]
        n_layers = len(tiny_run.study.user_attrs["space"]["layers"])
        assert page.locator("#fig-plan .barlayer .trace").count() == 2  # ratio bars and bits bars
        ticks = page.locator("#fig-plan .xtick text").all_text_contents()
        assert ticks[:n_layers] == [layer["name"] for layer in tiny_run.study.user_attrs["space"]["layers"]]
        assert page.locator("#plan-table tbody tr").count() == n_layers
        assert page.text_content("#export-cmd") == f"autoprune export {tiny_run.out_dir} --trial {number}"
        assert f"Trial {number}" in page.text_content("#trial-detail")
        assert f"{trial.user_attrs['metrics']['accuracy']['value']:.4g}" in page.text_content("#trial-detail")

        # a row of the (sortable) front table selects too
        page.click("#front-table thead th:nth-child(3)")
        row = page.locator("#front-table tbody tr").first
        row.click()
        assert page.get_attribute("body", "data-selected-trial") == row.get_attribute("data-trial")

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-tiny.png"), full_page=True)
        assert problems == []
        assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
    finally:
        page.close()


def test_synthetic_200_trial_report_renders(browser, synthetic_report):
    """SYNTHETIC 200 copies of real trials: all points drawn, no errors (timing: benchmarks/report_render.py)."""
    page, problems, _ = _open(browser, synthetic_report)
    try:
        assert page.locator("#fig-pair-0 .scatterlayer path.point").count() == 200
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-synthetic-200.png"))
        assert problems == []
    finally:
        page.close()
