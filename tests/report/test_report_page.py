"""The HTML page as text: offline, data embedded, every number badged, CLI and --serve."""

import json
import re
import urllib.request

import optuna
import pytest

from autoprune.cli import main
from autoprune.report import build_report_data, open_run, render_html
from autoprune.report.serve import ReportServer


def _embedded(html, element_id):
    m = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_page_is_self_contained(tiny_report):
    from plotly.offline import get_plotlyjs_version

    from autoprune.report.page import plotly_js

    html = tiny_report.read_text()
    js = plotly_js()
    assert js in html  # plotly.js is inline; the browser test checks no request leaves the file
    assert f"plotly.js (basic - minified) v{get_plotlyjs_version()}" in js[:200]  # the small bundle, matching version
    ours = html.replace(js, "")
    assert "<script src" not in ours and "<link" not in ours
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", ours)


def test_page_embeds_data_and_one_figure_per_pair(tiny_report, tiny_run):
    html = tiny_report.read_text()
    data, figs = _embedded(html, "report-data"), _embedded(html, "report-figures")
    assert [t["number"] for t in data["trials"]] == list(range(len(tiny_run.study.trials)))
    assert len(figs["pairs"]) == 3 and figs["hypervolume"] and figs["timeline"] and figs["plan"]
    for i in range(3):
        assert f'id="fig-pair-{i}"' in html
    # every point a user can click carries its trial number
    for fig in figs["pairs"]:
        for trace in fig["data"]:
            if trace.get("mode") != "lines":
                assert all(isinstance(n, int) for n in trace["customdata"])
    baselines = next(tr for tr in figs["pairs"][0]["data"] if tr["name"] == "baselines")
    assert sorted(baselines["text"]) == ["dense-fp32", "dense-int8", "uniform-0.5"]


def test_every_metric_shown_says_how_it_was_obtained(tiny_report):
    html = tiny_report.read_text()
    figs = _embedded(html, "report-figures")
    for fig in figs["pairs"]:
        for axis in ("xaxis", "yaxis"):
            assert re.search(r"— (measured|estimated|modelled|simulated)", fig["layout"][axis]["title"]["text"])
        for trace in fig["data"]:
            for text in trace.get("hovertext") or []:
                assert text.count("<i>(") == len(re.findall(r"<br>[^<]*: ", text)) - 1  # one source per metric line
    table = html[html.index('id="front-table"'):html.index("</table>", html.index('id="front-table"'))]
    assert table.count('class="badge src-') == table.count('<td class="num"')
    assert 'class="badge src-estimated"' in html  # energy is an estimate on local-cpu and says so


def test_sections_render_only_with_data(tiny_run, tmp_path):
    data = build_report_data(open_run(tiny_run.out_dir))
    assert 'id="section-' not in render_html(data)
    data.sections["sensitivity"] = {"metric": "accuracy", "source": "measured", "layers": {"conv1": {"ratio": [0, 0.5], "value": [0.99, 0.9]}}}
    html = render_html(data)
    assert 'id="section-sensitivity"' in html and 'id="fig-section-sensitivity-0"' in html
    assert 'id="section-predicted_vs_measured"' not in html


def test_synthetic_200_trial_report_is_under_10_mb(synthetic_report):
    """SYNTHETIC 200-trial study (copies of real trials); the render time is in benchmarks/report_render.py."""
    assert len(_embedded(synthetic_report.read_text(), "report-data")["trials"]) == 200
    assert synthetic_report.stat().st_size < 10e6


def test_cli_writes_the_report(tiny_run, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(tiny_run.out_dir), "--out", str(out)]) == 0
    assert out.stat().st_size > 1e6 and f"wrote {out}" in capsys.readouterr().out


def test_cli_bad_run_dir_exits_2_with_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run.json: not found" in err


def _get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, r.read().decode()


def test_serve_regenerates_on_every_reload(tiny_run, tmp_path):
    src = tiny_run.study
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="watched", storage=url, directions=src.directions)
    for k, v in src.user_attrs.items():
        study.set_user_attr(k, v)
    complete = src.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    study.add_trial(complete[0])
    (tmp_path / "run.json").write_text(json.dumps({"study_name": "watched", "storage": url}))
    server = ReportServer(tmp_path, port=0)
    server.start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        status, html = _get(server.url)
        assert status == 200 and len(_embedded(html, "report-data")["trials"]) == 1
        study.add_trial(complete[1])  # the study moves on while it is watched
        assert len(_embedded(_get(server.url)[1], "report-data")["trials"]) == 2
        with pytest.raises(urllib.error.HTTPError, match="404"):
            _get(server.url + "nothing-here")
    finally:
        server.shutdown()


def test_cli_serve_prints_the_url_and_serves(tiny_run):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "autoprune", "report", str(tiny_run.out_dir), "--serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line).group(0)
        status, html = _get(url)
        assert status == 200 and "autoprune report: tiny" in html
    finally:
        proc.terminate()
        proc.wait(10)
