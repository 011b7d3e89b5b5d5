"""Does the per-trial bookkeeping stay flat as a study grows? Trial 100 against trial 5,000.

Runs the runner's own per-trial bookkeeping (:class:`autoprune.study.bookkeeping.Bookkeeping`
with its :class:`~autoprune.study.progress.ProgressBar`: the bar, one trials.csv row,
front.json), started the way :func:`autoprune.study.run_study` starts it, on a SQLite study
(heartbeats on, as ``open_storage`` makes it) of ``--trials`` trials. The candidate is a
FAKE (:class:`FakeCandidate`): no build, no ONNX, no timing; it returns metrics of the real
shape drawn from a seeded RNG along an accuracy/latency trade-off, so the front evolves
the way a study's does, and 2 % of its trials fail as a candidate can.

Per trial it records the wall time from one trial's end to the next's and the time spent in
the bookkeeping; what remains is Optuna's (ask, suggest, user attrs, tell: the SQLite
writes; heartbeats) and the fake's arithmetic. Each is summarised by its median over a window of 100 trials around
trial 100 and over the last 100 trials, with the window's CV (standard deviation / mean of
the per-trial times) as the noise floor. The goal: bookkeeping per trial at trial 5,000
within 1.5x of trial 100.

The sampler is Optuna's ``RandomSampler``: TPE (the study's default) fits its estimators on
every complete trial, so its own per-trial cost grows with the study and would swamp what
this measures; random sampling costs the same at trial 5,000 as at trial 100.

The study and its run directory live on tmpfs (``/dev/shm``) where there is one: Optuna
commits some 35 times per trial, and an fsync on this VM's disk costs milliseconds, which
would stretch 5,000 trials over hours and add to every trial a constant that makes the ratio
look better than the bookkeeping's own growth; on tmpfs the fsyncs are free.

    nice -n 10 python benchmarks/bookkeeping.py [--trials 5000] [--out benchmarks/results/bookkeeping.txt]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import optuna

from autoprune.exceptions import CandidateError
from autoprune.metrics import Metric
from autoprune.study import open_storage, write_outputs
from autoprune.study.bookkeeping import Bookkeeping
from autoprune.study.progress import ProgressBar

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = ["accuracy", "latency_ms"]
DENSE_ACCURACY = 0.93
DENSE_LATENCY_MS = 1.2
MAX_ACCURACY_DROP = 0.2


class FakeCandidate:
    """FAKE candidate for benchmarks and tests: suggests a plan, builds and measures nothing.

    Its metrics have the shape the real objective records (``metrics``, ``measurement``,
    ``plan``, ``sha256``... user attrs and a ``max_accuracy_drop`` constraint) and are drawn
    from an RNG seeded by ``(seed, trial number)``: pruning and int8 save latency and cost
    accuracy, with noise, so the front grows and changes as a real one does.

    Args:
        layers: Layers in the fake plan.
        seed: RNG seed.
        fail_every: Every ``fail_every``-th trial raises :class:`CandidateError` (0: never).
    """

    def __init__(self, layers: int = 8, seed: int = 0, fail_every: int = 50) -> None:
        self.layers = [f"layer{i // 2 + 1}.{i % 2}.conv" for i in range(layers)]
        self.seed = seed
        self.fail_every = fail_every

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        plan = {}
        for name in self.layers:
            plan[name] = {"ratio": trial.suggest_float(f"{name}.ratio", 0.0, 0.9, step=0.05),
                          "bits": trial.suggest_categorical(f"{name}.bits", [8, 32])}
        if self.fail_every and trial.number % self.fail_every == self.fail_every - 1:
            trial.set_user_attr("plan", plan)
            trial.set_user_attr("fail_reason", "CandidateError: FAKE failure")
            raise CandidateError("FAKE failure")
        rng = np.random.default_rng((self.seed, trial.number))
        pruned = float(np.mean([p["ratio"] for p in plan.values()]))
        int8 = float(np.mean([p["bits"] == 8 for p in plan.values()]))
        accuracy = DENSE_ACCURACY - 0.4 * pruned**2 - 0.01 * int8 + float(rng.normal(0, 0.004))
        latency = DENSE_LATENCY_MS * (1 - pruned) ** 1.5 * (1 - 0.45 * int8) * float(rng.lognormal(0, 0.04)) + 0.05
        fake = "FAKE: drawn from a seeded RNG, nothing built or measured"
        metrics = {
            "accuracy": Metric(accuracy, "", "measured", fake),
            "latency_ms": Metric(latency, "ms", "measured", fake),
            "latency_p90_ms": Metric(latency * 1.1, "ms", "measured", fake),
            "size_kb": Metric(400 * (1 - pruned) * (1 - 0.7 * int8), "kB", "measured", fake),
            "macs": Metric(4.5e7 * (1 - pruned) ** 2, "", "measured", fake),
        }
        sha = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()
        trial.set_user_attr("metrics", {k: m.to_dict() for k, m in metrics.items()})
        trial.set_user_attr("measurement", {"latency_ms": metrics["latency_ms"].to_dict(),
                                            "latency": {"median_ms": latency, "p90_ms": latency * 1.1, "n": 50},
                                            "energy_mj": None, "settings": {"window_s": 0.5}, "device": {"name": "fake"},
                                            "peak_memory_mb": None})
        trial.set_user_attr("plan", plan)
        trial.set_user_attr("sha256", sha)
        trial.set_user_attr("size_bytes", int(metrics["size_kb"].value * 1024))
        trial.set_user_attr("channels", {name: [int(64 * (1 - p["ratio"]))] for name, p in plan.items()})
        trial.set_user_attr("stage_seconds", {"build": 0.0, "evaluate": 0.0, "profile": 0.0})
        trial.set_constraint("max_accuracy_drop", (DENSE_ACCURACY - accuracy) - MAX_ACCURACY_DROP)
        return accuracy, latency


def fake_study(storage: str | optuna.storages.BaseStorage, name: str = "fake", seed: int = 0) -> optuna.Study:
    """A study set up as the runner sets one up (storage, directions, metric names, dense reference), sampling at random.

    Args:
        storage: A storage URL (opened as the runner opens it) or a storage.
        name: The study's name.
        seed: The sampler's seed.
    """
    with warnings.catch_warnings():  # set_metric_names is experimental; the runner sets it the same way
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _fake_study(open_storage(storage) if isinstance(storage, str) else storage, name, seed)


def _fake_study(storage: optuna.storages.BaseStorage, name: str, seed: int) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=seed), load_if_exists=True)
    if "dense" not in study.user_attrs:
        study.set_metric_names(OBJECTIVES)
        study.set_user_attr("config", {"objectives": OBJECTIVES})
        study.set_user_attr("dense", {"accuracy": Metric(DENSE_ACCURACY, "", "measured", "FAKE").to_dict(), "macs": 45_000_000, "size_bytes": 409_600})
    return study


class TimedBookkeeping:
    """The runner's callback, with the time spent in it and the time between trial ends recorded."""

    def __init__(self, books: Bookkeeping) -> None:
        self.books = books
        self.book_s: list[float] = []
        self.ends: list[float] = [time.perf_counter()]
        self.front_sizes: list[int] = []

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        t0 = time.perf_counter()
        self.books(study, trial)
        t1 = time.perf_counter()
        self.book_s.append(t1 - t0)
        self.ends.append(t1)
        self.front_sizes.append(len(self.books.front))


