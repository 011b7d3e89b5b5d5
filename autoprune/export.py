"""Export a trial: plan.yaml + model.onnx (the very artifact that was measured) + metrics.json.

The artifact is rebuilt deterministically from the plan and the base model, and its
sha256 must equal the one recorded when the trial was measured; otherwise nothing is
written. ``apply`` rebuilds a model from an exported ``plan.yaml`` the same way.

With recovery (``finetune=EPOCHS``, the CLI's ``--finetune``), the checked trial's pruned
float model is trained further (:func:`~autoprune.compress.recover.recover`, optionally
distilling from the dense model), packaged again with the same plan and calibration
(:func:`~autoprune.compress.build.build_recovered`), and measured anew: accuracy on the
validation and test splits, latency interleaved with the unrecovered artifact. metrics.json
then holds the recovered numbers (``metrics``), the study's (``proxy_metrics``) and the
recovery's settings and losses (``recovery``); the plan's meta records the settings, so
``apply`` rebuilds the recovered bytes.
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

from .compress.build import Artifact, RecoveredBuild, build_recovered
from .compress.recover import RecoverySettings
from .config import ConfirmSettings, StudyConfig
from .device import DeviceProfile
from .exceptions import ConfigError, ExportError
from .metrics import Metric, metric_names
from .pick import select_trial
from .plan import Plan
from .profile import estimate_energy, make_profiler
from .profile.rounds import TRIMMED_MEAN, measure_rounds, round_latency, trimmed_mean
from .study.candidate import build, measure, standin_note
from .study.context import StudyContext, model_fingerprint, versions
from .study.heldout import measure_test_accuracy
from .threads import torch_threads
from .study.outputs import RUN_FILE

__all__ = ["load_run", "select_trial", "export_trial", "apply_plan", "ExportResult", "recovery_settings"]


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What was exported.

    Attributes:
        metrics: The exported artifact's metrics (``{name: {value, unit, source, how}}``):
            the recovered model's with recovery, the study's otherwise.
        confirmed: The study's confirmation pass re-measured the trial's timing metrics.
        proxy_metrics: With recovery, the trial's metrics as the study recorded them.
        recovery: With recovery, its settings, losses and seconds.
    """

    out_dir: Path
    trial: int
    sha256: str
    metrics: dict[str, Any]
    confirmed: bool = False
    proxy_metrics: dict[str, Any] | None = None
    recovery: dict[str, Any] | None = None


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


def _plan_meta(ctx: StudyContext, run: dict, t: optuna.trial.FrozenTrial, sha: str, recovery: RecoverySettings | None) -> dict[str, Any]:
    meta = {
        "study_config": ctx.config.to_dict(),
        "device": ctx.device.to_dict(),
        "task": ctx.task.spec(),
        "base_model_fingerprint": model_fingerprint(ctx.model),
        "build_threads": ctx.build_threads,
        "artifact_sha256": sha,
        "source": {"study": run["study_name"], "trial": t.number, "baseline": t.user_attrs.get("baseline"), "sha256": t.user_attrs.get("sha256")},
        "versions": versions(),
    }
    if recovery is not None:
        meta["recovery"] = recovery.to_dict()
    return meta


def recovery_settings(config: StudyConfig, finetune: int | None, distill: bool = False, lr: float | None = None) -> RecoverySettings | None:
    """The recovery export runs for ``--finetune/--distill/--lr`` (None without ``finetune``).

    The learning rate defaults to the study's ``build.finetune_lr`` and the seed is the build's.

    Raises:
        ConfigError: ``distill`` or ``lr`` without ``finetune``, or a bad value.
    """
    if finetune is None:
        if distill:
            raise ConfigError("--distill needs --finetune EPOCHS (distillation is part of recovery)")
        if lr is not None:
            raise ConfigError("--lr needs --finetune EPOCHS (it is the recovery's learning rate)")
        return None
    try:
        return RecoverySettings(epochs=finetune, lr=config.build.finetune_lr if lr is None else lr, distill=distill, seed=config.build.seed)
    except ConfigError as e:
        raise ConfigError(str(e).replace("recovery.epochs", "--finetune", 1).replace("recovery.lr", "--lr", 1)) from None


def _build_recovered(ctx: StudyContext, plan: Plan, recovery: RecoverySettings) -> RecoveredBuild:
    """:func:`build_recovered` on the study's settings and torch thread count (teacher: the dense model)."""
    with torch_threads(ctx.build_threads):
        return build_recovered(ctx.model, plan, ctx.space, ctx.task, ctx.example_input, ctx.config.build, recovery)


