"""Does the study's accuracy proxy rank plans as recovery does? Spearman correlation over int8 plans.

The study scores each plan by the accuracy of its artifact right after pruning and adaptive
BatchNorm (and the build's short fine-tune, if any): the *proxy*. What ships after ``autoprune
export --finetune`` is the *recovered* model. The search is only as good as the proxy's ranking,
so this benchmark builds ``--plans`` int8 plans of the task's discovered space (a seeded random
ratio per channel group, plus the ``--uniform`` ratios), and for each one:

* proxy: ``build_artifact`` with the study's build settings, ``evaluate_onnx`` on the task's
  eval (validation) split, exactly what a trial records (when the build fine-tunes, the
  adaptive-BN proxy alone, ``finetune_steps: 0``, is scored and correlated too);
* recovered: the same pruned model recovered for ``--epochs`` (``build_recovered``, the
  function ``export --finetune`` runs), re-packaged and evaluated the same way.

It prints Spearman's rank correlation (``scipy.stats.spearmanr``) between the two (goal >= 0.8),
the machine and the wall time, and writes it all to ``--out``.

    python benchmarks/proxy_spearman.py --task fashion --task-options '{"arch": "resnet"}' --plans 24 --epochs 2
    python benchmarks/proxy_spearman.py --study studies/fashion.yaml --plans 24 --epochs 2 --distill
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.8


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


def _config(args: argparse.Namespace):
    from autoprune.config import StudyConfig, load_study_config

    if args.study:
        config = load_study_config(args.study)
        if not (args.build_options or args.task_options or args.round_to):
            return config
        data = config.to_dict()
    else:
        data = {"version": 1, "name": "proxy-spearman", "task": args.task, "device": "local-cpu"}
    data["task_options"] = {**data.get("task_options", {}), **(args.task_options or {})}
    data["build"] = {**data.get("build", {}), **(args.build_options or {})}
    if args.round_to:
        data["search"] = {**data.get("search", {}), "round_to": args.round_to}
    return StudyConfig.from_dict(data, args.study or "proxy_spearman.py arguments")


class _Subset:
    """``task`` whose training data is a fixed, seeded subset of ``n`` of its training samples (recovery only)."""

    def __init__(self, task, n: int, seed: int = 0) -> None:
        X, y = task.train_data()
        idx = np.sort(np.random.default_rng(seed).permutation(len(y))[:n])
        self._task, self._data = task, (X[idx], y[idx])

    def train_data(self):
        return self._data

    def __getattr__(self, name):
        return getattr(self._task, name)


def make_plans(space, n: int, uniform: list[float], seed: int, max_ratio: float | None = None) -> list[tuple[str, object]]:
    """``n`` int8 plans: the ``uniform`` ratios (capped per group), the rest a seeded random ratio per group (up to ``max_ratio``)."""
    bits = {k: v for k, v in space.params_for(0.0, 8).items() if k.startswith("bits:")}
    plans = [(f"uniform-{r:g}", space.plan_from_params({**space.params_for(r, 8), **bits})) for r in uniform[:n]]
    rng = np.random.default_rng(seed)
    while len(plans) < n:
        ratios = {f"ratio:{g.name}": round(round(rng.uniform(0, min(g.max_ratio, max_ratio or 1.0)) / space.ratio_step) * space.ratio_step, 10)
                  for g in space.groups if g.max_ratio > 0}
        plans.append((f"random-{len(plans) - min(n, len(uniform))}", space.plan_from_params({**ratios, **bits})))
    return plans


def _sampling_noise(recovered: np.ndarray, n: int) -> str:
    """How much of the recovered accuracies' spread is the eval sample's binomial noise (a bound on any rho).

    Each accuracy on ``n`` images has standard error sqrt(p(1-p)/n); with the plans' spread
    (variance) V, a share mean(SE^2)/V of it is sampling noise, which caps the correlation any proxy
    can reach near sqrt(1 - share). Recovery's own training noise (seed, data order) comes on top.
    """
    se2 = recovered * (1 - recovered) / n
    var = float(np.var(recovered, ddof=1)) if len(recovered) > 1 else float("nan")
    share = float(se2.mean() / var) if var > 0 else float("nan")
    return (f"evaluation noise (binomial, {n} images): standard error {100 * float(np.sqrt(se2.mean())):.2f} points per recovered accuracy "
            f"vs their spread (std) {100 * np.sqrt(var):.2f} points: {100 * share:.0f} % of the spread is sampling noise, "
            f"which alone caps a correlation near {np.sqrt(max(0.0, 1 - share)):.2f} (estimated; an upper estimate of the noise, "
            f"as every plan is scored on the same images)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", help="a study YAML: its task, task options, build and search settings (default: --task)")
    ap.add_argument("--task", default="fashion", help="built-in task name, without --study (default: fashion)")
    ap.add_argument("--task-options", type=_json, help='task options as JSON, e.g. \'{"arch": "resnet"}\'')
    ap.add_argument("--build-options", type=_json, help='build settings as JSON, e.g. \'{"finetune_steps": 0}\'')
    ap.add_argument("--round-to", type=int, help="search.round_to (kept channels a multiple of it)")
    ap.add_argument("--plans", type=int, default=24, help="number of plans (default 24; the goal needs >= 20)")
    ap.add_argument("--uniform", type=float, nargs="*", default=[0.25, 0.5, 0.75], help="uniform ratios among the plans")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random plans")
    ap.add_argument("--max-ratio", type=float, help="random plans draw each group's ratio in [0, this] (default: the space's max_ratio)")
    ap.add_argument("--recovery-samples", type=int, help="recover on a fixed, seeded subset of this many training samples (default: all)")
    ap.add_argument("--epochs", type=int, default=2, help="recovery epochs (export --finetune)")
    ap.add_argument("--lr", type=float, help="recovery learning rate (default: the build's finetune_lr, as export)")
    ap.add_argument("--distill", action="store_true", help="recover with distillation from the dense model")
    ap.add_argument("--recovery-repeats", type=int, default=0,
                    help="recover the first K plans again with another seed: recovery's own noise, a bound on any rho (default 0)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "proxy_spearman.txt")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    import torch
    from scipy.stats import spearmanr

    from autoprune.compress.build import build_artifact, build_recovered
    from autoprune.evaluate import evaluate_onnx
    from autoprune.export import recovery_settings
    from autoprune.profile.local import host_info
    from autoprune.study.context import StudyContext
    from autoprune.study.heldout import measure_test_accuracy
    from autoprune.threads import torch_threads

    t_start, load0 = time.perf_counter(), os.getloadavg()
    config = _config(args)
    ctx = StudyContext.prepare(config)
    threads = torch.get_num_threads()  # what a study created on this machine records as build_threads
    recovery = recovery_settings(config, args.epochs, args.distill, args.lr)
    plans = make_plans(ctx.space, args.plans, args.uniform, args.seed, args.max_ratio)
    recovery_task = _Subset(ctx.task, args.recovery_samples) if args.recovery_samples else None
    test = ctx.task.test_data()
    t_prepared = time.perf_counter()

    rows, lines = [], []
    for i, (label, plan) in enumerate(plans):
        t0 = time.perf_counter()
        with torch_threads(threads):
            rb = build_recovered(ctx.model, plan, ctx.space, ctx.task, ctx.example_input, config.build, recovery, recovery_task)
        proxy = evaluate_onnx(rb.unrecovered.onnx_bytes, ctx.eval_X, ctx.eval_y, ctx.task).value
        bn_only = None  # with fine-tuning in the build, also the adaptive-BN proxy alone: which lever did what
        if config.build.finetune_steps:
            with torch_threads(threads):
                a = build_artifact(ctx.model, plan, ctx.space, ctx.task, ctx.example_input, dataclasses.replace(config.build, finetune_steps=0))
            bn_only = evaluate_onnx(a.onnx_bytes, ctx.eval_X, ctx.eval_y, ctx.task).value
        recovered = evaluate_onnx(rb.recovered.onnx_bytes, ctx.eval_X, ctx.eval_y, ctx.task).value
        tests = [measure_test_accuracy(ctx.task, a.onnx_bytes, data=test).value for a in (rb.unrecovered, rb.recovered)] if test else None
        macs = rb.unrecovered.macs
        rows.append((proxy, recovered, tests, bn_only))
        ratios = [plan.ratio(g.name) for g in ctx.space.groups if g.max_ratio > 0]
        line = (f"plan {i:2d} {label:12s} mean ratio {np.mean(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}), {macs / 1e6:.2f} MMACs: "
                f"proxy {proxy:.4f}" + (f" (adaptive BN alone {bn_only:.4f})" if bn_only is not None else "") + f" -> recovered {recovered:.4f}")
        if tests:
            line += f"; test {tests[0]:.4f} -> {tests[1]:.4f}"
        line += f" ({time.perf_counter() - t0:.1f} s, recovery {rb.seconds:.1f} s, losses {', '.join(f'{v:.3f}' for v in rb.losses)})"
        lines.append(line)
        print(line, flush=True)

    repeats = []  # (plan, recovered with seed 0, recovered with seed 1): what recovery's own randomness moves
    for i, (label, plan) in enumerate(plans[:args.recovery_repeats]):
        with torch_threads(threads):
            again = build_recovered(ctx.model, plan, ctx.space, ctx.task, ctx.example_input, config.build,
                                    dataclasses.replace(recovery, seed=recovery.seed + 1), recovery_task)
        repeats.append((label, rows[i][1], evaluate_onnx(again.recovered.onnx_bytes, ctx.eval_X, ctx.eval_y, ctx.task).value))
        print(f"repeat {label}: recovered {repeats[-1][1]:.4f} (seed {recovery.seed}) vs {repeats[-1][2]:.4f} (seed {recovery.seed + 1})", flush=True)

    proxy, recovered = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    rho, p = spearmanr(proxy, recovered) if len(rows) > 1 else (float("nan"), float("nan"))
    wall, load1 = time.perf_counter() - t_start, os.getloadavg()
    r = recovery.to_dict()
    header = [
        f"proxy_spearman: rank correlation of the study's accuracy proxy with the recovered accuracy (all measured on this machine, {time.strftime('%Y-%m-%d %H:%M')})",
        f"machine: {host_info()['cpu']}, {os.cpu_count()} cpus; torch {torch.__version__} on {threads} build threads; "
        f"load average {load0[0]:.2f} at start, {load1[0]:.2f} at end",
        f"task: {ctx.task.name} {json.dumps(ctx.task.options, sort_keys=True)}; accuracy: {ctx.task.eval_description} ({len(ctx.eval_y)} samples), onnxruntime on the int8 artifacts",
        f"build (the study's, for the proxy): {json.dumps(dataclasses.asdict(config.build), sort_keys=True)}",
        f"recovery (export --finetune): {r['epochs']} epoch(s) over "
        + (f"a fixed subset of {args.recovery_samples} training samples (seed 0)" if args.recovery_samples else "the training split")
        + f", {r['optimizer']} at lr {r['lr']:g}, {r['schedule']}, batch {r['batch_size']}, distill {r['distill']}, seed {r['seed']}",
        f"plans: {len(plans)} int8 plans over {len(ctx.space.groups)} channel groups: uniform {args.uniform[:args.plans]}, "
        f"the rest a random ratio per group in [0, {args.max_ratio if args.max_ratio is not None else 'max_ratio'}] (seed {args.seed}, step {ctx.space.ratio_step:g})",
    ]
    footer = [
        f"proxy accuracy range {proxy.min():.4f}-{proxy.max():.4f}; recovered {recovered.min():.4f}-{recovered.max():.4f}; "
        f"recovered > proxy in {int((recovered > proxy).sum())} of {len(rows)} plans",
        f"Spearman rho (proxy vs recovered, validation) = {rho:.3f} (p = {p:.2g}) over {len(rows)} plans",
        _sampling_noise(recovered, len(ctx.eval_y)),
    ]
    if repeats:
        diffs = np.array([b - a for _, a, b in repeats])
        noise_sd = float(np.sqrt(np.mean(diffs ** 2) / 2))  # one run's noise: var(a - b) = 2 var(noise)
        share = noise_sd ** 2 / float(np.var(recovered, ddof=1))
        footer.append(
            f"recovery noise (measured): {len(repeats)} plans recovered again with seed {recovery.seed + 1}: "
            + ", ".join(f"{lab} {a:.4f}/{b:.4f}" for lab, a, b in repeats)
            + f"; one recovery's standard deviation {100 * noise_sd:.2f} points (scored on the same images), "
            f"{100 * share:.0f} % of the plans' spread: it caps a correlation near {np.sqrt(max(0.0, 1 - share)):.2f} (estimated)")
    if config.build.finetune_steps and len(rows) > 1:
        rho_bn, _ = spearmanr([r[3] for r in rows], recovered)
        footer.append(f"Spearman rho (adaptive BN alone, finetune_steps 0, vs the same recovered) = {rho_bn:.3f}")
    if test is not None and len(rows) > 1:
        rho_t, _ = spearmanr(proxy, [r[2][1] for r in rows])
        footer.append(f"Spearman rho (proxy vs recovered test accuracy, test split never used to select) = {rho_t:.3f}")
    met = bool(rho >= GOAL) and len(rows) >= 20
    why = "" if len(rows) >= 20 else f" (needs >= 20 plans, ran {len(rows)})"
    footer += [
        f"goal >= {GOAL}: {'met' if met else 'not met'}{why}",
        f"wall time: {wall:.0f} s ({t_prepared - t_start:.0f} s preparing the task and space, {wall - (t_prepared - t_start):.0f} s building, recovering and evaluating)",
    ]
    text = "\n".join(header + lines + footer) + "\n"
    print("\n".join(footer))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
