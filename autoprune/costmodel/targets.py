"""Modelled targets: a graph's latency, energy and hard limits on a device nobody has at hand.

A device profile whose ``profiler.kind`` is ``bitserial`` or ``mcu`` has a ``target:``
section with the model's parameters, each figure's source and which figures are assumptions::

    target:
      clock_mhz: 250
      bit_lanes: 4096
      ...
      sources: ["Horowitz, ISSCC 2014 ..."]
      assumptions: ["clock_mhz and bit_lanes: ..."]

:class:`BitSerialTarget`: a MAC of ``w``-bit weights and ``a``-bit activations takes
``w x a`` one-bit steps (AND + popcount-accumulate, as Stripes/Bit Fusion-style designs),
so latency and compute energy scale with ``w x a``; energies per operation are published
45 nm figures (Horowitz, ISSCC 2014) with the 8-bit multiply-add spread over its 64 bit pairs.
:class:`MicrocontrollerTarget`: MACs per cycle per kernel kind at a clock (CMSIS-NN), flash
holding every constant and SRAM the peak activation memory: hard limits.

Light on purpose (no onnx): loading a device profile reads these classes.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from .._schema import Reader
from ..device import Limit

if TYPE_CHECKING:
    from .graph import GraphCost

__all__ = ["Estimate", "BitSerialTarget", "MicrocontrollerTarget", "TARGETS", "read_target"]

_KB = 1024.0


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What a target model says of one graph.

    Attributes:
        latency_ms: Modelled latency of one inference.
        energy_mj: Modelled energy of one inference.
        latency_how: How the latency was computed (model and sources).
        energy_how: How the energy was computed.
        limits: The device's hard limits against what the graph needs of them.
        detail: The model's intermediate figures (cycles, bit-operations, bytes).
    """

    latency_ms: float
    energy_mj: float
    latency_how: str
    energy_how: str
    limits: tuple[Limit, ...] = ()
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)


def _texts(r: Reader, name: str) -> tuple[str, ...]:
    values = r.list(name)
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise r.fail(name, "must be a non-empty list of non-empty strings (where each figure comes from)")
    return tuple(values)


