"""The study as a whole: :class:`StudyConfig`, its top-level keys, ``constraints`` and ``confirm``.

The format is told in :mod:`autoprune.config`; ``search`` is read in :mod:`autoprune.config.search`,
``build`` in :mod:`autoprune.config.build`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from .._schema import Reader, load_yaml
from ..baselines import check_baseline_bits
from ..compress.settings import BuildSettings
from ..metrics import metric_names
from .build import BUILD_DEFAULTS_UNWRITTEN, check_activation_bits, read_build
from .search import SEARCH_DEFAULTS_UNWRITTEN, SearchSettings, read_search

__all__ = ["StudyConfig", "Constraints", "ConfirmSettings", "load_study_config", "CONFIG_VERSION"]

CONFIG_VERSION = 1
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

        search = read_search(r.sub("search"), label)
        build = read_build(r.sub("build"), search.bits, label)
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
        for key, default in BUILD_DEFAULTS_UNWRITTEN:  # written only when set, so that
            if d["build"][key] == default:  # studies run before these keys existed still resume
                del d["build"][key]
        for key, default in SEARCH_DEFAULTS_UNWRITTEN:
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
        check_activation_bits(self.build, bits, source, device, self.path)


def load_study_config(path: str | os.PathLike) -> StudyConfig:
    """Load and validate a study YAML file.

    Raises:
        ConfigError: one line naming the file and the key path.
    """
    data, label = load_yaml(path, "study config")
    return StudyConfig.from_dict(data, label)
