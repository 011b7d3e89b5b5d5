"""Why a trial is infeasible reaches the user: trials.csv, the report, the bar; a modelled study confirms nothing.

The study is real and tiny (the digits CNN on the modelled Cortex-M7): its flash is set between
what the int8 and the fp32 model need, and its latency budget just under the dense int8 model's
modelled latency, so dense-fp32 breaks both, dense-int8 only the budget.
"""

from __future__ import annotations

import csv
import dataclasses
import json

import onnx
import optuna
import pytest

from autoprune.config import Constraints
from autoprune.costmodel.graph import analyze
from autoprune.costmodel.profiler import ModelledProfiler
from autoprune.device import Limit, load_device_profile
from autoprune.metrics import Metric
from autoprune.plan import LayerPlan, Plan
from autoprune.profile import LocalProfiler
from autoprune.report.data import build_report_data
from autoprune.report.figures import hover_text
from autoprune.report.source import RunSource
from autoprune.study import StudyContext, build, run_study
from autoprune.study import confirm, runner
from autoprune.study.objective import infeasible_reason
from autoprune.study.progress import ProgressBar
from autoprune.study.records import CONFIRMATION_ATTR, record, records


def _metrics(**values: float) -> dict[str, Metric]:
    units = {"accuracy": "", "latency_ms": "ms", "size_kb": "kB", "energy_mj": "mJ"}
    return {k: Metric(v, units[k], "measured", "FAKE") for k, v in values.items()}


def test_the_reason_names_each_broken_constraint_its_value_and_its_limit():
    c = Constraints(max_accuracy_drop=0.05, latency_ms=2.0, size_kb=100.0, energy_mj=1.0)
    reason = infeasible_reason(c, _metrics(accuracy=0.80, latency_ms=2.5, size_kb=50.0), dense_accuracy=0.90,
                               limits=[Limit("flash_kb", 1100.0, 1024.0, what="weights in flash"), Limit("sram_kb", 10.0, 320.0)],
                               device="mcu")
    parts = reason.split("; ")
    assert parts[0] == "refused by device mcu: flash_kb: weights in flash 1100.0 kB exceeds the device's 1024 kB"
    assert parts[1] == "accuracy drop 0.1 (dense fp32 0.9000, this trial 0.8000, measured) exceeds constraints.max_accuracy_drop 0.05"
    assert parts[2] == "latency_ms 2.5 ms (measured) exceeds constraints.latency_ms 2 ms"
    assert parts[3] == "energy_mj has no value on device mcu (no meter and no power figure), so constraints.energy_mj 1 mJ cannot hold"
    assert len(parts) == 4  # size_kb 50 <= 100 and SRAM 10 <= 320 hold: not named
    assert infeasible_reason(c, _metrics(accuracy=0.88, latency_ms=1.5, size_kb=50.0, energy_mj=0.5), 0.90) == ""


def _trial(latency: float, budget: float, reason: str | None) -> optuna.trial.FrozenTrial:
    metrics = {"accuracy": Metric(0.9, "", "measured", "FAKE").to_dict(), "latency_ms": Metric(latency, "ms", "measured", "FAKE").to_dict()}
    attrs = {"metrics": metrics, "sha256": "s"} | ({"infeasible_reason": reason} if reason is not None else {})
    t = optuna.trial.create_trial(values=[0.9, latency], user_attrs=attrs, constraints={"latency_ms": latency - budget})
    t.number = 0
    return t


def _entry(latency: float, budget: float, reason: str) -> dict:
    return {"sha256": "s", "metrics": {"latency_ms": Metric(latency, "ms", "measured", "FAKE confirmation").to_dict()},
            "constraints": {"latency_ms": latency - budget}, "infeasible_reason": reason}


def test_a_record_says_why_with_the_numbers_it_stands_by():
    over = "latency_ms 2 ms (measured) exceeds constraints.latency_ms 1.5 ms"
    assert record(_trial(2.0, 1.5, over)).infeasible_reason == over
    # the confirmation pass re-measured it within the budget: feasible, no reason left over
    rec = record(_trial(2.0, 1.5, over), {"0": _entry(1.2, 1.5, "")})
    assert rec.feasible and rec.infeasible_reason == "" and "infeasible_reason" not in rec.confirmation
    # the other way round: the pass's reason, not the search's (none)
    confirmed_over = "latency_ms 1.8 ms (measured) exceeds constraints.latency_ms 1.5 ms"
    assert record(_trial(1.2, 1.5, None), {"0": _entry(1.8, 1.5, confirmed_over)}).infeasible_reason == confirmed_over
    # a trial stored without a reason (an older run): its broken constraints by name
    assert record(_trial(2.0, 1.5, None)).infeasible_reason == "latency_ms exceeds its limit by 0.5"


def test_a_timing_profiler_says_it_times_and_a_cost_model_says_it_does_not():
    # every registered kind's flag is checked against its numbers in tests/profile/test_profiler_contract.py
    assert LocalProfiler.measures_time is True and ModelledProfiler.measures_time is False


class CountingBuild:
    """A FAKE around the confirmation pass's build: the real build, counted."""

    def __init__(self, fn) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture(scope="module")
