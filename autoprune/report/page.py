"""The self-contained HTML page: plotly.js, the report's data and figures, and a small script.

Nothing is fetched when the page opens: plotly.js is embedded (see :func:`plotly_js`), the
data and figures are JSON in the page.
Static parts (tables, facts, badges) are written here, escaped; the script only draws
figures and the selected trial.
"""

from __future__ import annotations

import functools
import html
import json
from typing import Any

from .data import ReportData, TrialPoint
from ..metrics import metric_label
from .figures import report_figures
from .script import SCRIPT, STYLE
from .sections import registered_sections

__all__ = ["render_html", "plotly_js"]


BASIC_BUNDLE = "vendor/plotly-basic.min.js"


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js for the page, read once.

    The report draws only scatter and bar traces, so it embeds plotly's official *basic*
    partial bundle (npm ``plotly.js-basic-dist-min``, 1.2 MB, MIT; vendored in
    ``report/vendor/``): a browser parses it in a quarter of the time of the full 4.6 MB
    bundle. It is used only when its version is the one the ``plotly`` Python package
    writes figures for; otherwise the full bundle from that package is embedded.
    """
    from importlib import resources

    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    basic = resources.files("autoprune.report").joinpath(BASIC_BUNDLE)
    if basic.is_file():
        text = basic.read_text(encoding="utf-8")
        if f"plotly.js (basic - minified) v{get_plotlyjs_version()}" in text[:200]:
            return text
    return get_plotlyjs()


def _e(v: Any) -> str:
    return html.escape("n/a" if v is None else str(v), quote=True)


def _json(o: Any) -> str:
    # Inside <script>, "</" could close the tag early; "<\/" is the same string to JSON.
    from plotly.utils import PlotlyJSONEncoder

    return json.dumps(o, cls=PlotlyJSONEncoder, separators=(",", ":")).replace("</", "<\\/")


def badge(source: str | None, how: str = "") -> str:
    """A coloured label saying how a number was obtained; its tooltip says exactly how."""
    s = source or "unknown"
    return f'<span class="badge src-{_e(s)}" title="{_e(how)}">{_e(s)}</span>'


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else _e(v)


def _badges(sources: dict[str, list[str]]) -> str:
    return " ".join(f"{_e(metric_label(k))} " + "".join(badge(s) for s in v) for k, v in sources.items())


def _front_table(data: ReportData) -> str:
    front = [t for t in data.trials if t.on_front]
    if not front:
        return '<p class="hint">No feasible complete trial yet.</p>'
    metrics = list(dict.fromkeys(k for t in front for k in t.metrics))
    head = "".join(f"<th>{_e(metric_label(m))}</th>" for m in metrics)

    def cell(t: TrialPoint, m: str) -> str:
        x = t.metrics.get(m)
        if x is None:
            return '<td data-sort="">n/a</td>'
        unit = f" {_e(x.get('unit'))}" if x.get("unit") else ""
        return f'<td class="num" data-sort="{_e(x.get("value"))}">{_num(x.get("value"))}{unit} {badge(x.get("source"), x.get("how", ""))}</td>'

    rows = "".join(
        f'<tr class="clickable" data-trial="{t.number}"><td data-sort="{t.number}">{t.number}</td>'
        f'<td data-sort="{_e(t.baseline or "")}">{_e(t.baseline or "searched")}</td>'
        + "".join(cell(t, m) for m in metrics)
        + f'<td data-sort="{_e(t.plan_summary)}">{_e(t.plan_summary)}</td><td data-sort="{t.number}"><code>{_e(t.export)}</code></td></tr>'
        for t in front
    )
    return (f'<table class="sortable" id="front-table"><thead><tr><th>trial</th><th>kind</th>{head}<th>plan</th><th>export</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def _facts(data: ReportData) -> str:
    out = []
    for title, rows in data.facts.items():
        body = "".join(
            f'<tr><td>{_e(r["label"])}</td><td>{_num(r["value"])} {badge(r["source"], r["how"]) if r["source"] else ""}'
            + (f'<div class="note">{_e(r["how"])}</div>' if r["how"] else "") + "</td></tr>"
            for r in rows
        )
        out.append(f"<div><h3>{_e(title)}</h3><table><tbody>{body}</tbody></table></div>")
    return f'<div class="facts">{"".join(out)}</div>'


def _failed(data: ReportData) -> str:
    if not data.failed:
        return ""
    rows = "".join(f"<tr><td>{f['number']}</td><td>{_e(f['state'].lower())}</td><td>{_e(f['reason'])}</td></tr>" for f in data.failed)
    return (f'<section id="failed"><h2>Failed trials ({len(data.failed)})</h2><table><thead><tr><th>trial</th><th>state</th>'
            f"<th>reason</th></tr></thead><tbody>{rows}</tbody></table></section>")


def _sections(data: ReportData, figures: dict[str, Any]) -> str:
    out = []
    for s in registered_sections():
        if s.name not in data.sections:
            continue
        divs = "".join(f'<div class="fig" id="fig-section-{_e(s.name)}-{i}"></div>' for i in range(len(figures["sections"][s.name])))
        out.append(f'<section id="section-{_e(s.name)}"><h2>{_e(s.title)}</h2><p class="note">{_e(s.note)}</p><div class="grid">{divs}</div></section>')
    return "".join(out)


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document that works offline.

    Args:
        data: From :func:`~autoprune.report.data.build_report_data`.

    Returns:
        The page (about 5 MB, most of it plotly.js).
    """
    figures = report_figures(data)
    st = data.study
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(st["states"].items()))
    status = '<span class="status running">still running</span>' if st["running"] else '<span class="status">finished</span>'
    pair_divs = "".join(
        f'<div><div class="fig" id="fig-pair-{i}"></div><p class="note">how obtained: {_badges({p.x: p.sources["x"], p.y: p.sources["y"]})}; '
        "faded: dominated in this pair; ×: infeasible; ◆: baselines</p></div>"
        for i, p in enumerate(data.pairs)
    )
    hv = data.hypervolume
    ref = ", ".join(f"{n} {_num(r)}" for n, r in zip(hv["objectives"], hv["reference_point"] or []))
    hv_div = (f'<div><div class="fig" id="fig-hypervolume"></div><p class="note">computed from the objectives of feasible trials: '
              f'{_badges(hv["sources"])}; reference point {_e(ref)}: 10% of the range beyond the worst value of each objective over all complete trials</p></div>'
              if hv["history"] else '<p class="hint">No complete trial yet.</p>')
    legend = " ".join(badge(s, d) for s, d in (
        ("measured", "timed or counted on the real artifact"), ("estimated", "derived from a measurement and a datasheet figure"),
        ("modelled", "predicted by a cost model"), ("simulated", "computed in a simulation of a precision the target cannot run"),
        ("setting", "chosen by the user or the device profile"), ("recorded", "recorded by the storage or the runtime")))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>autoprune report: {_e(st['name'])}</title>
