"""The report says why a trial is infeasible: in its hover text and, in a real browser, in the trial panel a click opens.

The study is SYNTHETIC (three complete trials in memory, one over a latency budget with the
reason the objective would have stored): what is under test is the page, not the search.
"""

from __future__ import annotations

import os

import optuna
import pytest

from autoprune.report.data import build_report_data
from autoprune.report.figures import hover_text
from autoprune.report.page import render_html
from autoprune.report.source import RunSource

from test_report_browser import ARGS, CHROMIUM, _open  # the same browser settings and page opening

REASON = "latency_ms 1.5 ms (measured) exceeds constraints.latency_ms 1 ms"


def _metric(value: float, unit: str) -> dict:
    return {"value": value, "unit": unit, "source": "measured", "how": "SYNTHETIC test value"}


@pytest.fixture
def source(tmp_path) -> RunSource:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("config", {"objectives": ["accuracy", "latency_ms"]})
    for i, (acc, lat) in enumerate([(0.90, 0.5), (0.80, 0.2), (0.97, 1.5)]):
        over = lat - 1.0
        attrs = {"metrics": {"accuracy": _metric(acc, ""), "latency_ms": _metric(lat, "ms")}, "plan": {}, "sha256": f"{i:064x}"}
        if over > 0:
            attrs["infeasible_reason"] = REASON
        study.add_trial(optuna.trial.create_trial(values=[acc, lat], user_attrs=attrs, constraints={"latency_ms": over}))
    return RunSource(tmp_path, {"storage": "memory", "config": {"objectives": ["accuracy", "latency_ms"]}}, study)


def test_the_report_data_and_hover_carry_the_reason(source):
    data = build_report_data(source)
    by_number = {p.number: p for p in data.trials}
    assert by_number[2].infeasible_reason == REASON and not by_number[2].feasible
    assert by_number[0].infeasible_reason == by_number[1].infeasible_reason == ""
    assert f"· infeasible: {REASON}<br>" in hover_text(by_number[2])
    assert "infeasible" not in hover_text(by_number[0])


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install -y chromium); CI installs it")
def test_clicking_an_infeasible_trial_shows_why(source, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    html = tmp_path / "report.html"
    html.write_text(render_html(build_report_data(source)))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page, problems, _ = _open(browser, html)
            points = page.locator("#fig-pair-0 .scatterlayer path.point")
            details = {}
            for i in range(points.count()):  # click each point; the panel shows that trial
                page.mouse.move(0, 0)  # away first, so that no hover label lies over the next point
                box = points.nth(i).bounding_box()
                page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.wait_for_selector("#fig-plan[data-trial]", timeout=10_000)
                details[int(page.get_attribute("#fig-plan", "data-trial"))] = page.text_content("#trial-detail")
            assert 2 in details and len(details) >= 2
            assert "infeasible" + REASON in details[2].replace("\n", "")  # the row: "infeasible" | the reason
            assert all(REASON not in text for n, text in details.items() if n != 2)
            assert problems == []
        finally:
            browser.close()
