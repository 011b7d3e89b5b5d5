"""Running a study: prepare once, resume what exists, enqueue baselines, optimise, confirm the front, write outputs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

import warnings

import optuna

from .._schema import atomic_write_text
from .._scoped import quiet_optuna
from ..config import StudyConfig, load_study_config
from ..exceptions import ConfigError, StorageError
from ..metrics import metric_direction
from ..profile import Profiler
from ..baselines import baseline_params
from ..ladder import SEED_ATTR, enqueue_ladder
from ..sensitivity import Sensitivity, apply_to_study
from .bookkeeping import Bookkeeping
from .hybrid import mode_profiler
from ..costmodel.calibrated import load_device_calibration
from ..device import load_device_profile
from .claims import Claims
from .confirm import confirm_front, needs_confirmation
from .context import StudyContext, cpu_facts, model_fingerprint
from .heldout import dense_artifact, record_dense_test_accuracy
from .liveness import INTERRUPTED, TrialWatch, retry_stale
from .objective import CANDIDATE_ERRORS, Objective
from .outputs import RUN_FILE, write_outputs
from .progress import ProgressBar
from .storage import GRACE_FACTOR, HEARTBEAT_S, MAX_RETRY, open_storage, redact, retrying, storage_lost, unreachable
from .workers import TrialBudget, check_joining, counted
from ..samplers import make_sampler

__all__ = ["run_study", "StudyResult", "open_storage", "baseline_params"]

# Config parts that shape the search space or the artifacts: a resumed study must keep them.
_FROZEN_ON_RESUME = ("task", "task_options", "device", "objectives", "build")
_FROZEN_SEARCH = ("max_ratio", "ratio_step", "round_to", "bits", "exclude", "sensitivity")


@dataclasses.dataclass
class StudyResult:
    study: optuna.Study
    out_dir: Path
    front: dict[str, Any]


def _check_resume(study: optuna.Study, config: StudyConfig, out: Path) -> None:
    stored = study.user_attrs.get("config")
    if not stored:
        return
    now = config.to_dict()
    for key in _FROZEN_ON_RESUME:
        if stored.get(key) != now.get(key):
            raise ConfigError(f"{config.path}: {key} differs from the study already in {out} ({stored.get(key)!r}); use another --out to start afresh")
    for key in _FROZEN_SEARCH:
        if stored["search"].get(key) != now["search"].get(key):
            raise ConfigError(f"{config.path}: search.{key} differs from the study already in {out}; use another --out to start afresh")


def _prepare(study: optuna.Study, ctx: StudyContext, profiler: Profiler, log: Callable[[str], None]) -> None:
    """Done once per study, by the worker that claims it: facts, dense reference, sensitivity analysis.

    Every step is idempotent (it skips what the storage already holds), so a worker taking
    over from one killed halfway redoes only what is missing.
    """
    config = ctx.config
    if not study.user_attrs.get("config"):
        for key, value in ctx.facts().items():
            study.set_user_attr(key, value)
        with warnings.catch_warnings():  # experimental in Optuna 5; lets optuna-dashboard show our names
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(config.objectives))
    ctx.build_threads = study.user_attrs.get("build_threads")
    if "dense" not in study.user_attrs:
        from ..evaluate import evaluate_onnx

        # The reference is the original model: no pruning, no quantization, no sparsity.
        # Its test_accuracy is added after the search (record_dense_test_accuracy).
        dense = dense_artifact(ctx)
        acc = evaluate_onnx(dense, ctx.eval_X, ctx.eval_y, ctx.task)
        study.set_user_attr("dense", {"accuracy": acc.to_dict(), "macs": dense.macs, "size_bytes": dense.size_bytes})
    apply_to_study(study, ctx, profiler, log)  # runs the analysis for a new study and stores it


def _enqueue_key(study: optuna.Study) -> str:
    """The claim for (re-)enqueuing baselines and seeds: one per set of failed ones, so each failure is retried once."""
    failed = [t.number for t in counted(study.get_trials(deepcopy=False))
              if t.state == optuna.trial.TrialState.FAIL and (t.user_attrs.get("baseline") or t.user_attrs.get(SEED_ATTR))]
    return "-".join(["enqueue", *map(str, failed)])


def _enqueue(study: optuna.Study, ctx: StudyContext, sens: Sensitivity | None, log: Callable[[str], None]) -> None:
    """Enqueue the baselines and the ladder's seeds that neither completed nor run nor wait (all of them, the first time)."""
    search = ctx.config.search
    live = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
    have = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False, states=live)}
    for label in search.baselines:
        if label not in have:
            study.enqueue_trial(baseline_params(ctx.space, label), user_attrs={"baseline": label})
    if sens is not None:
        enqueue_ladder(study, ctx.space, sens, search, [baseline_params(ctx.space, b) for b in search.baselines], log)


