"""Discovery runs within a time and memory budget: a model it cannot finish tracing fails fast with a clear error.

The slow models here spend their time in Python (sleeping in short steps, or hoarding
memory) inside their forward, which Torch-Pruning calls while it traces: the same place a
Torch-Pruning trace that grows without bound spends it (torchvision's Swin, checked by hand:
see the README). Budgets are tiny so that the tests stay short.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import autoprune
from autoprune import tasks
from autoprune.budget import DiscoveryBudget, resident_mb
from autoprune.config import StudyConfig, load_study_config
from autoprune.exceptions import ConfigError, DiscoveryBudgetError, DiscoveryError
from autoprune.study.context import StudyContext
from autoprune.tasks.base import Task


def _batched(x: torch.Tensor) -> None:
    """Torch-Pruning first calls ``model(*x)`` (one sample, no batch axis) inside a bare ``except:``; refuse it at once."""
    if x.dim() != 2:
        raise ValueError("expected a batch of vectors")


class SlowNet(nn.Module):
    """Two linears; each forward first sleeps ``seconds`` in 10 ms steps (Python between them)."""

    def __init__(self, seconds: float, swallow_s: float = 0.0) -> None:
        super().__init__()
        self.seconds, self.swallow_s = seconds, swallow_s
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _batched(x)
        end = time.monotonic() + self.swallow_s
        while time.monotonic() < end:
            try:  # a bare except, as Torch-Pruning's forward fallback has: it swallows the first interrupt
                time.sleep(0.01)
            except:  # noqa: E722
                pass
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            time.sleep(0.01)
        return self.fc2(torch.relu(self.fc1(x)))


class HoardingNet(nn.Module):
    """Each forward keeps ``mb`` more megabytes (written, so resident) before computing."""

    def __init__(self, mb: int) -> None:
        super().__init__()
        self.mb, self.hoard = mb, []
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _batched(x)
        for _ in range(self.mb):
            self.hoard.append(bytearray(b"\1") * (1 << 20))
            time.sleep(0.002)
        return self.fc2(torch.relu(self.fc1(x)))


X = torch.zeros(1, 16)


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _watchdogs() -> list[threading.Thread]:
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        alive = [t for t in threading.enumerate() if t.name == "autoprune-discovery-budget"]
        if not alive:
            return []
        time.sleep(0.02)
    return alive


def test_discovery_past_its_time_budget_raises_naming_the_model_and_the_setting():
    model = SlowNet(seconds=10.0)
    t0 = time.monotonic()
    with pytest.raises(DiscoveryBudgetError, match=r"^discover: SlowNet ran past its time budget of 0\.2 s in "
                                                   r".*set search\.discovery\.seconds in the study YAML \(or "
                                                   r"autoprune\.discover\(\.\.\., budget=autoprune\.DiscoveryBudget\(seconds=") as e:
        autoprune.discover(model, X, budget=DiscoveryBudget(seconds=0.2))
    assert time.monotonic() - t0 < 5.0  # interrupted in the first forward, not after it
    assert (e.value.model, e.value.resource, e.value.limit) == ("SlowNet", "seconds", 0.2) and e.value.used >= 0.2
    assert isinstance(e.value, DiscoveryError) and e.value.__context__ is None  # no traceback holds what the trace built
    assert "\n" not in str(e.value)
    assert _hooks(model) == 0, "the interrupted trace left Torch-Pruning's hooks on the model"
    assert _watchdogs() == []


def test_an_interrupt_swallowed_by_a_bare_except_is_raised_again():
    model = SlowNet(seconds=3.0, swallow_s=0.3)  # the first interrupt lands in the bare except
    with pytest.raises(DiscoveryBudgetError, match="time budget of 0.1 s"):
        autoprune.discover(model, X, budget=DiscoveryBudget(seconds=0.1))


@pytest.mark.skipif(resident_mb() is None, reason="resident memory is read from /proc (Linux)")
def test_discovery_past_its_memory_budget_raises_and_frees_nothing_of_the_users():
    model = HoardingNet(mb=400)
    with pytest.raises(DiscoveryBudgetError, match=r"^discover: HoardingNet ran past its memory budget of 50 MB .*"
                                                   r"search\.discovery\.memory_mb") as e:
        autoprune.discover(model, X, budget=DiscoveryBudget(seconds=None, memory_mb=50))
    assert e.value.resource == "memory_mb" and e.value.used > 50
    assert len(model.hoard) < 400  # stopped while hoarding, not after
    model.hoard.clear()
    assert _watchdogs() == []


def test_within_its_budget_discovery_finds_what_it_finds_without_one():
    model = SlowNet(seconds=0.0)
    budgeted = autoprune.discover(model, X, probe=True)  # the default budget
    assert budgeted == autoprune.discover(model, X, probe=True, budget=None)
    assert [g.name for g in budgeted.groups] == ["fc1"]
    assert _watchdogs() == []


@pytest.mark.parametrize("bad, message", [
    ({"seconds": 0}, r"search\.discovery\.seconds must be a number in \[1\.0, inf\], got 0"),
    ({"memory_mb": 10}, r"search\.discovery\.memory_mb must be a number in \[64\.0, inf\], got 10"),
    ({"minutes": 2}, r"unknown key search\.discovery\.minutes"),
])
def test_the_study_yaml_checks_the_budget(tmp_path, tiny_config, bad, message):
    data = tiny_config.to_dict()
    data["search"]["discovery"] = bad
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=rf"^{path}: {message}"):
        load_study_config(path)


def test_the_study_yaml_sets_the_budget_and_keeps_it(tiny_config):
    data = tiny_config.to_dict()
    assert "discovery" not in data["search"]  # at its default, not written: studies stored before it still resume
    data["search"]["discovery"] = {"seconds": None, "memory_mb": 4096}
    config = StudyConfig.from_dict(data, "study.yaml")
    assert config.search.discovery == DiscoveryBudget(seconds=None, memory_mb=4096.0)
    assert StudyConfig.from_dict(config.to_dict(), "again") == config


class SlowTask(Task):
    """A study task whose model sleeps 2 s in every forward."""

    name = "slow"

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        return SlowNet(seconds=2.0).eval()

    def example_input(self) -> torch.Tensor:
        return X

    def eval_data(self):
        rng = np.random.default_rng(0)
        return rng.standard_normal((8, 16)).astype(np.float32), rng.integers(0, 4, 8)

    def train_data(self):
        return self.eval_data()


def test_a_study_discovers_within_its_yaml_budget(tiny_config):
    """The study's own discovery (StudyContext.prepare) runs under ``search.discovery``."""
    tasks.register("slow", SlowTask)
    try:
        data = tiny_config.to_dict()
        data.update(task="slow", task_options={})
        data["search"]["discovery"] = {"seconds": 1}
        with pytest.raises(DiscoveryBudgetError, match=r"^discover: SlowNet ran past its time budget of 1 s"):
            StudyContext.prepare(StudyConfig.from_dict(data, "study.yaml"))
    finally:
        tasks.TASKS.pop("slow", None)
