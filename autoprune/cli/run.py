"""``autoprune run STUDY.yaml``: run or resume a study and print its Pareto front."""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run (or resume) a study from its YAML",
        description="Run the Optuna search described by STUDY.yaml; re-running the same command resumes it.",
    )
    p.add_argument("study", help="study YAML file (see studies/quickstart.yaml)")
    p.add_argument("--out", help="run directory (default: runs/<study name>)")
    p.add_argument("--n-trials", type=int, help="override search.n_trials (total trials in the study)")
    p.add_argument("--storage", metavar="URL", help="Optuna storage, overriding the YAML's storage: (postgresql://..., "
                   "redis://... for the journal storage); every process given the same URL and study joins one study")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes on this machine (default 1); more than 1 needs --storage (not SQLite)")
    p.add_argument("--heartbeat", type=int, default=None, metavar="S",
                   help="Optuna heartbeat interval in seconds (default 30); a killed worker's trial is retried after 3 missed beats")
    p.add_argument("--build-threads", type=int, default=None, metavar="N",
                   help="torch threads per build if this run creates the study (default: torch's thread count here divided "
                        "by --workers, at least 1); the study records it and every worker, export and apply builds on it")
    p.add_argument("--mode", metavar="MODE", help="override search.mode: measure | model | hybrid "
                   "(latency timed, predicted by the device's calibrated cost model, or predicted and measured near the front)")
    p.add_argument("--json", action="store_true", help="print the front as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_study_config
    from ..exceptions import AutopruneError, ConfigError
    from ..metrics import metric_names
    from ..study import run_study, write_outputs
    from ._output import print_front, print_json

    config = load_study_config(args.study)
    if args.n_trials is not None:
        if args.n_trials < 1:
            raise ConfigError(f"--n-trials must be >= 1, got {args.n_trials}")
        config = dataclasses.replace(config, search=dataclasses.replace(config.search, n_trials=args.n_trials))
    if args.mode is not None:
        from ..config import MODES

        if args.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {args.mode!r}")
        config = dataclasses.replace(config, search=dataclasses.replace(config.search, mode=args.mode))
    url = args.storage or config.storage
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.workers > 1 and (url is None or url.startswith("sqlite:")):
        raise ConfigError(f"--workers {args.workers} needs --storage with parallel writers (postgresql://..., redis://...): "
                          "SQLite locks the whole database on every write")
    heartbeat = {} if args.heartbeat is None else {"heartbeat_s": args.heartbeat}
    if args.heartbeat is not None and args.heartbeat < 1:
        raise ConfigError(f"--heartbeat must be >= 1 s, got {args.heartbeat}")
    if args.build_threads is not None and args.build_threads < 1:
        raise ConfigError(f"--build-threads must be >= 1, got {args.build_threads}")
    if args.build_threads is None:
        from ..study.workers import build_threads_for

        args.build_threads = build_threads_for(args.workers)
    out = Path(args.out) if args.out else Path("runs") / config.name
    children = _start_workers(args, url, out) if args.workers > 1 else []
    try:
        result = run_study(config, out, progress=not args.quiet and not args.json, storage=args.storage,
                           build_threads=args.build_threads, **heartbeat)
    except KeyboardInterrupt:
        _interrupt(children)
        raise
    finally:
        codes = [c.wait() for c in children]
    failed = [f"worker {i + 1} exited with code {c}" for i, c in enumerate(codes) if c != 0]
    if failed:
        raise AutopruneError(f"{'; '.join(failed)} (its error is above); rerun the same command to resume")
    if children:  # the last of them may have ended the search and confirmed the front after this one
        result = dataclasses.replace(result, front=write_outputs(result.study, result.out_dir, list(config.objectives)))
    front = result.front
    if args.json:
        print_json({"run_dir": str(result.out_dir), **front})
        return 0
    print(f"\nPareto front of {front['study']}: {len(front['points'])} point(s) of {front['n_complete']} complete trial(s)")
    columns = list(dict.fromkeys([o["name"] for o in front["objectives"]] + ["accuracy", *metric_names(budget=True)]))
    print_front(front["points"], columns)
    screened = sum(t.user_attrs.get("screen", {}).get("passed") is False for t in result.study.get_trials(deepcopy=False))
    if screened:
        print(f"{screened} plan(s) screened before training: their untrained twin's modelled costs broke a budget or a "
              "device limit (trials.csv, fail_reason)")
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


def _start_workers(args: argparse.Namespace, url: str, out: Path) -> list[subprocess.Popen]:
    """Start ``--workers`` - 1 more processes on the same study; this one is the last worker.

    Each writes its own files under ``<run dir>/workers/<n>``; this process writes the run
    directory's from the storage once the search (and confirmation) are over.
    """
    argv = [sys.executable, "-m", "autoprune", "run", args.study, "--storage", url, "--quiet"]
    if args.n_trials is not None:
        argv += ["--n-trials", str(args.n_trials)]
    if args.heartbeat is not None:
        argv += ["--heartbeat", str(args.heartbeat)]
    if args.mode is not None:
        argv += ["--mode", args.mode]
    argv += ["--build-threads", str(args.build_threads)]  # whichever worker creates the study records the same count
    return [subprocess.Popen([*argv, "--out", str(out / "workers" / str(i + 1))], stdout=subprocess.DEVNULL)
            for i in range(args.workers - 1)]


def _interrupt(children: list[subprocess.Popen], grace_s: float = 2.0) -> None:
    """Pass Ctrl-C on to the workers still running ``grace_s`` after it.

    A terminal's Ctrl-C reaches every worker (one process group), and each stops on its own; a
    SIGINT sent to this process alone (``kill -INT``) did not reach them.
    """
    deadline = time.monotonic() + grace_s
    for c in children:
        try:
            c.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.send_signal(signal.SIGINT)