def _search(study: optuna.Study, watch: TrialWatch, budget: TrialBudget, books: Bookkeeping, config: StudyConfig,
            url: str, poll_s: float, log: Callable[[str], None]) -> None:
    """Run trials while the study-wide budget has room, then wait for the other workers' trials to end.

    Every storage opened here beats (:mod:`autoprune.study.liveness`): a killed worker's trial
    is failed as stale and retried, so waiting ends. A storage that stops answering is tried
    again with backoff (:func:`~autoprune.study.storage.retrying`), and a trial it cut short is
    failed and queued again once it answers.
    """
    t0 = time.monotonic()
    timeout = config.search.timeout_s
    waiting = False

    def step() -> str:
        nonlocal waiting
        cut = watch.give_up(study, "the storage stopped answering mid-trial; queued again with the same parameters")
        if cut is not None:
            log(f"search: trial {cut}, cut short while the storage was away, is queued again")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial is retried (re-enqueued)
        next_step = budget.next_step(study)
        if next_step == "wait":
            if not waiting:
                log("search: the budget is spent; waiting for the other workers' trials to end")
                waiting = True
            time.sleep(poll_s)
        elif next_step == "run":
            waiting = False
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - t0))
            study.optimize(watch, n_trials=1, timeout=left, catch=CANDIDATE_ERRORS, callbacks=[books])
            watch.ended(study)
        return next_step

    while timeout is None or time.monotonic() - t0 < timeout:
        if retrying(step, url, "the search", log=log) == "done":
            return


def _interrupted(study: optuna.Study, watch: TrialWatch | None, out: Path, config: StudyConfig, url: str) -> str:
    """After Ctrl-C: the trial it cut short failed and queued again, the outputs rewritten; the line to print."""
    try:
        number = watch.give_up(study, INTERRUPTED) if watch is not None else None
        if watch is not None:  # the search had begun: its outputs follow the storage
            write_outputs(study, out, list(config.objectives))
    except Exception as e:
        if not unreachable(e):
            raise
        return f"study {config.name}: storage {redact(url)} unreachable, so the running trial stays RUNNING until it is found stale; rerun the same command to resume"
    cut = f"trial {number} failed (interrupted) and queued again" if number is not None else "no search trial was cut short"
    return f"study {config.name}: {cut}; {out} holds every finished trial; rerun the same command to resume"


