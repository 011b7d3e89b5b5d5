"""The study configuration: one YAML file says what to compress, where, and how to search.

::

    version: 1
    name: quickstart
    task: digits                    # built-in name, or module.path:factory
    task_options: {}
    device: local-cpu               # name in device_profiles/ or a path
    objectives: [accuracy, latency_ms]
    constraints:
      max_accuracy_drop: 0.02       # vs dense fp32, absolute
      latency_ms: null              # budgets on measured metrics (<=)
      energy_mj: null
      size_kb: null
    search:
      n_trials: 48
      timeout_s: 540
      sampler: tpe                  # tpe | nsga2 | gp | random | module.path:factory
      seed: 0
      max_ratio: 0.75
      ratio_step: 0.05
      round_to: 8
      bits: [8, 32]                 # subset of the device's bits; default: all it supports
      exclude: []                   # module paths or re: patterns to leave alone
      baselines: [dense-fp32, dense-int8, uniform-0.25, uniform-0.5]   # also dense-int4, uniform-0.5-int2 ...
      sensitivity:                  # per-group analysis before the search (see below)
        enabled: true
        ratios: [0.25, 0.5, 0.75]   # ratios tried per group, plus max_ratio; snapped to ratio_step
        collapse: 0.1               # cap a group below its first ratio losing more accuracy than this; null: no caps
        rounds: 3                   # interleaved latency rounds over all the analysis's artifacts
        window_s: 0.15              # timed window per model and round
        bits: true                  # also each layer's accuracy cost in int8 (the ladder keeps costly ones fp32)
      ladder: 8                     # seeds from the curves for this many latency targets; 0: none
      mode: measure                 # measure | model (the calibrated cost model) | hybrid (see below)
      hybrid_margin: 0.1            # hybrid: measure a trial whose latency 10 % lower would reach the front
      screen: true                  # with a cost model: turn away a plan its untrained twin prices over budget
      discovery:                    # budget of tracing the model to find the search space (the probe aside)
        seconds: 300                # null: no time limit
        memory_mb: null             # resident memory it may add; null: half the memory available
    build:
      importance: magnitude         # magnitude | l1 | bn_scale | lamp | fpgm | module.path:factory
      bn_batches: 8
      finetune_steps: 0
      finetune_lr: 0.0003
      calibration_samples: 256
      calibration: minmax           # activation ranges: minmax | percentile (artifact and simulation)
      calibration_percentile: 99.99 # with percentile: % of values kept, half the rest cut at each end
      sparsity: none                # none | "unstructured:<ratio>" | "N:M" (quote it: "2:4")
      qat_steps: 0                  # QAT steps in the simulation of layers below 8 bits
      activation_bits: 8            # activations into layers below 8 bits (simulated): 2-16, null = float
    confirm:                        # after the search, re-measure the front (see below)
      rounds: 10                    # 0 turns the confirmation pass off
      min_duration_s: 0.25          # timed window per round; null: the device profile's
      margin: 0.1                   # also re-measure trials within 10 % of the front's costs
    storage: null                   # any Optuna storage URL; default sqlite in the run dir

What each section does is told where it is done: the confirmation pass in :mod:`autoprune.study.confirm`,
bit-widths below 8 (int8 stand-ins, simulated accuracy) in :mod:`autoprune.study.candidate`, the
sensitivity analysis and ladder in :mod:`autoprune.sensitivity` and :mod:`autoprune.ladder`, sparsity in
:mod:`autoprune.compress.sparsity`, ``search.mode`` in :mod:`autoprune.study.hybrid`, ``search.screen``
in :mod:`autoprune.study.screen`; the README's "YAML formats" says it for users.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from ._schema import Reader, load_yaml
from .compress.importance import IMPORTANCE
from .exceptions import ConfigError
from .metrics import metric_names
from .baselines import BASELINE_FORMS, BASELINE_RE, check_baseline_bits
from .budget import DiscoveryBudget
from .compress.settings import CALIBRATION_METHODS, BuildSettings, parse_setting
from .samplers import SAMPLERS

__all__ = ["StudyConfig", "SearchSettings", "SensitivitySettings", "Constraints", "ConfirmSettings", "load_study_config",
           "SAMPLERS", "BASELINE_RE"]

CONFIG_VERSION = 1
MODES = ("measure", "model", "hybrid")  # search.mode: where a trial's latency comes from
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class Constraints:
    """Feasibility limits; infeasible trials stay in the study but never reach the front.

    Besides ``max_accuracy_drop``, one ``<=`` budget per metric the table marks
    ``budget`` (:data:`autoprune.metrics.METRICS`; a test keeps the two in step).
    """

    max_accuracy_drop: float | None = None
    latency_ms: float | None = None
    energy_mj: float | None = None
    size_kb: float | None = None


@dataclasses.dataclass(frozen=True)
class SensitivitySettings:
    """The per-group sensitivity analysis before the search (see :mod:`autoprune.sensitivity`).

    Args:
        enabled: Run it when a study is created (``autoprune sensitivity`` runs it regardless).
        ratios: Pruning ratios tried per group, besides the group's ``max_ratio``; those above
            it are left out, the rest snapped to the ``ratio_step`` grid.
        collapse: Largest accuracy drop (absolute, only this group pruned) a group's cap may
            keep; None: no caps, curves only.
        rounds: Interleaved latency rounds.
        window_s: Timed window per model and round, in seconds.
        bits: Also measure each quantizable layer's accuracy cost in int8 (the unpruned model
            all int8, and with only that layer fp32), so the ladder keeps the layers whose
            int8 costs accuracy in fp32.
    """

    enabled: bool = True
    ratios: tuple[float, ...] = (0.25, 0.5, 0.75)
    collapse: float | None = 0.1
    rounds: int = 3
    window_s: float = 0.15
    bits: bool = True


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    n_trials: int = 48
    timeout_s: float | None = None
    sampler: str = "tpe"
    seed: int = 0
    max_ratio: float = 0.75
    ratio_step: float = 0.05
    round_to: int = 8
    bits: tuple[int, ...] | None = None
    exclude: tuple[str, ...] = ()
    baselines: tuple[str, ...] = ("dense-fp32", "dense-int8", "uniform-0.25", "uniform-0.5")
    sensitivity: SensitivitySettings = SensitivitySettings()
    ladder: int = 8
    mode: str = "measure"
    hybrid_margin: float = 0.1
    screen: bool = True
    discovery: DiscoveryBudget = DiscoveryBudget()


@dataclasses.dataclass(frozen=True)
class ConfirmSettings:
    """The confirmation pass after the search (``rounds: 0`` turns it off)."""

    rounds: int = 10
    min_duration_s: float | None = 0.25
    margin: float = 0.1


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """A validated study YAML. Build one with :func:`load_study_config` or :meth:`from_dict`."""

    name: str
    task: str = "digits"
    task_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    device: str = "local-cpu"
    objectives: tuple[str, ...] = ("accuracy", "latency_ms")
    constraints: Constraints = Constraints()
    search: SearchSettings = SearchSettings()
    build: BuildSettings = BuildSettings()
    confirm: ConfirmSettings = ConfirmSettings()
    storage: str | None = None
    version: int = CONFIG_VERSION
    path: str = dataclasses.field(default="", compare=False)

    @classmethod
    def from_dict(cls, data: dict, label: str = "<study config>") -> "StudyConfig":
        r = Reader(data, label)
        version = r.int("version", lo=1, hi=CONFIG_VERSION)
        name = r.str("name")
        if not _NAME_RE.match(name):
            raise r.fail("name", f"must be letters, digits, '.', '_' or '-', got {name!r}")
        task = r.str("task", "digits")
        task_options = r.raw("task_options", {})
        if not isinstance(task_options, dict):
            raise r.fail("task_options", "must be a mapping")
        device = r.str("device", "local-cpu")
        objectives = r.list("objectives", list(cls.objectives))
        if not objectives:
            raise r.fail("objectives", "must name at least one objective")
        known = metric_names(objective=True)
        for i, o in enumerate(objectives):
            if o not in known:
                raise r.fail(f"objectives[{i}]", f"must be one of {sorted(known)}, got {o!r}")
        if len(set(objectives)) != len(objectives):
            raise r.fail("objectives", f"lists an objective twice: {objectives}")

        c = r.sub("constraints")
        constraints = Constraints(
            max_accuracy_drop=c.float("max_accuracy_drop", None, lo=0.0, hi=1.0),
            **{name: c.float(name, None, lo=0.0) for name in metric_names(budget=True)},
        )
        c.finish()

        s = r.sub("search")
        bits = s.list("bits", None)
        if bits is not None:
            for i, b in enumerate(bits):
                if b not in (2, 3, 4, 5, 6, 7, 8, 16, 32):
                    raise s.fail(f"bits[{i}]", f"must be a bit-width in 2..8, 16 or 32, got {b!r}")
        exclude = s.list("exclude", [])
        for i, e in enumerate(exclude):
            if not isinstance(e, str) or not e:
                raise s.fail(f"exclude[{i}]", f"must be a module path or 're:' pattern, got {e!r}")
            if e.startswith("re:"):
                try:
                    re.compile(e[3:])
                except re.error as err:
                    raise s.fail(f"exclude[{i}]", f"is not a valid regular expression: {err}") from None
        baselines = s.list("baselines", list(SearchSettings.baselines))
        for i, b in enumerate(baselines):
            if not isinstance(b, str) or not BASELINE_RE.match(b):
                raise s.fail(f"baselines[{i}]", f"must be {BASELINE_FORMS}, got {b!r}")
        if bits is not None:
            check_baseline_bits(baselines, bits, label)  # without search.bits: StudyConfig.check_device
        search = SearchSettings(
            n_trials=s.int("n_trials", 48, lo=1, hi=100_000),
            timeout_s=s.float("timeout_s", None, lo=1.0),
            sampler=SAMPLERS.read(s, "sampler", "tpe"),
            seed=s.int("seed", 0, lo=0),
            max_ratio=s.float("max_ratio", 0.75, lo=0.0, hi=0.95),
            ratio_step=s.float("ratio_step", 0.05, lo=0.01, hi=0.5),
            round_to=s.int("round_to", 8, lo=1, hi=256),
            bits=tuple(bits) if bits is not None else None,
            exclude=tuple(exclude),
            baselines=tuple(baselines),
            sensitivity=_sensitivity(s),
            ladder=s.int("ladder", SearchSettings.ladder, lo=0, hi=1000),
            mode=s.str("mode", "measure", choices=MODES),
            hybrid_margin=s.float("hybrid_margin", SearchSettings.hybrid_margin, lo=0.0, hi=10.0),
            screen=s.bool("screen", SearchSettings.screen),
            discovery=_discovery(s),
        )
        if s.has("ladder") and search.ladder and not search.sensitivity.enabled:
            raise s.fail("ladder", "needs search.sensitivity.enabled: the seeds are allocated from its curves (set ladder: 0)")
        s.finish()

        b = r.sub("build")
        build = BuildSettings(
            importance=IMPORTANCE.read(b, "importance", "magnitude"),
            bn_batches=b.int("bn_batches", 8, lo=0, hi=10_000),
            finetune_steps=b.int("finetune_steps", 0, lo=0, hi=1_000_000),
            finetune_lr=b.float("finetune_lr", 3e-4, lo=0.0, hi=10.0),
            calibration_samples=b.int("calibration_samples", 256, lo=1, hi=1_000_000),
            seed=b.int("seed", 0, lo=0),
            sparsity=_sparsity(b),
            qat_steps=b.int("qat_steps", 0, lo=0, hi=1_000_000),
            activation_bits=None if b.has("activation_bits") and b.raw("activation_bits") is None
            else b.int("activation_bits", 8, lo=2, hi=16),
            calibration=b.str("calibration", "minmax", choices=CALIBRATION_METHODS),
            calibration_percentile=b.float("calibration_percentile", 99.99, lo=50.0, hi=100.0),
        )
        if build.qat_steps and build.sparsity != "none":
            raise b.fail("qat_steps", "must be 0 when build.sparsity is set: QAT would refill the zeroed weights")
        if b.has("calibration_percentile") and build.calibration != "percentile":
            raise b.fail("calibration_percentile", f"applies only with build.calibration: percentile (it is {build.calibration!r})")
        if bits is not None:
            _check_activation_bits(build, bits, "search.bits", None, label)
        b.finish()
        k = r.sub("confirm")
        default = ConfirmSettings()
        confirm = ConfirmSettings(
            rounds=k.int("rounds", default.rounds, lo=0, hi=1000),
            min_duration_s=None if k.has("min_duration_s") and k.raw("min_duration_s") is None
            else k.float("min_duration_s", default.min_duration_s, lo=0.0, hi=600.0),
            margin=k.float("margin", default.margin, lo=0.0, hi=10.0),
        )
        if confirm.rounds == 1:
            raise k.fail("rounds", "must be 0 (off) or at least 2: one round is one more noisy measurement")
        k.finish()
        storage = r.str("storage", None)
        r.finish()
        return cls(
            name=name, task=task, task_options=task_options, device=device, objectives=tuple(objectives),
            constraints=constraints, search=search, build=build, confirm=confirm, storage=storage, version=version, path=label,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("path")
        d["objectives"] = list(self.objectives)
        d["search"]["exclude"] = list(self.search.exclude)
        d["search"]["baselines"] = list(self.search.baselines)
        d["search"]["bits"] = list(self.search.bits) if self.search.bits else None
        d["search"]["sensitivity"]["ratios"] = list(self.search.sensitivity.ratios)
        for key, default in _BUILD_DEFAULTS_UNWRITTEN:  # written only when set, so that
            if d["build"][key] == default:  # studies run before these keys existed still resume
                del d["build"][key]
        for key, default in _SEARCH_DEFAULTS_UNWRITTEN:
            if d["search"][key] == default:
                del d["search"][key]
        return {"version": d.pop("version"), **d}

    def check_device(self, device) -> None:
        """The checks of bit-width options that need the device profile (when ``search.bits`` is unset).

        Args:
            device: The study's :class:`~autoprune.device.DeviceProfile` (``name``, ``bits``).

        Raises:
            ConfigError: a baseline below 8 bits, or ``build.activation_bits``, that the
                study's bit-widths (``search.bits``, else the device's) cannot take.
        """
        bits, source = (self.search.bits, "search.bits") if self.search.bits else (device.bits, f"device {device.name}")
        check_baseline_bits(self.search.baselines, bits, self.path, source)
        _check_activation_bits(self.build, bits, source, device, self.path)


# Build keys added after studies were first stored: left out of to_dict() at their defaults.
_BUILD_DEFAULTS_UNWRITTEN = (
    ("sparsity", "none"), ("qat_steps", 0),
    ("activation_bits", 8), ("calibration", "minmax"), ("calibration_percentile", 99.99),
)

# Search keys added later, likewise (a study stored before them compares equal at their defaults).
_SEARCH_DEFAULTS_UNWRITTEN = (
    ("sensitivity", dataclasses.asdict(SensitivitySettings()) | {"ratios": list(SensitivitySettings.ratios)}),
    ("ladder", SearchSettings.ladder),
    ("discovery", dataclasses.asdict(DiscoveryBudget())),
    ("screen", SearchSettings.screen),
)


def _sensitivity(s: Reader) -> SensitivitySettings:
    """``search.sensitivity``, checked; the defaults are :class:`SensitivitySettings`'."""
    k = s.sub("sensitivity")
    default = SensitivitySettings()
    ratios = k.list("ratios", list(default.ratios))
    if not ratios:
        raise k.fail("ratios", "must list at least one ratio")
    for i, v in enumerate(ratios):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v <= 0.95:
            raise k.fail(f"ratios[{i}]", f"must be a number in (0, 0.95], got {v!r}")
    settings = SensitivitySettings(
        enabled=k.bool("enabled", default.enabled),
        ratios=tuple(sorted({float(v) for v in ratios})),
        collapse=None if k.has("collapse") and k.raw("collapse") is None else k.float("collapse", default.collapse, lo=0.0, hi=1.0),
        rounds=k.int("rounds", default.rounds, lo=1, hi=100),
        window_s=k.float("window_s", default.window_s, lo=0.01, hi=60.0),
        bits=k.bool("bits", default.bits),
    )
    k.finish()
    return settings


