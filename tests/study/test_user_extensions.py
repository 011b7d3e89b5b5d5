"""A user's own sampler and importance criterion, named as ``module.path:factory`` in the study YAML, run a real study."""

from __future__ import annotations

import sys

import optuna
import pytest
import yaml

from autoprune.config import load_study_config
from autoprune.exceptions import ConfigError
from autoprune.study import run_study

USER_MODULE = '''
import optuna
import torch

CALLS = []


class MidpointSampler(optuna.samplers.RandomSampler):
    """Every ratio at the grid point nearest its range's middle, every bit-width the first choice."""

    def sample_independent(self, study, trial, name, dist):
        return midpoint(dist)


def midpoint(dist):
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return dist.choices[0]
    return dist.low + dist.step * round((dist.high - dist.low) / 2 / dist.step)


def make_sampler(search):
    return MidpointSampler(seed=search.seed)


def make_importance():
    def last_channels_first(group):  # records each call, then ranks channels by reversed index
        n = group[0].dep.target.module.out_channels
        CALLS.append(n)
        return torch.arange(float(n)).flip(0)

    return last_channels_first
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    name = "user_study_ext"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def _config(tmp_path, tiny_config, **changes):
    data = tiny_config.to_dict()
    data["name"] = "user-ext"
    data["search"].update(n_trials=3, baselines=["dense-fp32"], ladder=0)
    data["confirm"]["rounds"] = 0
    for section, values in changes.items():
        data[section].update(values)
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(data))
    return load_study_config(p)


def test_users_sampler_and_importance_drive_the_study(tmp_path, tiny_config, user_module):
    config = _config(tmp_path, tiny_config, search={"sampler": f"{user_module}:make_sampler"},
                     build={"importance": f"{user_module}:make_importance"})
    result = run_study(config, tmp_path / "run", progress=False, log=lambda m: None)
    user = sys.modules[user_module]
    sampled = [t for t in result.study.trials if not t.user_attrs.get("baseline")]
    assert len(sampled) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in sampled)
    for t in sampled:  # every parameter is the one the user's sampler proposes
        assert t.params == {name: user.midpoint(dist) for name, dist in t.distributions.items()}
        assert any(v > 0 for k, v in t.params.items() if k.startswith("ratio:"))
    assert user.CALLS, "the user's criterion never ranked a channel"


def test_a_users_reference_that_does_not_import_fails_before_anything_is_written(tmp_path, tiny_config):
    config = _config(tmp_path, tiny_config, build={"importance": "no_such_user_module:make"})
    with pytest.raises(ConfigError, match=r"study.yaml: build.importance: importance criterion 'no_such_user_module:make' cannot be imported"):
        run_study(config, tmp_path / "nothing", progress=False, log=lambda m: None)
    assert not (tmp_path / "nothing").exists()
