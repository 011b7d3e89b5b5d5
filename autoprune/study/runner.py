"""Running a study: prepare once, resume what exists, enqueue baselines, optimise, confirm the front, write outputs."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import warnings

import optuna

from .._schema import atomic_write_text
from .._scoped import quiet_optuna
from ..config import StudyConfig, load_study_config
from ..exceptions import ConfigError
from ..metrics import metric_direction
from ..profile import Profiler, make_profiler
from ..baselines import baseline_params
from ..ladder import enqueue_ladder
from ..sensitivity import apply_to_study
from .bookkeeping import Bookkeeping
from .confirm import confirm_front, needs_confirmation
from .context import StudyContext
from .heldout import dense_artifact, record_dense_test_accuracy
from .objective import CANDIDATE_ERRORS, Objective
from .outputs import RUN_FILE, write_outputs
from .progress import ProgressBar
from ..samplers import make_sampler

__all__ = ["run_study", "StudyResult", "open_storage", "baseline_params"]

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)
# Config parts that shape the search space or the artifacts: a resumed study must keep them.
_FROZEN_ON_RESUME = ("task", "task_options", "device", "objectives", "build")
_FROZEN_SEARCH = ("max_ratio", "ratio_step", "round_to", "bits", "exclude", "sensitivity")


@dataclasses.dataclass
class StudyResult:
    study: optuna.Study
    out_dir: Path
    front: dict[str, Any]


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``; relational ones get heartbeats so dead workers' trials are failed."""
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=90)
    return optuna.storages.get_storage(url)


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


@quiet_optuna()  # Optuna logs every trial at INFO; the caller's verbosity is back when the study returns
def run_study(
    config: StudyConfig | str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    profiler: Profiler | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> StudyResult:
    """Run (or resume) the study described by ``config``; returns the study, its directory and its front.

    Re-running with the same config and directory resumes: finished trials are kept and
    only the remaining ``search.n_trials`` are run.

    Raises:
        ConfigError: bad config, unknown device or task — raised before anything is written.
    """
    if not isinstance(config, StudyConfig):
        config = load_study_config(config)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    ctx = StudyContext.prepare(config)  # validates everything before a file is written
    profiler = make_profiler(profiler or ctx.device)
    out = Path(out_dir) if out_dir is not None else Path("runs") / config.name
    out.mkdir(parents=True, exist_ok=True)
    url = config.storage or f"sqlite:///{(out / 'study.db').resolve()}"

    study = optuna.create_study(
        study_name=config.name,
        storage=open_storage(url),
        directions=[metric_direction(o) for o in config.objectives],
        sampler=make_sampler(config.search),
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != [metric_direction(o) for o in config.objectives]:
        raise ConfigError(f"{config.path}: objectives differ from the study already in {out}; use another --out")
    _check_resume(study, config, out)
    atomic_write_text(out / RUN_FILE, json.dumps({"study_name": config.name, "storage": url, "config": config.to_dict()}, indent=2))
    if not study.user_attrs.get("config"):
        for key, value in ctx.facts().items():
            study.set_user_attr(key, value)
        with warnings.catch_warnings():  # experimental in Optuna 5; lets optuna-dashboard show our names
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(config.objectives))
    ctx.build_threads = study.user_attrs.get("build_threads")  # the creator's, for every worker and rebuild
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)

    if "dense" not in study.user_attrs:
        from ..evaluate import evaluate_onnx

        # The reference is the original model: no pruning, no quantization, no sparsity.
        # Its test_accuracy is added after the search (record_dense_test_accuracy).
        dense = dense_artifact(ctx)
        acc = evaluate_onnx(dense.onnx_bytes, ctx.eval_X, ctx.eval_y, ctx.task)
        study.set_user_attr("dense", {"accuracy": acc.to_dict(), "macs": dense.macs, "size_bytes": dense.size_bytes})
    dense_accuracy = study.user_attrs["dense"]["accuracy"]["value"]
    # Caps the space before anything is enqueued or suggested; a resumed study reads its caps back.
    sens = apply_to_study(study, ctx, profiler, log)

    trials = study.get_trials(deepcopy=False)
    have = {t.user_attrs.get("baseline") for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING)}
    for label in config.search.baselines:
        if label not in have:
            study.enqueue_trial(baseline_params(ctx.space, label), user_attrs={"baseline": label})
    if sens is not None:
        enqueue_ladder(study, ctx.space, sens, config.search, [baseline_params(ctx.space, b) for b in config.search.baselines], log)

    done = sum(t.state in FINISHED for t in trials)
    remaining = max(0, config.search.n_trials - done)
    bar = ProgressBar(config.search.n_trials, done, enabled=progress, trials=trials)
    books = Bookkeeping(out, list(config.objectives), bar)  # per trial: the bar, a trials.csv row, front.json

    try:
        if remaining:
            log(f"study {config.name}: {remaining} trial(s) to run ({done} done) on device {ctx.device.name}; outputs in {out}")
            books.start(study)  # the one read of every trial; from here the bookkeeping is incremental
            try:
                study.optimize(
                    Objective(ctx, profiler, dense_accuracy),
                    n_trials=remaining,
                    timeout=config.search.timeout_s,
                    catch=CANDIDATE_ERRORS,
                    callbacks=[books],
                )
            finally:
                bar.close()
        else:
            bar.close()
            log(f"study {config.name}: all {config.search.n_trials} trials already done in {out}")
        if needs_confirmation(study, ctx):
            confirm_front(study, ctx, profiler, log)
        record_dense_test_accuracy(study, ctx)  # after the search: the test split is never seen while selecting
    finally:
        profiler.close()
    return StudyResult(study, out, write_outputs(study, out, list(config.objectives)))
