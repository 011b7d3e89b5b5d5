"""``autoprune calibrate`` as a user runs it: a real (short) calibration on a copy of local-cpu, and the refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autoprune.cli import main
from autoprune.cli.calibrate import set_calibration_key
from autoprune.costmodel.calibrate import device_facts
from autoprune.costmodel.calibrated import load_device_calibration
from autoprune.costmodel.kernels import BLOCK_CHOICES
from autoprune.device import PROFILE_DIRS, load_device_profile
from autoprune.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = next(d for d in PROFILE_DIRS if (d / "local-cpu.yaml").is_file())


def _copy(tmp_path: Path, name: str = "local-cpu") -> Path:
    profiles = tmp_path / "profiles"
    profiles.mkdir(exist_ok=True)
    path = profiles / f"{name}.yaml"
    path.write_text((SHIPPED / f"{name}.yaml").read_text())
    return path


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """One real calibration of a copy of local-cpu (0.3 minutes), through ``python -m autoprune``."""
    profile = _copy(tmp_path_factory.mktemp("cli"))
    before = profile.read_text()
    r = subprocess.run([sys.executable, "-m", "autoprune", "calibrate", "--device", str(profile), "--budget-minutes", "0.3",
                        "--seed", "3"], capture_output=True, text=True, cwd=ROOT, env=os.environ.copy(), timeout=300)
    return profile, before, r


def test_it_writes_the_calibration_and_the_profile_key_keeping_comments(calibrated):
    profile, before, r = calibrated
    assert r.returncode == 0, r.stderr
    written = profile.parent / "calibrations" / "local-cpu.json"
    assert written.is_file()
    text = profile.read_text()
    assert text == before + "calibration: calibrations/local-cpu.json\n"  # appended; every comment above kept
    assert "# No energy meter is readable here" in text
    device = load_device_profile(profile)
    assert device.calibration_path() == written.parent.parent / "calibrations" / "local-cpu.json"
    cal = load_device_calibration(device)  # this device's facts match the file's
    assert cal.device == device_facts(device) and cal.notes["seed"] == 3 and cal.notes["models"] >= 4
    # the vector blocks: every candidate pair fitted, the one with the lowest held-out error kept
    tried = cal.notes["heldout_mape_by_blocks"]
    assert len(tried) == len(BLOCK_CHOICES["fp32"]) * len(BLOCK_CHOICES["int8"])
    chosen = f"fp32 {cal.blocks['fp32'][0]}x{cal.blocks['fp32'][1]}, int8 {cal.blocks['int8'][0]}x{cal.blocks['int8'][1]}"
    assert tried[chosen] == min(tried.values())


def test_it_prints_progress_the_held_out_error_method_and_time(calibrated):
    profile, _, r = calibrated
    assert "calibrating local-cpu: building probe models" in r.stderr and "timing " in r.stderr
    out = r.stdout
    cal = load_device_calibration(load_device_profile(profile))
    h = cal.heldout
    assert f"held-out error: {int(h['n'])} models predicted by a fit without them" in out
    assert (f"MAPE {100 * h['mape']:.1f} %, {100 * h['within_10']:.1f} % within +/-10 %, "
            f"p90 absolute error {100 * h['p90_abs']:.1f} %") in out
    # beside it, the error of the measurements themselves: held-out models timed twice in the same rounds
    assert 1 <= h["repeat_n"] <= h["n"] and h["repeat_mape"] >= 0.0
    assert (f"the measurements' own repeatability: {int(h['repeat_n'])} of those models timed twice in the same rounds, "
            f"one fastest run against the other: MAPE {100 * h['repeat_mape']:.1f} %") in out
    assert f"the timings' own repeatability MAPE {h['repeat_mape']:.1%}" in cal.describe()
    assert "(latency: the fastest run over the rounds, the device undisturbed)" in out
    assert f"method: {cal.method} (" in out
    assert "time: " in out and "measured wall time" in out and "budget 0.3 min" in out
    assert f"calibration: {profile.parent / 'calibrations' / 'local-cpu.json'} (written;" in out


def test_an_existing_key_is_replaced_in_place_with_its_comment():
    text = "# mine\nversion: 1\ncalibration: old/cal.json   # from last week\nname: x\n"
    edited = set_calibration_key(text, "calibrations/x.json", "p.yaml")
    assert edited == "# mine\nversion: 1\ncalibration: calibrations/x.json   # from last week\nname: x\n"
    assert set_calibration_key("name: x", "a b.json", "p.yaml") == "name: x\ncalibration: a b.json\n"
    assert yaml.safe_load(set_calibration_key("name: x\n", "x: y.json", "p.yaml"))["calibration"] == "x: y.json"  # quoted


def test_a_key_the_line_edit_cannot_set_is_refused():
    with pytest.raises(ConfigError, match="p.yaml: cannot set calibration: by a line edit"):
        set_calibration_key("calibration: >\n  folded.json\nname: x\n", "new.json", "p.yaml")
    with pytest.raises(ConfigError, match="p.yaml: calibration: appears 2 times"):
        set_calibration_key("calibration: a.json\ncalibration: b.json\n", "new.json", "p.yaml")


@pytest.mark.parametrize("args, message", [
    (["--budget-minutes", "0"], "--budget-minutes must be > 0, got 0"),
    (["--budget-minutes", "-1"], "--budget-minutes must be > 0, got -1"),
    (["--rounds", "0"], "--rounds must be >= 1, got 0"),
    (["--leave-out", "cnn,vgg"], "--leave-out: unknown zoo family 'vgg' (known: cnn, "),
    (["--out", "{dir}"], "--out {dir}: is a directory"),
])
def test_bad_flags_are_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    profile = _copy(tmp_path)
    before = profile.read_text()
    args = [a.format(dir=tmp_path) for a in args]
    assert main(["calibrate", "--device", str(profile), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("autoprune calibrate: error: ") and message.format(dir=tmp_path) in err[0]
    assert profile.read_text() == before and not (profile.parent / "calibrations").exists()


def test_a_budget_too_small_to_fit_is_one_line_and_writes_nothing(tmp_path, capsys):
    profile = _copy(tmp_path)
    before = profile.read_text()
    assert main(["calibrate", "--device", str(profile), "--budget-minutes", "0.001"]) == 2  # one model is built
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"autoprune calibrate: error: calibrating local-cpu ({profile}): need at least 2 measured models")
    assert err[-1].endswith("give a larger --budget-minutes")
    assert profile.read_text() == before and not (profile.parent / "calibrations").exists()


def test_an_unknown_device_is_refused(capsys):
    assert main(["calibrate", "--device", "pdp-11"]) == 2
    assert "autoprune calibrate: error: unknown device profile 'pdp-11' (known: " in capsys.readouterr().err


@pytest.mark.parametrize("name, kind", [("bitserial-sim", "bitserial"), ("cortex-m7", "mcu")])
def test_a_modelled_target_has_nothing_to_calibrate(tmp_path, capsys, name, kind):
    profile = _copy(tmp_path, name)
    before = profile.read_text()
    assert main(["calibrate", "--device", str(profile)]) == 2
    err = capsys.readouterr().err
    assert f"{profile}: profiler kind '{kind}' is a modelled target" in err and "nothing to calibrate" in err
    assert profile.read_text() == before and not (profile.parent / "calibrations").exists()


def test_run_mode_overrides_the_study_and_needs_a_calibration(tmp_path, capsys, tiny_config):
    """``autoprune run --mode model`` on a profile without calibration: one line before anything is written."""
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({**tiny_config.to_dict(), "device": str(_copy(tmp_path))}))
    out = tmp_path / "run"
    assert main(["run", str(study), "--mode", "bogus", "--out", str(out)]) == 2
    assert "--mode must be one of measure, model, hybrid, got 'bogus'" in capsys.readouterr().err
    assert main(["run", str(study), "--mode", "model", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("autoprune run: error: ") and "no calibration: key; run `autoprune calibrate --device" in err[-1]
    assert not out.exists()


def test_repeatability_pairs_each_second_timing_with_its_first():
    from autoprune.costmodel.calibrate import REPEAT, repeatability

    timed = {"a": 1.0, f"a{REPEAT}": 1.05, "b": 2.0, f"b{REPEAT}": 2.5, "c": 3.0, f"gone{REPEAT}": 9.0}
    e = repeatability(timed)  # a: +5 %, b: +25 %; c was timed once, "gone" has no first timing
    assert e["n"] == 2 and e["mape"] == pytest.approx(0.15) and e["within_10"] == 0.5


def test_a_calibration_whose_repeated_timings_disagree_says_so():
    from autoprune.cli.calibrate import noise_note

    assert noise_note({"n": 400.0, "repeat_n": 100.0, "repeat_mape": 0.014, "repeat_within_10": 0.99}) is None
    assert noise_note({"n": 400.0, "mape": 0.06}) is None  # a file of before the repeats: nothing to say
    note = noise_note({"n": 400.0, "repeat_n": 100.0, "repeat_mape": 0.052, "repeat_within_10": 0.86})
    assert note.startswith("note: this machine's timings did not repeat (14.0 % of the models timed twice differ by more than 10 %)")
    assert note.endswith("calibrate again when it is quiet, or with more --rounds")


def test_the_fit_takes_each_models_timing_as_measured_in_one_pass(monkeypatch, tmp_path):
    """One timing pass of ROUNDS interleaved rounds, and each model's latency is its timing, unscaled (SYNTHETIC
    timings in place of the profiler's; version 7's first files scaled them by an anchor, since dropped)."""
    import autoprune.costmodel.calibrate as calibrate_module

    calls = []
    base = lambda name: 1.0 + 0.001 * len(name.removesuffix(calibrate_module.REPEAT))  # noqa: E731

    def fake_measure(device, paths, rounds, window):
        calls.append(rounds)
        return {k: base(k) for k in paths}

    monkeypatch.setattr(calibrate_module, "measure_models", fake_measure)
    run = calibrate_module.calibrate(load_device_profile("local-cpu"), 0.05, seed=1, workdir=tmp_path)
    assert calls == [calibrate_module.ROUNDS]
    assert len(run.measured_ms) >= 2
    assert all(v == base(k) for k, v in run.measured_ms.items())