def _discovery(s: Reader) -> DiscoveryBudget:
    """``search.discovery``, checked; null turns a limit off (memory: half the memory available)."""
    k = s.sub("discovery")
    default = DiscoveryBudget()
    budget = DiscoveryBudget(
        seconds=None if k.has("seconds") and k.raw("seconds") is None else k.float("seconds", default.seconds, lo=1.0),
        memory_mb=None if k.has("memory_mb") and k.raw("memory_mb") is None else k.float("memory_mb", default.memory_mb, lo=64.0),
    )
    k.finish()
    return budget


def _check_activation_bits(build: BuildSettings, bits, source: str, device, where: str) -> None:
    """``build.activation_bits`` other than 8 only where layers below 8 bits exist; below 8, only bits the device runs."""
    a = build.activation_bits
    if a == 8:
        return
    bits = sorted(set(bits))
    if not any(b < 8 for b in bits):
        raise ConfigError(
            f"{where}: build.activation_bits {a} applies only to layers below 8 bits (simulated), and the study's "
            f"bit-widths ({source}: {bits}) have none: leave it at 8, or search a bit-width in 2..7 on a device that runs it"
        )
    if device is not None and a is not None and a < 8 and a not in device.bits:
        raise ConfigError(
            f"{where}: build.activation_bits {a} is not a bit-width device {device.name} runs ({list(device.bits)}): "
            "use one of those below 8, 8 or more, or null (float activations)"
        )


def _sparsity(b: Reader) -> str:
    value = b.raw("sparsity", "none")
    try:
        parse_setting(value)
    except ConfigError as e:
        raise b.fail("sparsity", str(e)) from None
    return value


def load_study_config(path: str | os.PathLike) -> StudyConfig:
    """Load and validate a study YAML file.

    Raises:
        ConfigError: one line naming the file and the key path.
    """
    data, label = load_yaml(path, "study config")
    return StudyConfig.from_dict(data, label)