<style>{STYLE}</style>
<script>{plotly_js()}</script>
</head><body>
<header><h1>autoprune report: {_e(st['name'])}</h1>
<p>{status} · {st['n_trials']} trials ({_e(states)}) · {len([t for t in data.trials if t.on_front])} on the front ·
objectives {_e(', '.join(f"{o['name']} ({o['direction']})" for o in data.objectives))} · generated {_e(st['generated'])}</p>
<p class="note">How each number was obtained: {legend}</p></header>
<section id="fronts"><h2>Fronts</h2><p class="hint">Hover a point for its metrics; click it (or box-select) to see its plan below.</p>
<div class="grid">{pair_divs}</div></section>
<section id="selected"><h2>Selected trial</h2>
<div id="trial-detail" class="hint">Click a point in a front or a row of the table.</div>
<div class="fig" id="fig-plan"></div><div id="plan-table"></div>
<div id="export-box" hidden><p>Rebuild this trial's artifact:</p><pre class="cmd" id="export-cmd"></pre><button id="copy-export" type="button">copy</button></div>
</section>
<section id="progress"><h2>Search progress</h2><div class="grid">{hv_div}
<div><div class="fig" id="fig-timeline"></div><p class="note">how obtained: {badge("recorded", "trial start and finish times in the storage")}</p></div></div></section>
<section id="front-points"><h2>Front points</h2><p class="hint">Click a column to sort, a row to see its plan.</p>{_front_table(data)}</section>
{_sections(data, figures)}
<section id="facts-section"><h2>Device and run</h2>{_facts(data)}</section>
{_failed(data)}
<script type="application/json" id="report-data">{_json(data.to_dict())}</script>
<script type="application/json" id="report-figures">{_json(figures)}</script>
<script>{SCRIPT}</script>
</body></html>
"""