def mcu_run(tiny_config, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcu-reasons")
    ctx = StudyContext.prepare(dataclasses.replace(tiny_config, device="cortex-m7"))
    names = [q.name for q in ctx.space.layers]
    dense = {bits: build(ctx, Plan({n: LayerPlan(bits=bits) for n in names})) for bits in (8, 32)}
    need = {bits: analyze(onnx.load_from_string(a.onnx_bytes)).constant_bytes / 1024 for bits, a in dense.items()}
    (tmp / "int8.onnx").write_bytes(dense[8].onnx_bytes)
    device = load_device_profile("cortex-m7")
    int8_ms = ModelledProfiler(device).measure(tmp / "int8.onnx").latency_ms.value
    flash, budget = (need[8] + need[32]) / 2, round(int8_ms * 0.9, 6)
    device = dataclasses.replace(device, target=dataclasses.replace(device.target, flash_kb=flash))
    device.save(tmp / "small-mcu.yaml")
    cfg = dataclasses.replace(
        tiny_config, name="mcu-reasons", device=str(tmp / "small-mcu.yaml"),
        constraints=dataclasses.replace(tiny_config.constraints, latency_ms=budget),
        search=dataclasses.replace(tiny_config.search, n_trials=3, baselines=("dense-fp32", "dense-int8", "uniform-0.25")),
    )
    incremental = {}

    def keep_incremental(study, out, objectives):  # the files the per-trial bookkeeping left, before the final rewrite
        incremental["trials.csv"] = (out / "trials.csv").read_text()
        return real_write_outputs(study, out, objectives)

    real_write_outputs = runner.write_outputs
    lines = []
    with pytest.MonkeyPatch.context() as mp:
        counting = CountingBuild(confirm.build)
        mp.setattr(confirm, "build", counting)
        mp.setattr(runner, "write_outputs", keep_incremental)
        result = run_study(cfg, tmp / "run", progress=False, log=lines.append)
    rows = {r["baseline"]: r for r in csv.DictReader((result.out_dir / "trials.csv").open())}
    return dict(result=result, rows=rows, need=need, flash=flash, budget=budget, device=device, confirm_builds=counting.calls,
                incremental=incremental, lines=lines)


def test_trials_csv_says_why_a_trial_is_infeasible(mcu_run):
    rows, device = mcu_run["rows"], mcu_run["device"]
    fp32, int8 = rows["dense-fp32"], rows["dense-int8"]
    assert fp32["feasible"] == "False" and int8["feasible"] == "False"
    # the device's refusal first, then the budget, each with the value and the limit
    assert fp32["infeasible_reason"].startswith(
        f"refused by device {device.name}: flash_kb: weights and constants in flash {mcu_run['need'][32]:.1f} kB "
        f"exceeds the device's {mcu_run['flash']:g} kB; latency_ms ")
    assert fp32["infeasible_reason"].endswith(f"(modelled) exceeds constraints.latency_ms {mcu_run['budget']:g} ms")
    # dense-int8 fits the flash: only its latency is over the budget
    assert int8["infeasible_reason"] == (f"latency_ms {float(int8['latency_ms']):.6g} ms (modelled) "
                                         f"exceeds constraints.latency_ms {mcu_run['budget']:g} ms")
    for row in rows.values():  # empty exactly when feasible
        assert (row["infeasible_reason"] == "") == (row["feasible"] == "True"), row


def test_the_per_trial_bookkeeping_writes_the_same_reasons(mcu_run):
    kept = mcu_run["incremental"]["trials.csv"]
    assert kept == (mcu_run["result"].out_dir / "trials.csv").read_text()
    rows = {r["baseline"]: r for r in csv.DictReader(kept.splitlines())}
    assert rows["dense-int8"]["infeasible_reason"] == mcu_run["rows"]["dense-int8"]["infeasible_reason"] != ""


def test_the_report_shows_the_reason(mcu_run):
    result = mcu_run["result"]
    run = json.loads((result.out_dir / "run.json").read_text())
    data = build_report_data(RunSource(result.out_dir, run, result.study))
    by_baseline = {p.baseline: p for p in data.trials}
    point = by_baseline["dense-int8"]
    assert point.infeasible_reason == mcu_run["rows"]["dense-int8"]["infeasible_reason"] != ""
    assert f"infeasible: {point.infeasible_reason}" in hover_text(point)
    assert all(p.infeasible_reason == "" for p in data.trials if p.feasible)
    assert data.to_dict()["trials"][data.trials.index(point)]["infeasible_reason"] == point.infeasible_reason  # the page's trial panel reads it
    confirmation = next(r for r in data.facts["Run"] if r["label"] == "confirmation pass")
    assert confirmation["value"].startswith("skipped: profiler kind 'mcu' computes its numbers (modelled)")


def test_a_modelled_study_confirms_nothing_and_says_why(mcu_run):
    result = mcu_run["result"]
    assert mcu_run["confirm_builds"] == 0  # skipped before rebuilding a single artifact
    front = json.loads((result.out_dir / "front.json").read_text())
    c = front["confirmation"]
    assert set(c) == {"settings", "started", "seconds", "passes", "complete", "failed", "skipped", "n_confirmed"}
    assert "profiler kind 'mcu' computes its numbers (modelled)" in c["skipped"] and "nothing was rebuilt" in c["skipped"]
    assert c["n_confirmed"] == 0 and c["passes"] == 0 and not any(p["confirmed"] for p in front["points"])
    assert sum("confirmation: skipped, profiler kind 'mcu'" in line for line in mcu_run["lines"]) == 1
    # stored, so that a resumed study does not try again
    assert result.study.user_attrs[CONFIRMATION_ATTR]["n_complete"] == len(records(result.study))


def test_the_bar_writes_the_reason_on_stderr_and_only_when_drawn(mcu_run, capsys):
    trial = next(t for t in mcu_run["result"].study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
                 if t.user_attrs.get("baseline") == "dense-int8")
    ProgressBar(1, 0, enabled=False)(None, trial)
    assert capsys.readouterr() == ("", "")  # --quiet and --json: stdout may carry JSON
    bar = ProgressBar(1, 0, enabled=True)
    bar(None, trial)
    bar.close()
    captured = capsys.readouterr()
    assert captured.out == "" and f"trial {trial.number} infeasible: latency_ms " in captured.err
