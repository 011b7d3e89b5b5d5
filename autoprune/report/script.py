"""The page's own JavaScript and CSS, kept as strings so the package needs no data files.

The script draws the figures the Python side prepared, wires clicks and box/lasso
selections on any point (``customdata`` = trial number) to the trial panel, fills the plan
bars for the chosen trial, and makes tables with ``class="sortable"`` sortable. When all
figures are drawn it sets ``document.body.dataset.ready = "1"`` (the browser test and the
benchmark wait for it).
"""

__all__ = ["SCRIPT", "STYLE"]

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header,section{background:#fff;margin:12px auto;max-width:1280px;padding:12px 20px;border:1px solid #d0d7de;border-radius:6px}
h1{font-size:22px;margin:4px 0} h2{font-size:17px;margin:6px 0 10px} h3{font-size:15px;margin:4px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
.fig{min-height:200px}.note{color:#57606a;font-size:12px;margin:2px 0 8px}
.badge{display:inline-block;padding:0 6px;margin:0 2px;border-radius:10px;font-size:11px;line-height:17px;border:1px solid transparent;white-space:nowrap}
.src-measured{background:#dafbe1;border-color:#4ac26b;color:#116329}.src-estimated{background:#fff8c5;border-color:#d4a72c;color:#7d4e00}
.src-modelled{background:#fbefff;border-color:#c297ff;color:#6e40c9}.src-simulated{background:#ddf4ff;border-color:#54aeff;color:#0550ae}
.src-setting{background:#f6f8fa;border-color:#d0d7de;color:#57606a}.src-recorded{background:#fff;border-color:#d0d7de;color:#57606a}
.src-unknown{background:#ffebe9;border-color:#ff8182;color:#a40e26}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border-bottom:1px solid #eaeef2;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa}table.sortable th{cursor:pointer;user-select:none}
table.sortable th[data-dir=asc]::after{content:" \\25B2"}table.sortable th[data-dir=desc]::after{content:" \\25BC"}
tr.clickable{cursor:pointer}tr.clickable:hover{background:#f6f8fa}tr.selected{background:#ddf4ff}
td.num{text-align:right;font-variant-numeric:tabular-nums}
pre.cmd{background:#0d1117;color:#e6edf3;padding:8px 10px;border-radius:6px;overflow-x:auto;display:inline-block;margin:4px 8px 4px 0}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:12px}.facts td:first-child{color:#57606a;width:38%}
.hint{color:#57606a}.status{font-weight:600}.running{color:#9a6700}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var started = performance.now();  // plotly.js is evaluated by now; the benchmark reports our share
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var figs = JSON.parse(document.getElementById("report-figures").textContent);
  var byNumber = {};
  data.trials.forEach(function (t) { byNumber[t.number] = t; });
  var config = {responsive: true, displaylogo: false};
  var pending = [];

  function esc(s) {
    return String(s == null ? "n/a" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function fmt(v) { return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : (v == null ? "n/a" : String(v)); }
  function badge(src, how) { return '<span class="badge src-' + esc(src || "unknown") + '" title="' + esc(how || "") + '">' + esc(src || "unknown") + "</span>"; }

  function plot(id, fig) {
    var el = document.getElementById(id);
    if (!el || !fig) return null;
    pending.push(Plotly.newPlot(el, fig.data, fig.layout, config));
    return el;
  }
  function pickable(el) {
    if (!el) return;
    el.on("plotly_click", function (ev) {
      var p = ev && ev.points && ev.points[0];
      if (p && p.customdata != null) showTrial(p.customdata);
    });
    el.on("plotly_selected", function (ev) {
      var pts = ev && ev.points ? ev.points.filter(function (p) { return p.customdata != null; }) : [];
      if (pts.length) showTrial(pts[0].customdata);
    });
  }

  function showTrial(n) {
    var t = byNumber[Number(n)];
    if (!t) return;
    var html = "<h3>Trial " + esc(t.number) + (t.baseline ? " · baseline " + esc(t.baseline) : "") +
      (t.on_front ? " · on the front" : "") + (t.feasible ? "" : " · infeasible") + "</h3><table><tbody>";
    Object.keys(t.metrics).forEach(function (k) {
      var m = t.metrics[k];
      html += "<tr><td>" + esc(k) + '</td><td class="num">' + esc(fmt(m.value)) + (m.unit ? " " + esc(m.unit) : "") +
        "</td><td>" + badge(m.source, m.how) + '</td><td class="hint">' + esc(m.how) + "</td></tr>";
    });
    Object.keys(t.constraints).forEach(function (k) {
      html += "<tr><td>constraint " + esc(k) + '</td><td class="num">' + esc(fmt(t.constraints[k])) + "</td><td>" +
        (t.constraints[k] <= 0 ? "holds" : "violated") + '</td><td class="hint">feasible when &le; 0</td></tr>';
    });
    if (t.infeasible_reason) html += '<tr class="infeasible-reason"><td>infeasible</td><td colspan=3>' + esc(t.infeasible_reason) + "</td></tr>";
    html += "<tr><td>plan</td><td colspan=3>" + esc(t.plan_summary) + "</td></tr>";
    html += "<tr><td>artifact sha256</td><td colspan=3><code>" + esc(t.sha256) + "</code></td></tr></tbody></table>";
    document.getElementById("trial-detail").innerHTML = html;

    var names = t.layers.map(function (r) { return r.name; });
    var layout = JSON.parse(JSON.stringify(figs.plan.layout));
    layout.title = {text: "Plan of trial " + t.number + " (layers in model order)"};
    layout.xaxis.categoryarray = names;
    var ratio = Object.assign({}, figs.plan.data[0], {x: names, y: t.layers.map(function (r) { return r.ratio; }),
      text: t.layers.map(function (r) { return r.ratio == null ? "not pruned" : fmt(r.ratio); }), textposition: "outside"});
    var bits = Object.assign({}, figs.plan.data[1], {x: names, y: t.layers.map(function (r) { return r.bits; }),
      text: t.layers.map(function (r) { return r.bits == null ? "" : String(r.bits); }), textposition: "outside"});
    var planEl = document.getElementById("fig-plan");
    Plotly.react(planEl, [ratio, bits], layout, config);
    planEl.setAttribute("data-trial", String(t.number));

    var rows = "<table><thead><tr><th>layer</th><th>kind</th><th>ratio</th><th>channels</th><th>bits</th><th>MACs share</th></tr></thead><tbody>";
    t.layers.forEach(function (r) {
      rows += "<tr><td>" + esc(r.name) + "</td><td>" + esc(r.kind) + '</td><td class="num">' + (r.ratio == null ? "not pruned" : esc(fmt(r.ratio))) +
        '</td><td class="num">' + (r.channels_before == null ? "" : esc(r.channels_before) + " → " + esc(r.channels_after)) +
        '</td><td class="num">' + esc(r.bits == null ? "unchanged" : r.bits) + '</td><td class="num">' + (r.macs_share == null ? "" : esc(fmt(r.macs_share))) + "</td></tr>";
    });
    document.getElementById("plan-table").innerHTML = rows + "</tbody></table>";
    document.getElementById("export-cmd").textContent = t.export;
    document.getElementById("export-box").hidden = false;
    document.querySelectorAll("tr[data-trial]").forEach(function (tr) {
      tr.classList.toggle("selected", tr.getAttribute("data-trial") === String(t.number));
    });
    document.body.setAttribute("data-selected-trial", String(t.number));
  }

  function sortable(table) {
    var heads = table.querySelectorAll("th");
    heads.forEach(function (th, col) {
      th.addEventListener("click", function () {
        var dir = th.getAttribute("data-dir") === "asc" ? "desc" : "asc";
        heads.forEach(function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", dir);
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute("data-sort"), y = b.cells[col].getAttribute("data-sort");
          var nx = parseFloat(x), ny = parseFloat(y), r;
          if (!isNaN(nx) && !isNaN(ny)) r = nx - ny; else r = String(x).localeCompare(String(y));
          return dir === "asc" ? r : -r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  figs.pairs.forEach(function (f, i) { pickable(plot("fig-pair-" + i, f)); });
  plot("fig-hypervolume", figs.hypervolume);
  pickable(plot("fig-timeline", figs.timeline));
  Object.keys(figs.sections).forEach(function (name) {
    figs.sections[name].forEach(function (f, i) { pickable(plot("fig-section-" + name + "-" + i, f)); });
  });
  document.querySelectorAll("table.sortable").forEach(sortable);
  document.querySelectorAll("tr[data-trial]").forEach(function (tr) {
    tr.addEventListener("click", function () { showTrial(tr.getAttribute("data-trial")); });
  });
  document.getElementById("copy-export").addEventListener("click", function () {
    var text = document.getElementById("export-cmd").textContent;
    if (navigator.clipboard) navigator.clipboard.writeText(text).catch(function () {});
  });
  window.autopruneReport = {showTrial: showTrial, data: data};
  Promise.all(pending).then(function () {
    document.body.setAttribute("data-draw-ms", String(Math.round(performance.now() - started)));
    document.body.setAttribute("data-ready", "1");
  });
})();
"""
