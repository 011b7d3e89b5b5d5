"""NVIDIA NVML: the GPU's total-energy counter (Volta and newer), read through ``pynvml``."""

from __future__ import annotations

from typing import Any

from .base import CounterMeter, MeterUnavailable

__all__ = ["NvmlMeter"]


class NvmlMeter(CounterMeter):
    """Sums ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load) over the GPUs.

    Args:
        indices: GPU indices to read; None reads every GPU NVML sees.
    """

    name = "nvml"

    def __init__(self, indices: list[int] | None = None) -> None:
        super().__init__()
        self.indices = indices
        self._handles: list[Any] | None = None
        self._nvml: Any = None

    def _open(self) -> list[Any]:
        if self._handles is None:
            try:
                import pynvml
            except ImportError:
                raise MeterUnavailable("nvml: pynvml is not installed (pip install nvidia-ml-py)") from None
            try:
                pynvml.nvmlInit()
                count = pynvml.nvmlDeviceGetCount()
                idx = self.indices if self.indices is not None else list(range(count))
                handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in idx]
                for h in handles:  # raises NVMLError_NotSupported before Volta
                    pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
            except pynvml.NVMLError as e:
                raise MeterUnavailable(f"nvml: {e}") from None
            if not handles:
                raise MeterUnavailable("nvml: no GPU found")
            self._nvml, self._handles = pynvml, handles
        return self._handles

    def read(self) -> list[float]:
        handles = self._open()
        return [self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) * 1e-3 for h in handles]

    def max_joules(self) -> list[float | None]:
        return [None] * len(self._open())  # a 64-bit mJ counter: it does not wrap

    def describe(self) -> dict[str, Any]:
        handles = self._open()
        names = [self._nvml.nvmlDeviceGetName(h) for h in handles]
        return {**super().describe(), "gpus": [n.decode() if isinstance(n, bytes) else str(n) for n in names]}
