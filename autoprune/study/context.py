"""Everything a trial needs, prepared once per study (never per trial, never as global state).

A worker builds its :class:`StudyContext` from the study config alone, so several
processes (or machines, over a shared Optuna storage) can work on one study.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
from typing import Any

import numpy as np
import onnx
import onnxruntime
import optuna
import torch
import torch_pruning

from .. import __version__, tasks
from ..compress.importance import IMPORTANCE
from ..config import StudyConfig
from ..device import DeviceProfile, load_device_profile
from ..exceptions import ConfigError
from ..samplers import SAMPLERS
from ..space import SearchSpace, discover

__all__ = ["StudyContext", "versions", "model_fingerprint", "cpu_facts"]


def cpu_facts() -> dict[str, str]:
    """This machine's CPU as the local profiler records it: model name and vector extension (a VM's model
    name can be the same for CPUs of different vector widths, which time onnxruntime's kernels differently)."""
    from ..profile.local import host_info

    host = host_info()
    return {"cpu": str(host["cpu"]), "vector_isa": str(host["vector_isa"])}


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the model's state (names, shapes, values): identifies the base model a plan applies to."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def versions() -> dict[str, str]:
    return {
        "autoprune": __version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "torch_pruning": getattr(torch_pruning, "__version__", "unknown"),
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "optuna": optuna.__version__,
        "numpy": np.__version__,
    }


@dataclasses.dataclass
class StudyContext:
    """The task, its dense model, the device and the search space of one study."""

    config: StudyConfig
    task: tasks.Task
    model: torch.nn.Module
    example_input: torch.Tensor
    device: DeviceProfile
    space: SearchSpace
    eval_X: np.ndarray
    eval_y: np.ndarray
    build_threads: int | None = None  # torch threads for builds (see autoprune.threads); None: as they are

    @classmethod
    def prepare(cls, config: StudyConfig, device: DeviceProfile | None = None) -> "StudyContext":
        """Load the device and task, check the bits, discover the space.

        Bit-widths are those the device profile lists (the target's); ones onnxruntime cannot
        run here (2-7) are built as int8 stand-ins and simulated (see :mod:`autoprune.study.candidate`).

        Raises:
            ConfigError: unknown device or task, or search.bits the device does not run.
        """
        device = device or load_device_profile(config.device)
        bits = config.search.bits or device.bits
        unsupported = sorted(set(bits) - set(device.bits))
        if unsupported:
            raise ConfigError(
                f"{config.path}: search.bits {unsupported} are not run by device {device.name} (it runs {list(device.bits)})"
            )
        task = tasks.get(config.task, **config.task_options)
        SAMPLERS.check(config.search.sampler, config.path, load=True)  # a user's module:factory fails
        IMPORTANCE.check(config.build.importance, config.path, load=True)  # here, before a file or trial
        model = task.model().eval()
        x = task.example_input()
        s = config.search
        # probe: groups whose pruning breaks the model are left out before any trial, with the reason
        space = discover(model, x, max_ratio=s.max_ratio, ratio_step=s.ratio_step, round_to=s.round_to, bits=bits,
                         exclude=s.exclude, probe=True, budget=s.discovery)
        X, y = task.eval_data()
        return cls(config, task, model, x, device, space, X, y)

    def facts(self) -> dict[str, Any]:
        """What the study records about itself (stored as study user attributes)."""
        return {
            "config": self.config.to_dict(),
            "device": self.device.to_dict(),
            "task": self.task.spec(),
            "base_model_fingerprint": model_fingerprint(self.model),
            "build_threads": self.build_threads if self.build_threads is not None else torch.get_num_threads(),
            "space": self.space.summary(),
            "versions": versions(),
            "worker": cpu_facts(),  # a joining worker with a local profiler must match it
        }
