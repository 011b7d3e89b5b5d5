"""Export a trial: plan.yaml + model.onnx (the very artifact that was measured) + metrics.json.

The artifact is rebuilt deterministically from the plan and the base model, and its
sha256 must equal the one recorded when the trial was measured; otherwise nothing is
written. ``apply`` rebuilds a model from an exported ``plan.yaml`` the same way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import optuna
import yaml

from ._schema import atomic_write_bytes
from .config import StudyConfig
from .device import DeviceProfile
from .exceptions import ConfigError, ExportError
from .pick import parse_pick
from .plan import Plan
from .study.candidate import build
from .study.context import StudyContext, model_fingerprint, versions
from .study.heldout import measure_test_accuracy
from .study.outputs import RUN_FILE
from .study.records import TrialRecord, records

__all__ = ["load_run", "select_trial", "export_trial", "apply_plan", "ExportResult"]


@dataclasses.dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    trial: int
    sha256: str
    metrics: dict[str, Any]
    confirmed: bool = False  # the study's confirmation pass re-measured its timing metrics


def load_run(run_dir: str | os.PathLike) -> tuple[dict, optuna.Study]:
    """The run's ``run.json`` and its Optuna study.

    Raises:
        ConfigError: the directory holds no run.
    """
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a run directory ({RUN_FILE} not found)")
    try:
        run = json.loads(path.read_text())
        study = optuna.load_study(study_name=run["study_name"], storage=run["storage"])
    except (ValueError, KeyError) as e:
        raise ConfigError(f"{path}: cannot open the study: {e}") from None
    return run, study


def _values(r: TrialRecord) -> dict[str, float]:
    return {k: m["value"] for k, m in r.metrics.items()}


def select_trial(study: optuna.Study, trial: int | None = None, pick: str | None = None) -> TrialRecord:
    """The trial numbered ``trial``, or the best feasible complete trial under the ``pick`` expression.

    Both read the numbers the run stands by: confirmed re-measurements where the
    confirmation pass made them (:mod:`autoprune.study.records`).
    """
    complete = records(study)
    if (trial is None) == (pick is None):
        raise ConfigError("give exactly one of --trial N or --pick EXPR")
    if trial is not None:
        for r in complete:
            if r.number == trial:
                return r
        numbers = ", ".join(str(r.number) for r in complete) or "none"
        raise ConfigError(f"--trial {trial}: no complete trial with that number (complete: {numbers})")
    p = parse_pick(pick)
    candidates = [r for r in complete if r.feasible and p.metric in _values(r) and p.admits(_values(r))]
    if not candidates:
        raise ConfigError(f"--pick {pick!r}: no complete feasible trial satisfies it")
    directions = study.directions
    objectives = study.user_attrs.get("config", {}).get("objectives", [])

    def rank(r):  # the pick's metric first, then the study's objectives as tie-breakers
        v = _values(r)
        ties = tuple(v.get(o, 0.0) * (1 if d == optuna.study.StudyDirection.MAXIMIZE else -1) for o, d in zip(objectives, directions))
        return (p.key(v), *ties, -r.number)

    return max(candidates, key=rank)


def _plan_meta(ctx: StudyContext, run: dict, t: optuna.trial.FrozenTrial, sha: str) -> dict[str, Any]:
    return {
        "study_config": ctx.config.to_dict(),
        "device": ctx.device.to_dict(),
        "task": ctx.task.spec(),
        "base_model_fingerprint": model_fingerprint(ctx.model),
        "build_threads": ctx.build_threads,
        "artifact_sha256": sha,
        "source": {"study": run["study_name"], "trial": t.number, "baseline": t.user_attrs.get("baseline")},
        "versions": versions(),
    }


def _write_dir(out: Path, files: dict[str, bytes]) -> None:
    """Write all files or none: stage them beside ``out``, then move into place (each move atomic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    stage.chmod(0o755)
    try:
        for name, data in files.items():
            (stage / name).write_bytes(data)
        if not out.exists():
            os.replace(stage, out)
            return
        for name in files:
            os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def export_trial(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, trial: int | None = None, pick: str | None = None) -> ExportResult:
    """Rebuild a trial's artifact, check it is byte-identical to what was measured, write the export.

    Raises:
        ConfigError: unknown run, trial or bad pick expression.
        ExportError: the rebuilt artifact differs from the measured one (nothing is written).
    """
    run, study = load_run(run_dir)
    record = select_trial(study, trial, pick)
    t = record.trial
    config = StudyConfig.from_dict(run["config"], f"{run_dir}/{RUN_FILE}")
    device = DeviceProfile.from_dict(study.user_attrs["device"], f"{run_dir} (device profile of the study)")
    ctx = StudyContext.prepare(config, device=device)
    ctx.build_threads = study.user_attrs.get("build_threads")
    measured_fp, fp = study.user_attrs.get("base_model_fingerprint"), model_fingerprint(ctx.model)
    if measured_fp not in (None, fp):
        raise ExportError(
            f"{run_dir}: the task's base model (fingerprint {fp[:12]}) is not the one the study compressed "
            f"({measured_fp[:12]}); was it retrained, or does AUTOPRUNE_CACHE point at another cache?"
        )
    plan = Plan.from_dict({"layers": t.user_attrs["plan"]}, f"trial {t.number} plan")
    artifact = build(ctx, plan)
    if artifact.sha256 != t.user_attrs.get("sha256"):
        raise ExportError(
            f"trial {t.number}: the rebuilt artifact (sha256 {artifact.sha256[:12]}) differs from the measured one "
            f"({str(t.user_attrs.get('sha256'))[:12]}); the base model or library versions changed since the study ran"
        )
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "export" / f"trial-{t.number}"
    plan = Plan(plan.layers, meta=_plan_meta(ctx, run, t, artifact.sha256))
    if "test_accuracy" not in record.metrics:  # not confirmed: measure it on these bytes (reported, never used to select)
        test = measure_test_accuracy(ctx.task, artifact.onnx_bytes, dict(artifact.standin_bits))
        if test is not None:
            record = dataclasses.replace(record, metrics={**record.metrics, "test_accuracy": test.to_dict()})
    metrics = {
        "study": run["study_name"],
        "trial": t.number,
        "baseline": t.user_attrs.get("baseline"),
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"file": "model.onnx", "sha256": artifact.sha256, "size_bytes": artifact.size_bytes},
        "metrics": record.metrics,
        "confirmed": record.confirmed,
        "search_metrics": record.search_metrics,
        "confirmation": record.confirmation or None,
        "measurement": t.user_attrs.get("measurement", {}),
        "constraints": record.constraints,
        "stage_seconds": t.user_attrs.get("stage_seconds", {}),
    }
    _write_dir(out, {
        "plan.yaml": yaml.safe_dump(plan.to_dict(), sort_keys=False).encode(),
        "model.onnx": artifact.onnx_bytes,
        "metrics.json": json.dumps(metrics, indent=2).encode(),
    })
    return ExportResult(out, t.number, artifact.sha256, record.metrics, record.confirmed)