@dataclasses.dataclass(frozen=True)
class BitSerialTarget:
    """A bit-serial accelerator: latency and MAC energy scale with weight bits x activation bits.

    Args:
        clock_mhz: Clock of the array.
        bit_lanes: One-bit x one-bit MAC steps the array does per cycle.
        elementwise_per_cycle: Elements per cycle of the other work (pooling, activations, adds).
        add8_pj: Energy of an 8-bit integer add.
        mult8_pj: Energy of an 8-bit integer multiply.
        sram_read32_pj: Energy of a 32-bit read from an 8 KB SRAM (activations in and out).
        dram32_pj: Energy of a 32-bit DRAM access (weights, read once per inference).
        sources: Where the figures come from.
        assumptions: Which figures are assumptions, and why.
    """

    KIND: ClassVar[str] = "bitserial"
    clock_mhz: float
    bit_lanes: int
    elementwise_per_cycle: float
    add8_pj: float
    mult8_pj: float
    sram_read32_pj: float
    dram32_pj: float
    sources: tuple[str, ...]
    assumptions: tuple[str, ...]

    @classmethod
    def read(cls, r: Reader) -> "BitSerialTarget":
        e = r.sub("energy_pj", default_empty=False)
        target = cls(
            clock_mhz=r.float("clock_mhz", lo=1e-3, hi=1e5),
            bit_lanes=r.int("bit_lanes", lo=1, hi=10**9),
            elementwise_per_cycle=r.float("elementwise_per_cycle", lo=1e-3, hi=1e9),
            add8_pj=e.float("add8", lo=0.0, hi=1e6),
            mult8_pj=e.float("mult8", lo=0.0, hi=1e6),
            sram_read32_pj=e.float("sram_read32", lo=0.0, hi=1e6),
            dram32_pj=e.float("dram32", lo=0.0, hi=1e6),
            sources=_texts(r, "sources"),
            assumptions=_texts(r, "assumptions"),
        )
        e.finish()
        return target

    def to_dict(self) -> dict[str, Any]:
        return {
            "clock_mhz": self.clock_mhz, "bit_lanes": self.bit_lanes, "elementwise_per_cycle": self.elementwise_per_cycle,
            "energy_pj": {"add8": self.add8_pj, "mult8": self.mult8_pj, "sram_read32": self.sram_read32_pj, "dram32": self.dram32_pj},
            "sources": list(self.sources), "assumptions": list(self.assumptions),
        }

    def bit_ops(self, graph: "GraphCost") -> int:
        """One-bit MAC steps of the graph: each MAC costs weight bits x activation bits (a MatMul of two activations: a x a)."""
        return sum(n.macs * n.weight_bits * n.act_bits if n.weight_bits else n.macs * n.act_bits * n.act_bits for n in graph.nodes)

    def estimate(self, graph: "GraphCost") -> Estimate:
        bit_ops = self.bit_ops(graph)
        elementwise = sum(n.output_elements for n in graph.nodes if n.kind == "elementwise")
        cycles = bit_ops / self.bit_lanes + elementwise / self.elementwise_per_cycle
        latency_ms = cycles / (self.clock_mhz * 1e3)
        # The 8-bit multiply and add spread over the 64 bit pairs of an 8 x 8 MAC.
        mac_pj = bit_ops * (self.mult8_pj + self.add8_pj) / 64
        other_pj = sum(n.output_elements * self.add8_pj * n.output_bits / 8 for n in graph.nodes if n.kind == "elementwise")
        weight_bits = sum(b * 8 for b in graph.weight_bytes_by_bits.values())
        dram_pj = weight_bits / 32 * self.dram32_pj
        act_bits = sum(n.input_elements * n.act_bits + n.output_elements * n.output_bits for n in graph.nodes)
        sram_pj = act_bits / 32 * self.sram_read32_pj
        energy_mj = (mac_pj + other_pj + dram_pj + sram_pj) * 1e-9
        cited = "; ".join(self.sources)
        latency_how = (f"bit-serial model: {graph.macs:,} MACs as {bit_ops:,} one-bit steps (weight bits x activation bits each) "
                       f"on {self.bit_lanes} lanes + {elementwise:,} elementwise outputs at {self.elementwise_per_cycle:g}/cycle, "
                       f"{self.clock_mhz:g} MHz (assumed, see the device profile); batch {graph.batch_size}; sources: {cited}")
        energy_how = (f"bit-serial model: MACs at ({self.mult8_pj:g} + {self.add8_pj:g}) pJ / 64 per one-bit step, weights once from DRAM "
                      f"at {self.dram32_pj:g} pJ / 32 bits, activations through SRAM at {self.sram_read32_pj:g} pJ / 32 bits; sources: {cited}")
        detail = {"bit_ops": bit_ops, "cycles": cycles, "energy_pj": {"mac": mac_pj, "elementwise": other_pj, "dram": dram_pj, "sram": sram_pj}}
        return Estimate(latency_ms, energy_mj, latency_how, energy_how, (), detail)


