"""``autoprune run STUDY.yaml``: run or resume a study and print its Pareto front."""

from __future__ import annotations

import argparse
import dataclasses
import math

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run (or resume) a study from its YAML",
        description="Run the Optuna search described by STUDY.yaml; re-running the same command resumes it.",
    )
    p.add_argument("study", help="study YAML file (see studies/quickstart.yaml)")
    p.add_argument("--out", help="run directory (default: runs/<study name>)")
    p.add_argument("--n-trials", type=int, help="override search.n_trials (total trials in the study)")
    p.add_argument("--json", action="store_true", help="print the front as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_study_config
    from ..exceptions import ConfigError
    from ..metrics import metric_names
    from ..study import run_study
    from ._output import print_front, print_json

    config = load_study_config(args.study)
    if args.n_trials is not None:
        if args.n_trials < 1:
            raise ConfigError(f"--n-trials must be >= 1, got {args.n_trials}")
        config = dataclasses.replace(config, search=dataclasses.replace(config.search, n_trials=args.n_trials))
    result = run_study(config, args.out, progress=not args.quiet and not args.json)
    front = result.front
    if args.json:
        print_json({"run_dir": str(result.out_dir), **front})
        return 0
    print(f"\nPareto front of {front['study']}: {len(front['points'])} point(s) of {front['n_complete']} complete trial(s)")
    columns = list(dict.fromkeys([o["name"] for o in front["objectives"]] + ["accuracy", *metric_names(budget=True)]))
    print_front(front["points"], columns)
    dense = (front.get("dense") or {}).get("accuracy")
    if dense:
        print(f"dense fp32 accuracy: {dense['value']:.4f} ({dense['source']}: {dense['how']})")
    dense_test = (front.get("dense") or {}).get("test_accuracy")
    if dense_test:
        print(f"dense fp32 test_accuracy: {dense_test['value']:.4f} ({dense_test['source']}: {dense_test['how']})")
    print(f"\nrun directory: {result.out_dir}  (trials.csv, front.json, study.db)")
    # a budget on the study's first cost (latency by default) in the middle of the front,
    # rounded up so that its point qualifies
    cost = next((o["name"] for o in front["objectives"] if o["direction"] == "minimize"), "latency_ms")
    values = sorted(p["metrics"][cost]["value"] for p in front["points"] if cost in p["metrics"])
    if values:
        budget = math.ceil(values[len(values) // 2] * 1000) / 1000
        print(f"export one:    autoprune export {result.out_dir} --pick \"max accuracy where {cost} <= {budget:g}\"")
    return 0
