"""``autoprune sensitivity STUDY.yaml``: the per-group sensitivity analysis of a study's model, without a study.

Runs what a new study runs before its first trial (:mod:`autoprune.sensitivity`) with the
study's task, device, space, build and ``search.sensitivity`` settings (whether or not
``enabled``), and prints per group its channels, MAC share, accuracy at each ratio, latency
saved at each ratio and cap, then the ladder of seeds the study would enqueue
(``search.ladder`` targets). Each kind of number is labelled with how it was obtained.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register", "run", "format_table"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sensitivity", help="per-group accuracy and latency curves of a study's model, and the caps",
        description="Prune one channel group at a time at a few ratios, score the adaptive-BN proxy on the validation split, "
                    "time the int8 artifacts on the study's device, and print the curves, the caps and the ladder seeds.",
    )
    p.add_argument("study", help="study YAML file (its search.sensitivity settings are used)")
    p.add_argument("--json", action="store_true", help="print the analysis as JSON on stdout")
    p.add_argument("--out", help="also write the analysis as JSON to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._schema import atomic_write_text
    from ..config import load_study_config
    from ..exceptions import ConfigError
    from ..ladder import allocate
    from ..profile import make_profiler
    from ..sensitivity import analyse
    from ..study.context import StudyContext
    from ._output import print_json

    config = load_study_config(args.study)
    if args.out and not Path(args.out).resolve().parent.is_dir():
        raise ConfigError(f"--out {args.out}: directory {Path(args.out).resolve().parent} does not exist")
    ctx = StudyContext.prepare(config)
    if not any(g.max_ratio > 0 for g in ctx.space.groups):
        raise ConfigError(f"{config.path}: no channel group can be pruned (search.max_ratio is {config.search.max_ratio}): nothing to analyse")
    with make_profiler(ctx.device) as profiler:
        sens = analyse(ctx, profiler, config.search.sensitivity, log=lambda m: print(m, file=sys.stderr))
    seeds = allocate(sens, sens.cap_space(ctx.space), config.search.ladder)
    doc = {"study": config.name, "task": ctx.task.spec(), "device": ctx.device.name, **sens.to_dict(),
           "ladder": [s.to_dict() for s in seeds]}
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(doc, indent=2))
    if args.json:
        print_json(doc)
        return 0
    print(format_table(sens, seeds, f"task {ctx.task.name} on device {ctx.device.name}"))
    if args.out:
        print(f"\nwritten: {args.out}")
    return 0


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def format_table(sens, seeds=(), title: str = "") -> str:
    """The analysis as aligned text: one row per group, then what each number is, then the ladder."""
    ratios = sorted({r for c in sens.groups for r in c.ratios[1:]})
    dense_ms = sens.dense_latency_ms
    head = ["group", "channels", "MACs", "acc@0", *(f"acc@{r:g}" for r in ratios)]
    head += [f"saved@{r:g}" for r in ratios] if dense_ms is not None else []
    rows = [head + ["cap"]]
    for c in sens.groups:
        acc = dict(zip(c.ratios, c.accuracy))
        saved = dict(zip(c.ratios, c.saved_ms))
        row = [c.name, str(c.channels), f"{100 * c.macs_share:.1f} %", _num(c.accuracy[0], "{:.4f}")]
        row += [_num(acc.get(r, "-"), "{:.4f}") for r in ratios]
        row += [_num(saved.get(r, "-"), "{:+.4f} ms") for r in ratios] if dense_ms is not None else []
        rows.append(row + [f"{c.cap:g}" + (" (capped)" if c.cap < c.max_ratio - 1e-9 else "")])
    lines = [f"sensitivity of {title} ({len(sens.groups)} group(s), {sens.seconds.get('total', 0):.1f} s)", ""] if title else []
    lines += _table(rows)
    lines += ["", f"acc@r    measured: {sens.accuracy_how}"]
    if dense_ms is not None:
        noise = sens.noise
        lines += [f"saved@r  {sens.latency_source}: {sens.latency_how}; dense int8 {dense_ms:.4f} ms"]
        if noise.get("median_round_cv") is not None:
            lines += [f"         machine noise: the rounds' CV is {100 * noise['median_round_cv']:.1f} % (median over artifacts), "
                      f"{100 * (noise.get('dense_round_cv') or 0):.1f} % for the dense one: savings under "
                      f"~{2 * noise['median_round_cv'] * dense_ms:.4f} ms are within it"]
        else:
            lines += ["         machine noise: not measured (one round; search.sensitivity.rounds >= 2 measures it)"]
    else:
        lines += ["saved@r  not measured: the dense int8 artifact could not be timed"]
    from ..sensitivity import cap_how

    lines += [f"cap      derived: {cap_how(sens.collapse)}"]
    if seeds:
        lines += ["", "ladder (modelled from the curves; a study enqueues these after its baselines):"]
        rows = [["seed", "latency", "accuracy", "ratios"]]
        for s in seeds:
            pruned = ", ".join(f"{n} {r:g}" for n, r in s.ratios().items() if r > 0)
            rows.append([s.label, f"{s.predicted_latency_ms:.4f} ms", _num(s.predicted_accuracy, "{:.4f}"), pruned or "-"])
        lines += _table(rows)
    return "\n".join(lines)


def _num(value, fmt: str) -> str:
    if value is None:
        return "failed"
    return value if isinstance(value, str) else fmt.format(value)
