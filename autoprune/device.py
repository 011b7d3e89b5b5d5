"""Device profiles: where and how a candidate is measured, and what the target can run.

A device profile is a versioned YAML file in ``device_profiles/``::

    version: 1
    name: local-cpu
    description: this machine's CPU through onnxruntime
    profiler:            # how latency is measured
      kind: local        # local | agent | bitserial | mcu | module.path:factory (see PROFILERS)
      threads: 1
      warmup: 20
      repetitions: 200
      min_duration_s: 0.0
      execution_provider: CPUExecutionProvider
    bits: [8, 32]        # bit-widths the target runs natively
    power:
      watts: 15.0        # used for the energy estimate when no meter exists
      source: "..."      # where the figure comes from

``calibration: calibrations/local-cpu.json`` (relative to the profile) names the device's
calibrated cost model, written by ``autoprune calibrate`` (:mod:`autoprune.costmodel.calibrate`);
a study in ``search.mode: model`` or ``hybrid`` predicts latency with it.

An ``agent:`` section (urls, token source, timeouts) is read when ``profiler.kind`` is
``agent``; see :mod:`autoprune.profile`. The modelled kinds ``bitserial`` and ``mcu`` compute
latency and energy from the artifact's graph instead of timing it, with the parameters (and
their sources) in a ``target:`` section; see :mod:`autoprune.costmodel.targets`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from ._schema import Reader, atomic_write_text, load_yaml
from .exceptions import ConfigError
from .registry import Registry

__all__ = ["DeviceProfile", "ProfilerSettings", "AgentSettings", "Limit", "load_device_profile", "PROFILE_DIRS", "PROFILERS"]

PROFILE_VERSION = 1
SUPPORTED_BITS = (2, 3, 4, 5, 6, 7, 8, 16, 32)

# Profiler kinds: ``factory(device: DeviceProfile) -> Profiler``. Declared here, not beside
# the interface in autoprune.profile, because loading a device profile checks
# ``profiler.kind`` against it and must not import onnxruntime; autoprune.profile re-exports it.
PROFILERS = Registry("profiler.kind", "profiler kind", returns="autoprune.profile.base:Profiler")
PROFILERS.register("local", "autoprune.profile.local:LocalProfiler")
PROFILERS.register("agent", "autoprune.profile.agent:AgentProfiler")
# Modelled targets: latency and energy computed from the graph, parameters in ``target:``.
PROFILERS.register("bitserial", "autoprune.costmodel.profiler:ModelledProfiler")
PROFILERS.register("mcu", "autoprune.costmodel.profiler:ModelledProfiler")

# Where a profile given by name is looked for, in order.
PROFILE_DIRS = (
    Path(os.environ.get("AUTOPRUNE_DEVICE_PROFILES", "device_profiles")),
    Path(__file__).resolve().parent.parent / "device_profiles",
)


@dataclasses.dataclass(frozen=True)
class ProfilerSettings:
    """How a latency measurement is taken."""

    kind: str = "local"
    threads: int = 1
    warmup: int = 20
    repetitions: int = 200
    min_duration_s: float = 0.0
    execution_provider: str = "CPUExecutionProvider"
    batch_size: int = 1


@dataclasses.dataclass(frozen=True)
class AgentSettings:
    """How to reach on-device profiling agents (one URL per identical device)."""

    urls: tuple[str, ...]
    token_env: str | None = None
    token_file: str | None = None
    timeout_s: float = 120.0
    retries: int = 3
    backoff_s: float = 0.5


@dataclasses.dataclass(frozen=True)
class Limit:
    """A hard limit of the device: how much of a resource a model needs against what the device has.

    Args:
        name: The resource, as a constraint name (``flash_kb``, ``sram_kb``).
        needed: What the model needs.
        capacity: What the device has.
        unit: Unit of both.
        what: What is held there, for the reason (``"weights and constants in flash"``).
    """

    name: str
    needed: float
    capacity: float
    unit: str = "kB"
    what: str = ""

    @property
    def excess(self) -> float:
        """``needed - capacity``: the model fits when it is <= 0 (Optuna's constraint convention)."""
        return self.needed - self.capacity

    def reason(self) -> str:
        """One line, e.g. ``"flash_kb: weights and constants in flash 1100.2 kB exceeds the device's 1024 kB"``."""
        verdict = "exceeds" if self.excess > 0 else "fits in"
        return f"{self.name}: {self.what or self.name} {self.needed:.1f} {self.unit} {verdict} the device's {self.capacity:g} {self.unit}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DeviceProfile:
    """A target device: how to measure on it, which bit-widths it runs, its power figure."""

    name: str
    description: str = ""
    profiler: ProfilerSettings = ProfilerSettings()
    bits: tuple[int, ...] = (8, 32)
    power_watts: float | None = None
    power_source: str = ""
    energy_model: Any = None  # power.model: per-op and per-byte energies for a modelled latency (autoprune.costmodel.energy)
    agent: AgentSettings | None = None
    target: Any = None  # a modelled target's parameters (autoprune.costmodel.targets), for kinds bitserial and mcu
    calibration: str | None = None  # the cost model's calibration file (autoprune calibrate), relative to this file
    version: int = PROFILE_VERSION
    path: str = dataclasses.field(default="", compare=False)

    @classmethod
    def from_dict(cls, data: dict, label: str = "<device profile>") -> "DeviceProfile":
        r = Reader(data, label)
        version = r.int("version", lo=1, hi=PROFILE_VERSION)
        name = r.str("name")
        description = r.raw("description", "")
        p = r.sub("profiler")
        profiler = ProfilerSettings(
            kind=PROFILERS.read(p, "kind", "local"),
            threads=p.int("threads", 1, lo=1, hi=256),
            warmup=p.int("warmup", 20, lo=0, hi=100_000),
            repetitions=p.int("repetitions", 200, lo=1, hi=1_000_000),
            min_duration_s=p.float("min_duration_s", 0.0, lo=0.0, hi=600.0),
            execution_provider=p.str("execution_provider", "CPUExecutionProvider"),
            batch_size=p.int("batch_size", 1, lo=1, hi=65536),
        )
        p.finish()
        bits = r.list("bits", [8, 32])
        for i, b in enumerate(bits):
            if b not in SUPPORTED_BITS:
                raise r.fail(f"bits[{i}]", f"must be one of {list(SUPPORTED_BITS)}, got {b!r}")
        if 32 not in bits:
            raise r.fail("bits", "must include 32 (the unquantized reference)")
        pw = r.sub("power")
        watts = pw.float("watts", None, lo=0.0, hi=10_000.0)
        source = pw.raw("source", "")
        energy_model = None
        if pw.has("model"):
            from .costmodel.energy import EnergyModel  # light: no onnx

            section = pw.sub("model", default_empty=False)
            energy_model = EnergyModel.read(section)
            section.finish()
        pw.finish()
        agent = None
        if r.has("agent") or profiler.kind == "agent":
            a = r.sub("agent")
            urls = a.list("urls")
            if not urls or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
                raise a.fail("urls", f"must be a non-empty list of http(s):// URLs, got {urls!r}")
            if a.has("token"):
                raise a.fail("token", "must not hold the token itself: name token_env or token_file instead")
            agent = AgentSettings(
                urls=tuple(urls),
                token_env=a.str("token_env", None),
                token_file=a.str("token_file", None),
                timeout_s=a.float("timeout_s", 120.0, lo=0.1, hi=3600.0),
                retries=a.int("retries", 3, lo=0, hi=100),
                backoff_s=a.float("backoff_s", 0.5, lo=0.0, hi=60.0),
            )
            a.finish()
        # Light; imported here because it imports Limit from this module.
        from .costmodel.targets import TARGETS, read_target

        target = read_target(r, profiler.kind) if r.has("target") or profiler.kind in TARGETS else None
        calibration = r.str("calibration", None)
        r.finish()
        return cls(
            name=name,
            description=str(description or ""),
            profiler=profiler,
            bits=tuple(sorted(set(bits))),
            power_watts=watts,
            power_source=str(source or ""),
            energy_model=energy_model,
            agent=agent,
            target=target,
            calibration=calibration,
            version=version,
            path=label,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version,
            "name": self.name,
            "description": self.description,
            "profiler": dataclasses.asdict(self.profiler),
            "bits": list(self.bits),
            "power": {"watts": self.power_watts, "source": self.power_source},
        }
        if self.energy_model is not None:
            d["power"]["model"] = self.energy_model.to_dict()
        if self.agent is not None:
            a = dataclasses.asdict(self.agent)
            a["urls"] = list(a["urls"])
            d["agent"] = {k: v for k, v in a.items() if v is not None}
        if self.target is not None:
            d["target"] = self.target.to_dict()
        if self.calibration is not None:
            d["calibration"] = self.calibration
        return d

    def calibration_path(self) -> Path | None:
        """The calibration file, resolved against the profile's own directory (None when the profile names none)."""
        if self.calibration is None:
            return None
        p = Path(os.path.expanduser(self.calibration))
        base = Path(self.path).parent if self.path and not self.path.startswith("<") else Path(".")
        return p if p.is_absolute() else base / p

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def load_device_profile(name_or_path: str | os.PathLike | DeviceProfile) -> DeviceProfile:
    """Load a device profile given as an object, a YAML path, or a name in ``device_profiles/``."""
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    s = str(name_or_path)
    candidates = [Path(s)] if s.endswith((".yaml", ".yml")) or os.sep in s else [d / f"{s}.yaml" for d in PROFILE_DIRS]
    for c in candidates:
        if c.is_file():
            data, label = load_yaml(c, "device profile")
            return DeviceProfile.from_dict(data, label)
    known = sorted({p.stem for d in PROFILE_DIRS if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(f"unknown device profile {s!r} (known: {', '.join(known) or 'none'})")
