"""Energy where no meter exists: the core's power over the modelled latency, plus per-op and per-byte costs.

A device profile may give ``power.model`` — what one inference's energy is made of::

    power:
      watts: 15.0                 # measured latency x watts: `estimated` energy (no meter)
      model:                      # a modelled latency's energy: `modelled`
        core_watts: 13.5          # the core beside its data path (clock, fetch, decode, leakage)
        mac_pj: {fp32: 4.6, int8: 0.23}
        byte_pj: {cache: 12.5, dram: 160.0}
        cache_mb: 32              # weights that fit here are read from cache, others from DRAM
        sources: ["Horowitz, ISSCC 2014 ..."]
        assumptions: ["core_watts ..."]

Energy of one inference = ``core_watts`` x latency + MACs x ``mac_pj`` (int8 kernels at
``int8``, the others at ``fp32``) + activations read and written x ``byte_pj.cache`` +
weights x ``byte_pj.cache`` or ``byte_pj.dram`` (whether all the model's weights fit in
``cache_mb``). So an int8 plan and an fp32 plan of the same latency differ in energy, and a
plan that moves fewer bytes costs less, which watts x latency cannot tell. The figures and
their sources live in the profile; every number is labelled ``modelled``.

Light (no onnx): loading a device profile reads :class:`EnergyModel`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

from .._schema import Reader
from .targets import _texts

if TYPE_CHECKING:
    from .kernels import Kernel

__all__ = ["EnergyModel", "EnergyEstimate"]


@dataclasses.dataclass(frozen=True)
class EnergyEstimate:
    """A modelled energy and its parts (millijoules)."""

    energy_mj: float
    parts_mj: dict[str, float]
    how: str


@dataclasses.dataclass(frozen=True)
class EnergyModel:
    """Per-op and per-byte energies of a device, beside its core's power (see the module's docstring).

    Args:
        core_watts: Power of the core beside its data path, over the latency.
        mac_pj: Energy of one multiply-accumulate: ``fp32`` and ``int8``.
        byte_pj: Energy of moving one byte: ``cache`` and ``dram``.
        cache_mb: Weights up to this size stay in cache between inferences.
        sources: Where the figures come from.
        assumptions: Which figures are assumptions, and why.
    """

    core_watts: float
    mac_pj: dict[str, float]
    byte_pj: dict[str, float]
    cache_mb: float
    sources: tuple[str, ...]
    assumptions: tuple[str, ...]

    @classmethod
    def read(cls, r: Reader) -> "EnergyModel":
        """``power.model`` of a device profile, validated (the error names the file and key)."""
        mac, byte = r.sub("mac_pj", default_empty=False), r.sub("byte_pj", default_empty=False)
        model = cls(
            core_watts=r.float("core_watts", lo=0.0, hi=10_000.0),
            mac_pj={k: mac.float(k, lo=0.0, hi=1e6) for k in ("fp32", "int8")},
            byte_pj={k: byte.float(k, lo=0.0, hi=1e6) for k in ("cache", "dram")},
            cache_mb=r.float("cache_mb", lo=0.0, hi=1e6),
            sources=_texts(r, "sources"),
            assumptions=_texts(r, "assumptions"),
        )
        mac.finish()
        byte.finish()
        return model

    def to_dict(self) -> dict[str, Any]:
        return {"core_watts": self.core_watts, "mac_pj": dict(self.mac_pj), "byte_pj": dict(self.byte_pj),
                "cache_mb": self.cache_mb, "sources": list(self.sources), "assumptions": list(self.assumptions)}

    def estimate(self, latency_ms: float, kernels: Sequence["Kernel"]) -> EnergyEstimate:
        """Energy of one inference that runs ``kernels`` in ``latency_ms`` (W x ms = mJ; pJ x 1e-9 = mJ)."""
        macs = {"fp32": 0.0, "int8": 0.0}
        act_mb = weight_mb = 0.0
        for k in kernels:
            macs[k.precision] += k.features[1] * 1e6
            act_mb += k.act_mb
            weight_mb += k.weight_mb
        weights_at = "cache" if weight_mb <= self.cache_mb else "dram"
        parts = {
            "core": self.core_watts * latency_ms,
            "mac_fp32": macs["fp32"] * self.mac_pj["fp32"] * 1e-9,
            "mac_int8": macs["int8"] * self.mac_pj["int8"] * 1e-9,
            "activations": act_mb * 1e6 * self.byte_pj["cache"] * 1e-9,
            "weights": weight_mb * 1e6 * self.byte_pj[weights_at] * 1e-9,
        }
        how = (f"modelled: {self.core_watts:g} W core power x the modelled latency + {macs['fp32'] / 1e6:.3g} fp32 MMACs at "
               f"{self.mac_pj['fp32']:g} pJ and {macs['int8'] / 1e6:.3g} int8 MMACs at {self.mac_pj['int8']:g} pJ + "
               f"{act_mb:.3g} MB of activations at {self.byte_pj['cache']:g} pJ/B + {weight_mb:.3g} MB of weights from "
               f"{weights_at} at {self.byte_pj[weights_at]:g} pJ/B (device profile power.model; sources: {'; '.join(self.sources)})")
        return EnergyEstimate(sum(parts.values()), parts, how)
