"""The ``search:`` section of a study YAML: what the sampler searches and how.

:class:`SearchSettings` with its nested :class:`SensitivitySettings` and
:class:`~autoprune.budget.DiscoveryBudget`, and :func:`read_search`, which checks the section.
"""

from __future__ import annotations

import dataclasses
import re

from .._schema import Reader
from ..baselines import BASELINE_FORMS, BASELINE_RE, check_baseline_bits
from ..budget import DiscoveryBudget
from ..device import SUPPORTED_BITS
from ..samplers import SAMPLERS

__all__ = ["MODES", "SearchSettings", "SensitivitySettings", "read_search"]

MODES = ("measure", "model", "hybrid")  # search.mode: where a trial's latency comes from


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


# Search keys added after studies were first stored: left out of StudyConfig.to_dict() at their
# defaults (a study stored before them compares equal).
SEARCH_DEFAULTS_UNWRITTEN = (
    ("sensitivity", dataclasses.asdict(SensitivitySettings()) | {"ratios": list(SensitivitySettings.ratios)}),
    ("ladder", SearchSettings.ladder),
    ("discovery", dataclasses.asdict(DiscoveryBudget())),
    ("screen", SearchSettings.screen),
)


def read_search(s: Reader, label: str) -> SearchSettings:
    """The ``search`` section, checked (``s.finish()`` included); defaults are :class:`SearchSettings`'.

    Raises:
        ConfigError: one line naming the file and the key path.
    """
    bits = s.list("bits", None)
    if bits is not None:
        for i, b in enumerate(bits):
            if b not in SUPPORTED_BITS:
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
    return search


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
