"""The small CNN the kernel and energy tests read (exported fp32 and int8 as a study builds it), and a calibrated local-cpu."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import autoprune
from autoprune.costmodel.calibrate import calibrate
from autoprune.device import load_device_profile
from autoprune.space import discover
from calibrated_kit import local_cpu_copy


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[int, str]:
    """The same small CNN (conv-BN-ReLU, depthwise, pool, linear) exported fp32 and int8, as a study builds them."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                              nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()
    x = torch.zeros(1, 16, 14, 14)
    space = discover(model, x, round_to=1)
    X = np.random.default_rng(0).standard_normal((16, 16, 14, 14)).astype(np.float32)
    out = tmp_path_factory.mktemp("kernels")
    paths = {}
    for bits in (32, 8):
        paths[bits] = str(out / f"cnn-b{bits}.onnx")
        autoprune.to_onnx(model, space.plan_from_params(space.params_for(0.0, bits)), x, paths[bits], X, space=space)
    return paths


@pytest.fixture(scope="session")
def calibrated_profile(tmp_path_factory):
    """A copy of local-cpu whose calibration: names one real, short (0.3 minutes) calibration of it."""
    directory = tmp_path_factory.mktemp("device")
    path = local_cpu_copy(directory, "local-cpu", "calibrations/local-cpu.json")
    calibrate(load_device_profile(path), 0.3, seed=1).calibration.save(directory / "calibrations" / "local-cpu.json")
    return path
