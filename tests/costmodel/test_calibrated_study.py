"""Studies in ``search.mode`` model and hybrid on a really calibrated copy of local-cpu, and a study without calibration."""

from __future__ import annotations

import json

import optuna
import pytest

from autoprune.config import StudyConfig
from autoprune.costmodel.calibration import CalibrationError
from autoprune.study import run_study
from autoprune.study.records import CONFIRMATION_ATTR, records
from calibrated_kit import local_cpu_copy

COMPLETE = (optuna.trial.TrialState.COMPLETE,)


def _config(tiny_config, name: str, device, mode: str) -> StudyConfig:
    doc = tiny_config.to_dict()
    doc.update(name=name, device=str(device))
    doc["search"].update(n_trials=5, mode=mode, hybrid_margin=0.1)
    return StudyConfig.from_dict(doc, f"{name}.yaml")  # the YAML keys, as a user writes them


@pytest.fixture(scope="module")
def model_run(tiny_config, calibrated_profile, tmp_path_factory):
    return run_study(_config(tiny_config, "model", calibrated_profile, "model"), tmp_path_factory.mktemp("runs") / "model",
                     progress=False, log=lambda m: None)


@pytest.fixture(scope="module")
def hybrid_run(tiny_config, calibrated_profile, tmp_path_factory):
    return run_study(_config(tiny_config, "hybrid", calibrated_profile, "hybrid"), tmp_path_factory.mktemp("runs") / "hybrid",
                     progress=False, log=lambda m: None)


def test_a_model_study_predicts_every_latency_and_skips_confirmation(model_run, calibrated_profile):
    trials = model_run.study.get_trials(states=COMPLETE)
    assert len(trials) == 5
    for t in trials:
        m = t.user_attrs["metrics"]
        assert m["latency_ms"]["source"] == "modelled" and "predicted by the per-kernel linear cost model" in m["latency_ms"]["how"]
        assert m["accuracy"]["source"] == "measured"  # accuracy always comes from the artifact
        measurement = t.user_attrs["measurement"]
        assert measurement["settings"]["profiler"] == "calibrated"
        assert measurement["device"]["calibration"]["file"] == str(calibrated_profile.parent / "calibrations" / "local-cpu.json")
        assert measurement["device"]["prediction"]["latency_ms"] == pytest.approx(m["latency_ms"]["value"])
    doc = model_run.study.user_attrs[CONFIRMATION_ATTR]
    assert doc["skipped"] and not doc["trials"]
    front = json.loads((model_run.out_dir / "front.json").read_text())
    assert front["confirmation"]["skipped"] and front["confirmation"]["n_confirmed"] == 0
    assert all(p["metrics"]["latency_ms"]["source"] == "modelled" for p in front["points"])


def test_a_hybrid_study_measures_some_trials_says_why_and_confirms_the_front(hybrid_run):
    trials = hybrid_run.study.get_trials(states=COMPLETE)
    assert len(trials) == 5
    decided = {}
    for t in trials:
        h = t.user_attrs["measurement"]["device"]["hybrid"]
        assert h["decided"] in ("measured", "modelled") and h["why"] and all(isinstance(w, str) for w in h["why"])
        assert h["predicted_ms"] > 0 and h["margin"] == 0.1
        # the search's own number is what was decided: timed on the device, or the prediction
        assert t.user_attrs["metrics"]["latency_ms"]["source"] == h["decided"]
        decided[t.number] = h
    first = decided[min(decided)]
    assert first["decided"] == "measured"  # nothing to compare with yet: within any margin of an empty front
    assert any("of the front" in w or w.startswith("low confidence") for w in first["why"])
    doc = hybrid_run.study.user_attrs[CONFIRMATION_ATTR]
    assert doc["skipped"] is None and doc["complete"] and doc["trials"]
    on_front = {p["number"] for p in hybrid_run.front["points"]}
    recs = {r.number: r for r in records(hybrid_run.study)}
    for n in on_front:  # the confirmation pass re-measured every point of the front
        assert recs[n].confirmed and recs[n].metrics["latency_ms"]["source"] == "measured"


@pytest.mark.parametrize("mode", ["model", "hybrid"])
def test_a_mode_that_predicts_needs_the_profiles_calibration(tiny_config, tmp_path, mode):
    device = local_cpu_copy(tmp_path, "uncalibrated", None)
    out = tmp_path / "run"
    with pytest.raises(CalibrationError, match=f"^{device}: no calibration: key; run `autoprune calibrate --device {device}` first"):
        run_study(_config(tiny_config, "nocal", device, mode), out, progress=False, log=lambda m: None)
    assert not out.exists()  # refused before the study (or any trial) began


def test_a_calibration_of_other_settings_is_refused(tiny_config, calibrated_profile, tmp_path):
    """The calibrated file with a profile that runs 2 threads: timed on other settings, so refused by name."""
    (tmp_path / "calibrations").symlink_to(calibrated_profile.parent / "calibrations")
    device = local_cpu_copy(tmp_path, "local-cpu", "calibrations/local-cpu.json", threads=2)
    out = tmp_path / "run"
    with pytest.raises(CalibrationError, match="local-cpu.json: calibrated for another device: device.threads is 1 in the file, 2 here"):
        run_study(_config(tiny_config, "other", device, "model"), out, progress=False, log=lambda m: None)
    assert not out.exists()
