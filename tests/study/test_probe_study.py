"""A study probes its search space: a group whose pruning breaks the task's model is never offered to a trial."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from autoprune import tasks
from autoprune.study.context import StudyContext
from autoprune.tasks.base import Task

from broken_models import FixedView

warnings.filterwarnings("ignore")


class FixedViewTask(Task):
    """Digits-shaped random data and an untrained CNN whose second conv feeds a fixed reshape."""

    name = "fixed-view"

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                             FixedView(32), nn.Linear(32, 10)).eval()

    def example_input(self) -> torch.Tensor:
        return torch.zeros(1, 1, 7, 7)  # 7x7: a fixed view of fewer channels cannot divide the elements

    def eval_data(self):
        rng = np.random.default_rng(0)
        return rng.standard_normal((16, 1, 7, 7)).astype(np.float32), rng.integers(0, 10, 16)

    def train_data(self):
        return self.eval_data()


@pytest.fixture
def fixed_view_config(tiny_config):
    tasks.register("fixed-view", FixedViewTask)
    yield dataclasses.replace(tiny_config, task="fixed-view", task_options={})
    tasks.TASKS.pop("fixed-view", None)


def test_the_study_space_leaves_out_the_group_that_breaks_the_model_with_the_reason(fixed_view_config):
    space = StudyContext.prepare(fixed_view_config).space
    assert [g.name for g in space.groups] == ["0"]
    (why,) = [e.reason for e in space.excluded if e.name == "2" and e.what == "prune"]
    assert "(found by the discovery probe): its forward fails in module '4' (FixedView)" in why
