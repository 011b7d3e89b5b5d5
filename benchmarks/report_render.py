"""Benchmark: how long a 200-trial report takes to render in headless Chromium, and its size.

Goal (issue #5): the page of a 200-trial study is drawn in < 3 s and the file is < 10 MB.

The 200-trial study is SYNTHETIC: the complete trials of a real tiny study (run here, or
given with --run) are copied verbatim (metrics, plans, constraints, attributes) with
``optuna.create_trial`` into a new SQLite storage until it holds 200 trials; each copy is
marked with the user attribute ``synthetic_copy_of``. The numbers on that page are real
measurements, repeated; only the count is made up, which is what the timing is about.

Timing: from navigation start to the page's ``data-ready`` flag (every figure drawn),
``performance.now()`` in the page, median of --repeat fresh pages in one browser.

    python benchmarks/report_render.py [--run RUN_DIR] [--repeat 5] [--out benchmarks/results/report_render.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TINY = {"version": 1, "name": "tiny", "task": "digits", "task_options": {"width": 0.25, "epochs": 3},
        "search": {"n_trials": 10, "round_to": 4}, "build": {"finetune_steps": 0}, "constraints": {"max_accuracy_drop": 0.1}}


def synthetic_study(src_run: Path, out_dir: Path, n_trials: int = 200, name: str = "synthetic-200") -> Path:
    """SYNTHETIC: a run directory whose study holds ``n_trials`` verbatim copies of ``src_run``'s complete trials.

    Baseline trials are copied once (so their labels stay unique); searched trials are copied
    round-robin, each marked ``synthetic_copy_of``. Study attributes (device, space, dense, ...)
    are copied too, so the report sees a normal run.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a script owns its process: no "A new study created" lines
    src = json.loads((src_run / "run.json").read_text())
    study = optuna.load_study(study_name=src["study_name"], storage=src["storage"])
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    baselines = [t for t in complete if t.user_attrs.get("baseline")]
    searched = [t for t in complete if not t.user_attrs.get("baseline")] or complete
    out_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{(out_dir / 'study.db').resolve()}"
    copy = optuna.create_study(study_name=name, storage=url, directions=study.directions)
    for k, v in study.user_attrs.items():
        copy.set_user_attr(k, v)
    order = baselines + [searched[i % len(searched)] for i in range(max(0, n_trials - len(baselines)))]
    for t in order[:n_trials]:
        copy.add_trial(optuna.trial.create_trial(
            values=t.values, params=t.params, distributions=t.distributions,
            user_attrs={**t.user_attrs, "synthetic_copy_of": t.number}, constraints=dict(t.constraints or {})))
    (out_dir / "run.json").write_text(json.dumps({"study_name": name, "storage": url, "config": src["config"]}))
    return out_dir


def _tiny_run(work: Path) -> Path:
    from autoprune.config import StudyConfig
    from autoprune.study import run_study

    os.environ.setdefault("AUTOPRUNE_CACHE", str(work / "cache"))
    return run_study(StudyConfig.from_dict(TINY), work / "tiny", progress=False, log=lambda m: None).out_dir


def measure(html: Path, repeat: int, draws: list[float] | None = None) -> list[float]:
    """Seconds from navigation start to every figure drawn, one per fresh page.

    ``draws`` receives the page's own share (its script start to all figures drawn) when the page reports it.
    """
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(repeat + 1):  # the first page warms the browser process up and is not counted
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(html.resolve().as_uri())
                page.wait_for_selector("body[data-ready='1']", timeout=60_000, state="attached")
                times.append(page.evaluate("performance.now()") / 1000)
                draw_ms = page.get_attribute("body", "data-draw-ms")
                if draws is not None and draw_ms is not None:
                    draws.append(float(draw_ms) / 1000)
                if errors:
                    raise RuntimeError(f"page errors: {errors}")
                page.close()
        finally:
            browser.close()
    return times[1:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a finished run to copy trials from (default: run the tiny study)")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, help="also write the result here")
    args = ap.parse_args(argv)

    from autoprune.profile.local import host_info
    from autoprune.report import write_report

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = args.run or _tiny_run(work)
        run = synthetic_study(src, work / "synthetic", args.trials)
        t = time.perf_counter()
        html = write_report(run, work / "report.html")
        generate_s = time.perf_counter() - t
        size_mb = html.stat().st_size / 1e6
        draws: list[float] = []
        times = measure(html, args.repeat, draws)
        draws = draws[1:]  # the warm-up page is not counted
        # The floor: a page holding only the same plotly.js, nothing drawn.
        from autoprune.report.page import plotly_js

        floor_page = work / "plotly-only.html"
        floor_page.write_text(f"<!doctype html><html><head><script>{plotly_js()}</script></head>"
                              "<body><script>document.body.setAttribute('data-ready', '1')</script></body></html>")
        floor = measure(floor_page, args.repeat)
    lines = [
        f"report_render benchmark ({time.strftime('%Y-%m-%d %H:%M:%S')})",
        f"study: SYNTHETIC {args.trials} trials copied from a real tiny digits study (see docstring)",
        f"machine: {host_info()['cpu']}, {os.cpu_count()} cpus, load average before {' '.join(f'{x:.1f}' for x in load_before)} (shared with other work)",
        f"chromium: {CHROMIUM} headless; python {platform.python_version()}",
        f"generate (python, build data + html): {generate_s:.2f} s",
        f"file size: {size_mb:.2f} MB (goal < 10 MB): {'PASS' if size_mb < 10 else 'FAIL'}",
        f"render to all figures drawn, {len(times)} fresh pages: " + ", ".join(f"{x:.2f}" for x in times) + " s",
        f"median {statistics.median(times):.2f} s, min {min(times):.2f} s (goal < 3 s): {'PASS' if statistics.median(times) < 3 else 'FAIL'}",
        "of which the report's own script (data parse, every figure drawn): " + ", ".join(f"{x:.2f}" for x in draws)
        + f" s; median {statistics.median(draws):.2f} s",
        "floor, a page with only plotly.js (parse + evaluate, nothing drawn): " + ", ".join(f"{x:.2f}" for x in floor)
        + f" s; median {statistics.median(floor):.2f} s",
        f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0 if size_mb < 10 and statistics.median(times) < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