def apply_plan(plan_path: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Rebuild the model of an exported ``plan.yaml`` from the original and write it to ``out``.

    Returns facts about the rebuild (sha256, whether it matches the plan's recorded artifact).

    Raises:
        ConfigError / PlanError: bad plan file, unknown layer, or a different base model.
    """
    plan = Plan.load(plan_path)
    meta = plan.meta
    if "study_config" not in meta:
        raise ConfigError(f"{plan_path}: meta.study_config is required (write plans with `autoprune export`)")
    config = StudyConfig.from_dict(meta["study_config"], f"{plan_path}: meta.study_config")
    device = DeviceProfile.from_dict(meta["device"], f"{plan_path}: meta.device") if "device" in meta else None
    ctx = StudyContext.prepare(config, device=device)
    ctx.build_threads = meta.get("build_threads")
    fp = model_fingerprint(ctx.model)
    if meta.get("base_model_fingerprint") not in (None, fp):
        raise ConfigError(f"{plan_path}: meta.base_model_fingerprint does not match the task's model ({fp[:12]}): the original differs")
    artifact = build(ctx, Plan(plan.layers))
    atomic_write_bytes(out, artifact.onnx_bytes)
    expected = meta.get("artifact_sha256")
    return {"out": str(out), "sha256": artifact.sha256, "size_bytes": artifact.size_bytes, "matches_plan": expected == artifact.sha256 if expected else None}