def _with_test_accuracy(ctx: StudyContext, metrics: dict[str, Any], artifact: Artifact, where: str) -> dict[str, Any]:
    """``metrics`` plus ``test_accuracy`` of ``artifact``'s bytes, unless present or the task has no test split."""
    if "test_accuracy" in metrics:
        return metrics
    m = measure_test_accuracy(ctx.task, artifact, artifact.standin_bits)  # the artifact: external data too
    if m is None:
        return metrics
    return {**metrics, "test_accuracy": dataclasses.replace(m, how=f"{m.how}; measured on {where} at export").to_dict()}


def _recovery_how(r: RecoverySettings) -> str:
    kd = f", distilled from the dense model (T={r.temperature:g}, alpha={r.alpha:g})" if r.distill else ""
    return f"after recovery: {r.epochs} epoch(s) of {RecoverySettings.OPTIMIZER} at lr {r.lr:g}, {RecoverySettings.SCHEDULE}{kd}"


def _recovered_metrics(ctx: StudyContext, plan: Plan, rb: RecoveredBuild, recovery: RecoverySettings) -> tuple[dict[str, Metric], dict[str, Any]]:
    """The recovered artifact's metrics, and facts about the latency comparison with the unrecovered one.

    Accuracy, size and MACs come from the study's own :func:`~autoprune.study.candidate.measure`
    on the recovered artifact (simulated accuracy for layers below 8 bits, as in the study).
    Latency is re-measured with the confirmation pass's protocol, the recovered and the
    unrecovered artifact round-robin in the same rounds, so their ratio is fair.
    """
    settings = ctx.config.confirm
    n_rounds = settings.rounds or ConfirmSettings().rounds  # the pass may be off in the study; the protocol is not
    window = settings.min_duration_s if settings.rounds else ConfirmSettings().min_duration_s
    profiler = make_profiler(ctx.device)
    try:
        result = measure(ctx, plan, profiler, rb.recovered)
        with tempfile.TemporaryDirectory(prefix="autoprune-recover-") as tmp:
            paths = {"recovered": Path(tmp) / "recovered.onnx", "unrecovered": Path(tmp) / "unrecovered.onnx"}
            rb.recovered.save(paths["recovered"])
            rb.unrecovered.save(paths["unrecovered"])
            rounds, failed = measure_rounds(profiler, paths, n_rounds, window)
    finally:
        profiler.close()
    if failed:
        key, reason = next(iter(failed.items()))
        raise ExportError(f"re-measuring the {key} artifact's latency failed: {reason}")
    metrics = dict(result.metrics)
    acc = metrics["accuracy"]
    metrics["accuracy"] = dataclasses.replace(acc, how=f"{acc.how}; {_recovery_how(recovery)}")
    lat, lat0 = round_latency(rounds["recovered"]), round_latency(rounds["unrecovered"])
    ratio = lat.value / lat0.value if lat0.value > 0 else float("nan")
    pair = f"round-robin with the unrecovered artifact in the same rounds (its latency {lat0.value:.4g} ms; ratio {ratio:.3f})"
    metrics["latency_ms"] = dataclasses.replace(lat, how=f"export --finetune: {lat.how}, {pair}")
    p90 = round_latency(rounds["recovered"], "p90")
    metrics["latency_p90_ms"] = dataclasses.replace(p90, how=f"export --finetune: {p90.how}, round-robin with the unrecovered artifact in the same rounds")
    if "energy_mj" in metrics:
        readings = [m.energy_mj for m in rounds["recovered"] if m.energy_mj is not None]
        if readings and all(e.source == "estimated" for e in readings):
            est = estimate_energy(metrics["latency_ms"].value, ctx.device)
            metrics["energy_mj"] = dataclasses.replace(est, how=est.how.replace("measured median latency", "re-measured latency")) if est else metrics["energy_mj"]
        elif readings:
            metrics["energy_mj"] = Metric(trimmed_mean([e.value for e in readings]), readings[0].unit, readings[0].source,
                                          f"export --finetune: {TRIMMED_MEAN} of {len(readings)} rounds of: {readings[0].how}")
    if rb.recovered.standin_bits:
        metrics.update({k: standin_note(metrics[k], rb.recovered.standin_bits) for k in metric_names(is_timing=True) if k in metrics})
    comparison = {
        "rounds": n_rounds, "window_s": window,
        "unrecovered_latency_ms": lat0.to_dict(),
        "latency_ratio": ratio,
        "round_medians_ms": {k: [round(m.latency_ms.value, 6) for m in v] for k, v in rounds.items()},
    }
    return metrics, comparison


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