@quiet_optuna()  # Optuna logs every trial at INFO; the caller's verbosity is back when the study returns
def run_study(
    config: StudyConfig | str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    profiler: Profiler | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    storage: str | None = None,
    heartbeat_s: int = HEARTBEAT_S,
    build_threads: int | None = None,
) -> StudyResult:
    """Run (or resume, or join) the study described by ``config``; returns the study, its directory and its front.

    Re-running with the same config and directory resumes: finished trials are kept and
    only the remaining ``search.n_trials`` are run. Any number of processes, here or on other
    machines, may run the same study on one shared storage: the budget is the study's, the
    preparation (dense reference, sensitivity, baselines, ladder) and the confirmation pass
    are each run by one of them (:mod:`autoprune.study.claims`), and each samples with its
    own seed (the study's seed plus the worker's number).

    Args:
        config: The study config or its YAML.
        out_dir: Run directory (default ``runs/<name>``).
        profiler: A profiler object instead of the device's own.
        progress: Show a progress bar.
        log: Progress lines (default: stderr).
        storage: Optuna storage URL, overriding ``config.storage`` (default: SQLite in the run dir).
        heartbeat_s: Heartbeat interval; a killed worker's trial is failed and retried after 3
            intervals without a beat.
        build_threads: torch threads for builds if this worker creates the study (default:
            torch's count here); a worker joining a study builds on the count the study recorded.

    Raises:
        ConfigError: bad config, unknown device or task — raised before anything is written.
        StudyMismatchError: the study was begun with another base model, device profile or CPU.
        StorageError: the storage did not answer after retries.
        KeyboardInterrupt: Ctrl-C; the trial it cut short is failed and queued again, the
            outputs are rewritten, and the exception's message says so.
    """
    if not isinstance(config, StudyConfig):
        config = load_study_config(config)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if config.search.mode != "measure":  # a missing or foreign calibration fails before the model is loaded
        load_device_calibration(load_device_profile(config.device))
    ctx = StudyContext.prepare(config)  # validates everything before a file is written
    # search.mode: timed on the device, predicted by its calibrated cost model, or both (hybrid)
    profiler = mode_profiler(config.search.mode, ctx.device, config.objectives, profiler, config.search.hybrid_margin)
    out = Path(out_dir) if out_dir is not None else Path("runs") / config.name
    out.mkdir(parents=True, exist_ok=True)
    url = storage or config.storage or f"sqlite:///{(out / 'study.db').resolve()}"

    store = open_storage(url, heartbeat_s, log=log)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    claims = Claims(store, config.name, worker, stale_s=GRACE_FACTOR * heartbeat_s)
    index = claims.index()
    study = optuna.create_study(
        study_name=config.name,
        storage=store,
        directions=[metric_direction(o) for o in config.objectives],
        sampler=make_sampler(dataclasses.replace(config.search, seed=config.search.seed + index)),
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != [metric_direction(o) for o in config.objectives]:
        raise ConfigError(f"{config.path}: objectives differ from the study already in {out}; use another --out")
    _check_resume(study, config, out)
    fingerprint = model_fingerprint(ctx.model)
    _check_joining(study, ctx, fingerprint)
    atomic_write_text(out / RUN_FILE, json.dumps({"study_name": config.name, "storage": url, "config": config.to_dict()}, indent=2))
    ctx.build_threads = build_threads  # recorded if this worker creates the study; a joiner takes the study's below
    watch: TrialWatch | None = None
    try:
        claims.once("prepare", lambda: _prepare(study, ctx, profiler, log), log, "preparing the study")
        _check_joining(study, ctx, fingerprint)  # a worker that waited for the study's creator is checked against its facts
        ctx.build_threads = study.user_attrs.get("build_threads")  # the creator's, for every worker and rebuild
        sens = apply_to_study(study, ctx, profiler, log)  # the stored caps, for this worker's space
        claims.once(_enqueue_key(study), lambda: _enqueue(study, ctx, sens, log), log, "enqueuing baselines and seeds")
        dense_accuracy = study.user_attrs["dense"]["accuracy"]["value"]

        trials = study.get_trials(deepcopy=False)
        budget = TrialBudget(config.search.n_trials)
        done = sum(t.state.is_finished() for t in counted(trials))
        bar = ProgressBar(config.search.n_trials, done, enabled=progress, trials=trials)
        books = Bookkeeping(out, list(config.objectives), bar)  # per trial: the bar, a trials.csv row, front.json
        if budget.next_step(study) != "done":
            log(f"study {config.name}: worker {index} ({worker}) joins with {done} of {config.search.n_trials} trial(s) done "
                f"on device {ctx.device.name}; outputs in {out}")
            books.start(study)  # the one read of every trial; from here the bookkeeping is incremental
            watch = TrialWatch(budget.guard(Objective(ctx, profiler, dense_accuracy)), retry_stale(MAX_RETRY))
            try:
                _search(study, watch, budget, books, config, url, claims.poll_s, log)
            finally:
                bar.close()
        else:
            bar.close()
            log(f"study {config.name}: all {config.search.n_trials} trials already done in {out}")
        finished = budget.next_step(study) == "done"
        if not finished and config.search.timeout_s is not None:
            log(f"study {config.name}: search.timeout_s is up while trials remain; the confirmation pass is left to the worker that ends the search")
        if finished and needs_confirmation(study, ctx):
            n = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
            settings = hashlib.sha256(json.dumps(dataclasses.asdict(config.confirm), sort_keys=True).encode()).hexdigest()[:8]
            claims.once(f"confirm-{n}-{settings}", lambda: confirm_front(study, ctx, profiler, log), log, "confirmation pass")
        # after the search: the test split is never seen while selecting
        retrying(lambda: record_dense_test_accuracy(study, ctx), url, "recording the dense test accuracy", log=log)
        front = retrying(lambda: write_outputs(study, out, list(config.objectives)), url, "writing the outputs", log=log)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_interrupted(study, watch, out, config, url)) from None
    except StorageError:
        raise
    except Exception as e:
        if unreachable(e):  # outside the search, where a step may not be safe to repeat: stop, the rerun resumes
            raise storage_lost(url, "preparing or confirming the study", e) from None
        raise
    finally:
        profiler.close()
    return StudyResult(study, out, front)


def _check_joining(study: optuna.Study, ctx: StudyContext, fingerprint: str) -> None:
    attrs = study.user_attrs
    if not attrs.get("config"):
        return  # a new study: this worker's facts become the study's
    cpu = cpu_facts() if ctx.device.profiler.kind == "local" else None
    check_joining(attrs, fingerprint, ctx.device.to_dict(), cpu, str(ctx.config.path))