def _window(values: list[float], lo: int, hi: int) -> tuple[float, float]:
    """Median (ms) and CV of ``values[lo:hi]``."""
    w = values[lo:hi]
    return statistics.median(w) * 1e3, statistics.stdev(w) / statistics.fmean(w)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5000)
    ap.add_argument("--window", type=int, default=100, help="trials per window")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bookkeeping.txt")
    args = ap.parse_args()
    n, half = args.trials, args.window // 2
    if n < 100 + half + args.window:
        ap.error(f"--trials must be at least {100 + half + args.window} (a window around trial 100 and one at the end)")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    load0 = os.getloadavg()[0]
    tmpfs = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="bookkeeping-bench-", dir=tmpfs) as tmp:
        out = Path(tmp)
        study = fake_study(f"sqlite:///{out / 'study.db'}")
        fake = FakeCandidate()
        books = Bookkeeping(out, OBJECTIVES, ProgressBar(n, 0, enabled=False))
        books.start(study)
        timed = TimedBookkeeping(books)
        t_start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the bar writes each FAKE failure's line there
            study.optimize(fake, n_trials=n, catch=(CandidateError,), callbacks=[timed])
        total_s = time.perf_counter() - t_start
        incremental = {f: (out / f).read_text() for f in ("trials.csv", "front.json")}
        rebuilt = out / "rebuilt"
        rebuilt.mkdir()
        t0 = time.perf_counter()
        write_outputs(optuna.load_study(study_name="fake", storage=f"sqlite:///{out / 'study.db'}"), rebuilt, OBJECTIVES)
        rebuild_s = time.perf_counter() - t0
        same = all(incremental[f] == (rebuilt / f).read_text() for f in incremental)

    wall = [b - a for a, b in zip(timed.ends, timed.ends[1:])]
    optuna_s = [w - b for w, b in zip(wall, timed.book_s)]
    early, late = (100 - half, 100 + half), (n - args.window, n)
    rows = []
    for label, series in (("bookkeeping (ours)", timed.book_s), ("Optuna (SQLite writes, heartbeat), FAKE", optuna_s), ("whole trial", wall)):
        (m1, cv1), (m2, cv2) = _window(series, *early), _window(series, *late)
        rows.append((label, m1, cv1, m2, cv2, m2 / m1))
    ratio = rows[0][5]
    lines = [
        f"bookkeeping: per-trial cost of the runner's bookkeeping as a study grows (measured on this machine, {datetime.now():%Y-%m-%d %H:%M})",
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end;"
        f" python {platform.python_version()}, optuna {optuna.__version__}",
        f"study: {n} trials of a FAKE instant candidate (no build, no ONNX; seeded-RNG metrics, 1 in {fake.fail_every} fails),"
        f" SQLite storage with heartbeats {'on tmpfs' if tmpfs else 'on disk'}, RandomSampler (TPE's own cost grows with the trials), 2 objectives",
        f"windows: trials {early[0]}-{early[1] - 1} (around 100) and {late[0]}-{late[1] - 1} (the last); median per trial, CV = stdev/mean in the window (noise floor)",
        "",
        f"{'per trial':40s} {'@100 ms':>9s} {'CV':>6s} {f'@{n} ms':>10s} {'CV':>6s} {'ratio':>6s}",
        *(f"{label:40s} {m1:9.3f} {cv1:6.1%} {m2:10.3f} {cv2:6.1%} {r:6.2f}" for label, m1, cv1, m2, cv2, r in rows),
        "",
        f"goal: bookkeeping per trial at trial {n} within 1.5x of trial 100: ratio {ratio:.2f} -> {'MET' if ratio <= 1.5 else 'NOT MET'}",
        f"front size: {statistics.median(timed.front_sizes[early[0]:early[1]]):.0f} around trial 100, {statistics.median(timed.front_sizes[late[0]:late[1]]):.0f} at the end",
        f"whole run: {total_s:.1f} s ({total_s / n * 1e3:.2f} ms per trial); one from-scratch rewrite of both files at the end: {rebuild_s * 1e3:.0f} ms",
        f"trials.csv and front.json kept incrementally equal a from-scratch rebuild from the storage: {'yes' if same else 'NO'}",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
