"""Sensitivity analysis: curves and caps on a model built to have one vital and one redundant group,
the study hook (stored, caps the space, ladder seeds after the baselines, resume reads it back),
and the ``autoprune sensitivity`` command."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml

from autoprune import zoo
from autoprune.compress import BuildSettings
from autoprune.config import SearchSettings, SensitivitySettings, StudyConfig
from autoprune.device import load_device_profile
from autoprune.profile import LocalProfiler
from autoprune.sensitivity import Sensitivity, analyse, apply_to_study, cap_from_curve, curve_ratios
from autoprune.space import discover
from autoprune.tasks.base import Task
from autoprune.tasks.digits import _split

ROOT = Path(__file__).resolve().parent.parent
CHEAP = SensitivitySettings(ratios=(0.25, 0.5, 0.75), collapse=0.1, rounds=1, window_s=0.01)


class RedundantMLPTask(Task):
    """Real digits data, a zoo MLP whose weights are SET BY HAND (not trained) so the answer is known.

    ``body.1`` (128 channels) carries the input: ``[Q; -Q] x`` for a random rotation ``Q``,
    so every channel holds a share of every pixel and pruning any of them loses signal.
    ``body.3`` (64 channels) computes a least-squares linear classifier in its first 10
    channels; the other 54 are all-zero (weights, bias and the head's inputs), so pruning up
    to 54/64 of it removes nothing the model uses.
    """

    name = "redundant-mlp"

    def __init__(self) -> None:
        super().__init__()
        Xtr, ytr, Xev, yev = _split()
        self._train, self._eval = (Xtr, ytr), (Xev, yev)
        A = np.c_[Xtr.reshape(len(Xtr), -1), np.ones(len(Xtr))].astype(np.float64)
        W, *_ = np.linalg.lstsq(A, np.eye(10)[ytr], rcond=None)
        Q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((64, 64)))
        m, shift = zoo.build("mlp", hidden=(128, 64)), 100.0  # shift keeps the logits above ReLU's 0
        M = W[:64].T @ Q.T
        w3, b3, head = np.zeros((64, 128)), np.zeros(64), np.zeros((10, 64))
        w3[:10], b3[:10], head[:, :10] = np.c_[M, -M], W[64] + shift, np.eye(10)
        t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        with torch.no_grad():
            m.body[1].weight.copy_(t(np.r_[Q, -Q]))
            m.body[1].bias.zero_()
            m.body[3].weight.copy_(t(w3))
            m.body[3].bias.copy_(t(b3))
            m.head.weight.copy_(t(head))
            m.head.bias.fill_(-shift)
        self._model = m.eval()

    def model(self):
        return self._model

    def example_input(self):
        return torch.zeros(1, 1, 8, 8)

    def eval_data(self):
        return self._eval

    def train_data(self):
        return self._train


def redundant_ctx(settings: SensitivitySettings = CHEAP):
    from autoprune.study.context import StudyContext

    task = RedundantMLPTask()
    config = StudyConfig(name="redundant", search=SearchSettings(round_to=8, sensitivity=settings), build=BuildSettings(bn_batches=0))
    space = discover(task.model(), task.example_input(), max_ratio=0.75, ratio_step=0.05, round_to=8, bits=(8, 32))
    X, y = task.eval_data()
    return StudyContext(config, task, task.model(), task.example_input(), load_device_profile("local-cpu"), space, X, y)


@pytest.fixture(scope="module")
def redundant():
    ctx = redundant_ctx()
    lines = []
    with LocalProfiler(ctx.device) as profiler:
        sens = analyse(ctx, profiler, log=lines.append)
    return ctx, sens, lines


def test_a_vital_group_is_capped_below_a_redundant_one(redundant):
    ctx, sens, _ = redundant
    vital, spare = sens.curve("body.1"), sens.curve("body.3")
    assert vital.ratios == spare.ratios == (0.0, 0.25, 0.5, 0.75)
    assert vital.accuracy[0] == spare.accuracy[0] == pytest.approx(0.9387, abs=1e-3)  # the hand-set classifier
    assert all(a == spare.accuracy[0] for a in spare.accuracy)  # only all-zero channels go
    assert spare.kept == (64, 48, 32, 16) and spare.cap == 0.75
    assert vital.drop()[-1] > 0.1  # a quarter of the rotated input left
    assert vital.cap < spare.cap
    assert vital.cap == cap_from_curve(vital.ratios, vital.accuracy, 0.1, 0.05, 0.75)
    capped = sens.cap_space(ctx.space)
    assert capped.group("body.1").max_ratio == vital.cap and capped.group("body.3").max_ratio == 0.75
    assert ctx.space.group("body.1").max_ratio == 0.75  # the original space is left as it was


def test_latency_is_measured_against_the_dense_int8_artifact(redundant):
    _, sens, lines = redundant
    spare = sens.curve("body.3")
    assert sens.dense_latency_ms > 0 and spare.latency_ms[0] == sens.dense_latency_ms
    assert all(v is not None and v > 0 for v in spare.latency_ms)
    assert spare.saved_ms[0] == 0 and all(isinstance(v, float) for v in spare.saved_ms)
    assert sens.latency_source == "measured" and "interleaved" in sens.latency_how and "dense int8" in sens.latency_how
    assert "adaptive-BN proxy" in sens.accuracy_how and "359-sample" in sens.accuracy_how
    assert set(sens.noise) == {"dense_round_cv", "median_round_cv", "max_round_cv"}
    assert sens.seconds["total"] >= sens.seconds["accuracy"] > 0
    assert any(line.startswith("sensitivity 2/2 body.3") for line in lines) and "capped: body.1" in lines[-1]


def test_stored_form_is_the_report_format_and_reads_back(redundant):
    _, sens, _ = redundant
    d = json.loads(json.dumps(sens.to_dict()))  # as a study user attribute stores it
    assert d["metric"] == "accuracy" and d["source"] == "measured"
    assert d["layers"]["body.1"]["ratio"] == [0.0, 0.25, 0.5, 0.75] and len(d["layers"]["body.1"]["value"]) == 4
    assert d["caps"] == sens.caps() and d["latency"]["dense_ms"] == sens.dense_latency_ms
    assert Sensitivity.from_dict(d) == sens
    # a report-only attribute (curves, no caps) reads as uncapped curves
    bare = Sensitivity.from_dict({"metric": "accuracy", "source": "measured", "layers": {"c": {"ratio": [0, 0.5], "value": [0.9, 0.8]}}})
    assert bare.caps() == {"c": 0.5} and bare.dense_latency_ms is None


@pytest.mark.parametrize(
    "accuracy, collapse, cap",
    [
        ((0.9, 0.9, 0.9, 0.9), 0.1, 0.75),     # never collapses: the group keeps max_ratio
        ((0.9, 0.85, 0.75, 0.3), 0.1, 0.25),   # 0.5 loses 0.15
        ((0.9, 0.5, 0.4, 0.3), 0.1, 0.05),     # the first ratio collapses: one ratio_step is left
        ((0.9, 0.89, 0.7, 0.88), 0.1, 0.25),   # the first collapse counts, not a later recovery
        ((0.9, 0.89, None, 0.88), 0.1, 0.25),  # a failed build counts as collapsed
        ((0.9, 0.5, 0.4, 0.3), None, 0.75),    # collapse null: no caps
    ],
)
def test_cap_from_curve(accuracy, collapse, cap):
    assert cap_from_curve((0.0, 0.25, 0.5, 0.75), accuracy, collapse, 0.05, 0.75) == cap


def test_curve_ratios_snap_to_the_grid_and_end_at_max_ratio():
    from autoprune.space import ChannelGroup

    g = ChannelGroup("c", "conv2d", 64, ("c",), 0.1, 0.6)
    assert curve_ratios(g, (0.25, 0.5, 0.75), 0.1) == (0.0, 0.2, 0.5, 0.6)  # 0.25 -> 0.2; 0.75 > max_ratio
    assert curve_ratios(g, (0.33,), 0.05) == (0.0, 0.35, 0.6)


def test_a_study_with_trials_but_no_analysis_keeps_its_space():
    ctx = redundant_ctx()
    study = optuna.create_study()
    study.enqueue_trial({})
    lines = []
    assert apply_to_study(study, ctx, profiler=None, log=lines.append) is None
    assert "not run" in lines[0] and ctx.space.group("body.1").max_ratio == 0.75


# -- the study hook, on the tiny real study ---------------------------------------------------

def sensitive_config(tiny_config, **search):
    """The tiny study with the analysis on: max_ratio 0.5, one ratio per group, a tight collapse so conv1 is capped."""
    search = {"n_trials": 7, "max_ratio": 0.5, "ladder": 2,
              "sensitivity": SensitivitySettings(ratios=(0.5,), collapse=0.02, rounds=2, window_s=0.05), **search}
    s = dataclasses.replace(tiny_config.search, **search)
    return dataclasses.replace(tiny_config, name="sensitive", search=s, confirm=dataclasses.replace(tiny_config.confirm, rounds=0))


@pytest.fixture(scope="module")
def sensitive_run(tmp_path_factory, tiny_config):
    from autoprune.study import run_study

    lines = []
    result = run_study(sensitive_config(tiny_config), tmp_path_factory.mktemp("sens") / "run", progress=False, log=lines.append)
    return result, lines


def test_the_study_stores_the_analysis_and_searches_the_capped_space(sensitive_run):
    result, lines = sensitive_run
    study = result.study
    sens = Sensitivity.from_dict(study.user_attrs["sensitivity"])
    caps = sens.caps()
    assert set(caps) == {g["name"] for g in study.user_attrs["space"]["groups"]}
    assert any(c < 0.5 for c in caps.values()), caps  # collapse 0.02 caps at least one group
    assert {g["name"]: g["max_ratio"] for g in study.user_attrs["space"]["groups"]} == caps  # the space it searches
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        for name, cap in caps.items():
            dist = t.distributions[f"ratio:{name}"]
            assert dist.high == pytest.approx(cap) and t.params[f"ratio:{name}"] <= cap + 1e-9
    assert any(line.startswith("sensitivity: done in") for line in lines)


def test_the_study_stores_each_layers_int8_cost_measured_on_the_artifact(sensitive_run):
    result, _ = sensitive_run
    study = result.study
    sens = Sensitivity.from_dict(study.user_attrs["sensitivity"])
    both = [q["name"] for q in study.user_attrs["space"]["layers"] if 8 in q["bits"] and 32 in q["bits"]]
    assert both and sorted(sens.bits) == sorted(both)
    dense_int8 = next(t for t in study.trials if t.user_attrs.get("baseline") == "dense-int8")
    for name, b in sens.bits.items():
        assert 0.0 <= b["fp32"] <= 1.0 and b["macs_share"] >= 0.0
        assert b["int8"] == pytest.approx(dense_int8.user_attrs["metrics"]["accuracy"]["value"])  # the same build, the same bytes
    assert "onnxruntime" in sens.bits_how and "only this layer kept fp32" in sens.bits_how
    ladder = study.user_attrs["sensitivity"]["ladder"]
    fp32 = set(sens.fp32_layers())
    assert all((s["params"].get(f"bits:{n}") == 32) == (n in fp32) for s in ladder for n in both)


def test_ladder_seeds_follow_the_baselines(sensitive_run):
    result, _ = sensitive_run
    trials = result.study.get_trials()
    baselines = [t.number for t in trials if t.user_attrs.get("baseline")]
    seeds = [t for t in trials if t.user_attrs.get("seed")]
    assert baselines == [0, 1, 2]
    assert 1 <= len(seeds) <= 2  # ladder: 2, of the 4 trials after the baselines
    assert [t.number for t in seeds] == list(range(3, 3 + len(seeds)))
    stored = result.study.user_attrs["sensitivity"]["ladder"]
    assert [t.user_attrs["seed"] for t in seeds] == [s["label"] for s in stored]
    for t, s in zip(seeds, stored):
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert t.params == pytest.approx(s["params"])
        assert t.user_attrs["predicted"]["latency_ms"]["source"] == "modelled"
    plans = [tuple(sorted(t.params.items())) for t in trials if t.user_attrs.get("seed") or t.user_attrs.get("baseline")]
    assert len(set(plans)) == len(plans)  # no seed repeats a baseline or another seed


def test_resume_reads_the_caps_back_and_never_reanalyses(sensitive_run, tiny_config, monkeypatch):
    import autoprune.sensitivity
    from autoprune.study import run_study

    result, _ = sensitive_run
    before = result.study.user_attrs["sensitivity"]

    def refuse(*args, **kwargs):
        raise AssertionError("the analysis ran again on resume")

    monkeypatch.setattr(autoprune.sensitivity, "analyse", refuse)
    again = run_study(sensitive_config(tiny_config, n_trials=8), result.out_dir, progress=False, log=lambda m: None)
    assert again.study.user_attrs["sensitivity"] == before
    last = again.study.get_trials()[-1]
    assert len(again.study.trials) == 8 and not last.user_attrs.get("seed")
    for name, cap in before["caps"].items():
        assert last.distributions[f"ratio:{name}"].high == pytest.approx(cap)
    changed = sensitive_config(tiny_config, n_trials=8, sensitivity=SensitivitySettings(ratios=(0.25,), collapse=0.02))
    from autoprune.exceptions import ConfigError

    with pytest.raises(ConfigError, match="search.sensitivity differs"):
        run_study(changed, result.out_dir, progress=False, log=lambda m: None)


# -- the command ------------------------------------------------------------------------------

def autoprune_cli(*args):
    return subprocess.run([sys.executable, "-m", "autoprune", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env=os.environ.copy(), timeout=600)


def test_cli_prints_the_table_and_writes_json(tmp_path, tiny_config):
    cfg = sensitive_config(tiny_config).to_dict()
    cfg["search"]["sensitivity"].update(rounds=1, window_s=0.02)
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(cfg))
    r = autoprune_cli("sensitivity", study, "--out", tmp_path / "sens.json")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "group" in out and "acc@0.5" in out and "saved@0.5" in out and "cap" in out
    assert "conv1" in out and "acc@r    measured: adaptive-BN proxy" in out and "saved@r  measured:" in out
    assert "cap      derived:" in out and "machine noise" in out
    assert "sensitivity 5/5 conv5" in r.stderr  # progress on stderr
    doc = json.loads((tmp_path / "sens.json").read_text())
    assert set(doc["layers"]) == {"conv1", "conv2", "conv3", "conv4", "conv5"} and doc["device"] == "local-cpu"
    assert Sensitivity.from_dict(doc).caps() == doc["caps"]


@pytest.mark.parametrize(
    "search, args, message",
    [
        ({"sensitivity": {"rounds": 0}}, [], "study.yaml: search.sensitivity.rounds must be an integer in [1, 100], got 0"),
        ({"sensitivity": {"ratios": [0.5, 1.5]}}, [], "study.yaml: search.sensitivity.ratios[1] must be a number in (0, 0.95], got 1.5"),
        ({"sensitivity": {"enabled": False}, "ladder": 3}, [], "study.yaml: search.ladder needs search.sensitivity.enabled"),
        ({}, ["--out", "no/such/dir/sens.json"], "--out no/such/dir/sens.json: directory"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, tiny_config, search, args, message, capsys, monkeypatch):
    from autoprune.cli import main

    cfg = tiny_config.to_dict()
    cfg["search"] = {**cfg["search"], **search}
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    assert main(["sensitivity", str(study), *args]) == 2  # in-process: the same code path as the command, faster
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autoprune sensitivity: error:") and message in lines[0], err


def test_cli_missing_file_and_help(tmp_path):
    r = autoprune_cli("sensitivity", tmp_path / "absent.yaml")
    assert r.returncode == 2 and r.stderr.strip() == f"autoprune sensitivity: error: {tmp_path / 'absent.yaml'}: study config not found"
    r = autoprune_cli("sensitivity", "--help")
    assert r.returncode == 0 and "usage: autoprune sensitivity" in r.stdout and "--json" in r.stdout


def test_each_saving_is_paired_with_the_dense_timings_next_to_it():
    from autoprune.profile.paired import paired_savings as _paired_savings, with_references as _with_references

    models = {"dense": Path("d.onnx"), **{("g", k): Path(f"{k}.onnx") for k in range(6)}}
    order = list(_with_references(models))
    assert [k[0] for k in order] == ["dense", *["pruned"] * 4, "dense", "pruned", "pruned", "dense"]
    # every artifact saves 1 ms of 10; the machine runs at half speed from the second dense timing on
    medians = {k: [10.0, 10.0] for k in order if k[0] == "dense"}
    medians[order[5]] = [20.0, 20.0]
    medians[order[8]] = [20.0, 20.0]
    for i, k in enumerate(order):
        if k[0] == "pruned":
            medians[k] = [9.0, 9.0] if i < 5 else [19.0, 19.0]
    saved = _paired_savings(order, medians)
    assert saved[("g", 4)] == pytest.approx(1.0) and saved[("g", 5)] == pytest.approx(1.0)  # after the change: exact
    assert saved[("g", 0)] == pytest.approx(6.0)  # the block it happened around: off by half the change, not more
    # against one dense mean for all (16.7 ms), every saving after the change would be -2.3 ms