def export_trial(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, trial: int | None = None,
                 pick: str | None = None, finetune: int | None = None, distill: bool = False, lr: float | None = None) -> ExportResult:
    """Rebuild a trial's artifact, check it is byte-identical to what was measured, write the export.

    Args:
        run_dir: The study's run directory.
        out_dir: Where to write (default ``RUN_DIR/export/trial-N``).
        trial, pick: Which trial: its number, or a pick expression (exactly one).
        finetune: Recover the pruned model for this many epochs before exporting it (None: export
            the measured artifact as it is).
        distill: With ``finetune``: distil from the dense model too.
        lr: With ``finetune``: the recovery's learning rate (default: the study's ``build.finetune_lr``).

    Raises:
        ConfigError: unknown run, trial, bad pick expression, or bad recovery options.
        ExportError: the rebuilt artifact differs from the measured one (nothing is written).
    """
    run, study = load_run(run_dir)
    config = StudyConfig.from_dict(run["config"], f"{run_dir}/{RUN_FILE}")
    recovery = recovery_settings(config, finetune, distill, lr)
    record = select_trial(study, trial, pick)
    t = record.trial
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
    rb = _build_recovered(ctx, plan, recovery) if recovery is not None else None
    artifact = rb.unrecovered if rb is not None else build(ctx, plan)
    if artifact.sha256 != t.user_attrs.get("sha256"):
        raise ExportError(
            f"trial {t.number}: the rebuilt artifact (sha256 {artifact.sha256[:12]}) differs from the measured one "
            f"({str(t.user_attrs.get('sha256'))[:12]}); the base model or library versions changed since the study ran"
        )
    exported = rb.recovered if rb is not None else artifact
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "export" / f"trial-{t.number}"
    plan = Plan(plan.layers, meta=_plan_meta(ctx, run, t, exported.sha256, recovery))
    doc = {
        "study": run["study_name"],
        "trial": t.number,
        "baseline": t.user_attrs.get("baseline"),
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {"file": "model.onnx", "sha256": exported.sha256, "size_bytes": exported.size_bytes},
    }
    proxy = _with_test_accuracy(ctx, record.metrics, artifact, "the measured artifact")
    if rb is None:
        doc["metrics"] = proxy
    else:
        metrics, comparison = _recovered_metrics(ctx, plan, rb, recovery)
        doc["metrics"] = _with_test_accuracy(ctx, {k: m.to_dict() for k, m in metrics.items()}, rb.recovered, "the recovered artifact")
        doc["proxy_metrics"] = proxy
        doc["recovery"] = {
            **recovery.to_dict(),
            "losses": [round(v, 6) for v in rb.losses],
            "seconds": round(rb.seconds, 3),
            "trained_on": f"{len(ctx.task.train_data()[1])}-sample training data of task {ctx.task.name} (never the validation or test split)",
            "unrecovered_sha256": artifact.sha256,
            "latency": comparison,
        }
    doc.update({
        "confirmed": record.confirmed,
        "search_metrics": record.search_metrics,
        "confirmation": record.confirmation or None,
        "measurement": t.user_attrs.get("measurement", {}),
        "constraints": record.constraints,
        "stage_seconds": t.user_attrs.get("stage_seconds", {}),
    })
    _write_dir(out, {
        "plan.yaml": yaml.safe_dump(plan.to_dict(), sort_keys=False).encode(),
        "model.onnx": exported.onnx_bytes,
        **({exported.external_data.file: exported.external_data.data} if exported.external_data else {}),  # over 2 GB
        "metrics.json": json.dumps(doc, indent=2).encode(),
    })
    return ExportResult(out, t.number, exported.sha256, doc["metrics"], record.confirmed, doc.get("proxy_metrics"), doc.get("recovery"))


def apply_plan(plan_path: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Rebuild the model of an exported ``plan.yaml`` from the original and write it to ``out``.

    A plan exported with recovery (``meta.recovery``) is rebuilt with the same recovery.
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
    recovery = RecoverySettings.from_dict(meta["recovery"], f"{plan_path}: meta.recovery") if meta.get("recovery") is not None else None
    bare = Plan(plan.layers)
    artifact = _build_recovered(ctx, bare, recovery).recovered if recovery is not None else build(ctx, bare)
    artifact.save(out)
    expected = meta.get("artifact_sha256")
    return {"out": str(out), "sha256": artifact.sha256, "size_bytes": artifact.size_bytes, "matches_plan": expected == artifact.sha256 if expected else None,
            "recovered": recovery is not None}
