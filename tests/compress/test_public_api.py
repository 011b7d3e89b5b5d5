"""The public API ships what the study measured: ``autoprune.build`` rebuilds a trial's exact bytes."""

from __future__ import annotations

import dataclasses
import hashlib
import types

import pytest

import autoprune
from autoprune import tasks
from autoprune.compress import BuildSettings
from autoprune.config import StudyConfig
from autoprune.export import export_trial


@pytest.fixture(scope="module")
def front(tiny_run, tmp_path_factory):
    """Every front trial of the tiny study, exported: ``[(recorded sha256, plan.yaml path)]``."""
    out = tmp_path_factory.mktemp("public-api")
    trials = {t.number: t for t in tiny_run.study.trials}
    exported = []
    for p in tiny_run.front["points"]:
        r = export_trial(tiny_run.out_dir, out / f"t{p['number']}", trial=p["number"])
        exported.append((trials[p["number"]].user_attrs["sha256"], r.out_dir / "plan.yaml"))
    return exported


def _task_of(plan: autoprune.Plan):
    config = StudyConfig.from_dict(plan.meta["study_config"], "plan meta")
    task = tasks.get(config.task, **config.task_options)
    return config, task, task.model(), task.example_input()


def test_build_with_the_exported_plan_and_settings_writes_the_trials_bytes(front, tmp_path):
    for sha, path in front:
        plan = autoprune.Plan.load(path)
        config, task, model, x = _task_of(plan)
        out = tmp_path / "model.onnx"
        artifact = autoprune.build(model, plan, task, x, config.build, out=out)
        assert artifact.sha256 == sha
        assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
        assert (path.parent / "model.onnx").read_bytes() == out.read_bytes()


def test_an_exported_plan_alone_says_how_to_rebuild_it(front):
    """Settings, channel rounding and thread count default to what the plan's meta records."""
    for sha, path in front:
        plan = autoprune.Plan.load(path)
        _, task, model, x = _task_of(plan)
        assert autoprune.build(model, plan, task.train_data(), x).sha256 == sha  # (X, y) in place of the task


def test_the_settings_object_is_what_builds(tiny_run, tmp_path):
    """A pruned trial built with other settings gives other bytes: nothing is fixed behind the settings."""
    # the uniform-0.5 baseline: pruned, and in every study whatever its front (which timings decide)
    [trial] = [t for t in tiny_run.study.trials if t.user_attrs.get("baseline") == "uniform-0.5"]
    r = export_trial(tiny_run.out_dir, tmp_path / "uniform", trial=trial.number)
    sha, plan = trial.user_attrs["sha256"], autoprune.Plan.load(r.out_dir / "plan.yaml")
    assert any(lp.ratio for lp in plan.layers.values())
    config, task, model, x = _task_of(plan)
    other = dataclasses.replace(config.build, bn_batches=config.build.bn_batches + 1)
    assert autoprune.build(model, plan, task, x, other).sha256 != sha
    assert autoprune.build(model, plan, task, x, BuildSettings(**dataclasses.asdict(config.build))).sha256 == sha


def test_compress_is_the_subpackage_and_build_the_entry_point():
    assert isinstance(autoprune.compress, types.ModuleType) and not callable(autoprune.compress)
    from autoprune.compress.entry import build

    assert autoprune.build is build
    assert isinstance(autoprune.compress.build, types.ModuleType)  # the stages' module, not shadowed
    assert {"build", "BuildSettings", "Artifact"} <= set(dir(autoprune)) and "compress" not in autoprune.__all__


def test_fine_tuning_without_labels_is_refused():
    model, x = autoprune.zoo.build("mlp"), autoprune.zoo.example_input("mlp")
    X = autoprune.zoo.example_input("mlp", batch=16, seed=1).numpy()
    with pytest.raises(ValueError, match="finetune_steps needs labels"):
        autoprune.build(model, autoprune.Plan({}), X, x, BuildSettings(finetune_steps=1))