@dataclasses.dataclass(frozen=True)
class MicrocontrollerTarget:
    """A Cortex-M class microcontroller running CMSIS-NN style int8 kernels.

    Args:
        clock_mhz: Core clock.
        flash_kb: Flash for the model's weights and other constants (hard limit).
        sram_kb: SRAM for the peak activation memory (hard limit).
        macs_per_cycle: int8 MACs per cycle by kernel kind: ``conv``, ``depthwise``,
            ``dense``, ``matmul``; ``float`` for layers above 8 bits (fp32 on the FPU).
        elementwise_cycles: Cycles per output element of the other work (pooling, activations, adds).
        active_mw: Power while running, for energy = power x modelled latency.
        sources: Where the figures come from.
        assumptions: Which figures are assumptions, and why.
    """

    KIND: ClassVar[str] = "mcu"
    KERNELS: ClassVar[tuple[str, ...]] = ("conv", "depthwise", "dense", "matmul", "float")
    clock_mhz: float
    flash_kb: float
    sram_kb: float
    macs_per_cycle: dict[str, float]
    elementwise_cycles: float
    active_mw: float
    sources: tuple[str, ...]
    assumptions: tuple[str, ...]

    @classmethod
    def read(cls, r: Reader) -> "MicrocontrollerTarget":
        m = r.sub("macs_per_cycle", default_empty=False)
        rates = {k: m.float(k, lo=1e-6, hi=1e3) for k in cls.KERNELS}
        m.finish()
        return cls(
            clock_mhz=r.float("clock_mhz", lo=1e-3, hi=1e5),
            flash_kb=r.float("flash_kb", lo=0.0, hi=1e9),
            sram_kb=r.float("sram_kb", lo=0.0, hi=1e9),
            macs_per_cycle=rates,
            elementwise_cycles=r.float("elementwise_cycles", lo=0.0, hi=1e6),
            active_mw=r.float("active_mw", lo=0.0, hi=1e6),
            sources=_texts(r, "sources"),
            assumptions=_texts(r, "assumptions"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "clock_mhz": self.clock_mhz, "flash_kb": self.flash_kb, "sram_kb": self.sram_kb,
            "macs_per_cycle": dict(self.macs_per_cycle), "elementwise_cycles": self.elementwise_cycles,
            "active_mw": self.active_mw, "sources": list(self.sources), "assumptions": list(self.assumptions),
        }

    def limits(self, graph: "GraphCost") -> tuple[Limit, Limit]:
        """Flash against every constant the model stores, SRAM against its peak activation memory."""
        return (
            Limit("flash_kb", graph.constant_bytes / _KB, self.flash_kb, "kB", "weights and constants in flash"),
            Limit("sram_kb", graph.peak_activation_bytes / _KB, self.sram_kb, "kB",
                  f"peak activation memory in SRAM (at node {graph.peak_node or '-'})"),
        )

    def estimate(self, graph: "GraphCost") -> Estimate:
        cycles_by_kind: dict[str, float] = {}
        for n in graph.nodes:
            if n.kind == "elementwise":
                kind, cycles = "elementwise", n.output_elements * self.elementwise_cycles
            else:  # CMSIS-NN kernels are int8; wider layers run in float
                kind = n.kind if n.weight_bits <= 8 and n.act_bits <= 8 else "float"
                cycles = n.macs / self.macs_per_cycle[kind]
            cycles_by_kind[kind] = cycles_by_kind.get(kind, 0.0) + cycles
        cycles = sum(cycles_by_kind.values())
        latency_ms = cycles / (self.clock_mhz * 1e3)
        energy_mj = self.active_mw * latency_ms / 1e3  # mW x ms = uJ
        rates = ", ".join(f"{k} {v:g}" for k, v in self.macs_per_cycle.items())
        cited = "; ".join(self.sources)
        latency_how = (f"microcontroller model: {graph.macs:,} MACs at MACs/cycle by kernel ({rates}) + "
                       f"{self.elementwise_cycles:g} cycles per elementwise output, {self.clock_mhz:g} MHz; "
                       f"batch {graph.batch_size}; sources: {cited}")
        energy_how = (f"microcontroller model: {self.active_mw:g} mW active power (assumed, see the device profile) x modelled latency; "
                      f"sources: {cited}")
        detail = {"cycles": cycles, "cycles_by_kind": cycles_by_kind}
        return Estimate(latency_ms, energy_mj, latency_how, energy_how, self.limits(graph), detail)


TARGETS: dict[str, type] = {t.KIND: t for t in (BitSerialTarget, MicrocontrollerTarget)}


def read_target(r: Reader, kind: str) -> BitSerialTarget | MicrocontrollerTarget:
    """The device profile's ``target:`` section for profiler kind ``kind``, validated.

    Args:
        r: The device profile's top-level reader.
        kind: Its ``profiler.kind``.

    Raises:
        ConfigError: ``kind`` is not a modelled kind, or the section or a key in it is missing,
            unknown or out of range (the message names the file and the key path).
    """
    if kind not in TARGETS:
        raise r.fail("target", f"is read only for the modelled profiler kinds {sorted(TARGETS)}, not {kind!r}")
    section = r.sub("target", default_empty=False)
    target = TARGETS[kind].read(section)
    section.finish()
    return target
