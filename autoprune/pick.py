"""``--pick`` expressions: choose one trial by an objective under constraints.

Grammar::

    (max|min) METRIC [where METRIC OP NUMBER (and METRIC OP NUMBER)*]     OP: <= < >= > ==

e.g. ``max accuracy where latency_ms <= 0.5 and size_kb < 800``.

``test_accuracy`` (accuracy on the task's test split, reported on confirmed trials) is refused:
choosing by it would make the test split a second validation split. Pick on ``accuracy``.

:func:`select_trial` applies one to a run's trials; it reads the run only (no torch).
"""

from __future__ import annotations

import dataclasses
import operator
import re

import optuna

from .exceptions import ConfigError
from .metrics import METRICS, metric_names
from .study.records import TrialRecord, records

__all__ = ["Pick", "parse_pick", "select_trial"]

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_COND = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def _check_metric(text: str, name: str) -> None:
    if name in METRICS and not METRICS[name].selectable:
        raise ConfigError(f"--pick {text!r}: selecting on the test split ({name}) is not allowed; "
                          "pick on accuracy (the validation split the search selected on)")
    if name not in METRICS:
        raise ConfigError(f"--pick {text!r}: unknown metric {name!r} (known: {', '.join(metric_names(selectable=True))})")


@dataclasses.dataclass(frozen=True)
class Pick:
    direction: str  # "max" or "min"
    metric: str
    conditions: tuple[tuple[str, str, float], ...]

    def admits(self, values: dict[str, float]) -> bool:
        return all(m in values and _OPS[op](values[m], v) for m, op, v in self.conditions)

    def key(self, values: dict[str, float]) -> float:
        return values[self.metric] if self.direction == "max" else -values[self.metric]


def parse_pick(text: str) -> Pick:
    """Parse a pick expression.

    Raises:
        ConfigError: naming ``--pick`` and what is wrong.
    """
    head, _, tail = text.strip().partition(" where ")
    words = head.split()
    if len(words) != 2 or words[0] not in ("max", "min"):
        raise ConfigError(f"--pick {text!r}: must start with 'max METRIC' or 'min METRIC'")
    _check_metric(text, words[1])
    conditions = []
    if tail.strip():
        for part in re.split(r"\s+and\s+", tail.strip()):
            m = _COND.match(part)
            if not m:
                raise ConfigError(f"--pick {text!r}: cannot read condition {part!r} (expected e.g. 'latency_ms <= 0.5')")
            _check_metric(text, m.group(1))
            conditions.append((m.group(1), m.group(2), float(m.group(3))))
    elif text.strip() != head.strip():
        raise ConfigError(f"--pick {text!r}: 'where' needs at least one condition")
    return Pick(words[0], words[1], tuple(conditions))


def _values(r: TrialRecord) -> dict[str, float]:
    return {k: m["value"] for k, m in r.metrics.items()}


def select_trial(study: optuna.Study, trial: int | None = None, pick: str | None = None) -> TrialRecord:
    """The trial numbered ``trial``, or the best feasible complete trial under the ``pick`` expression.

    Both read the numbers the run stands by: confirmed re-measurements where the
    confirmation pass made them (:mod:`autoprune.study.records`).

    Raises:
        ConfigError: not exactly one of ``trial`` and ``pick``, no such trial, or no trial satisfies ``pick``.
    """
    complete = records(study)
    if (trial is None) == (pick is None):
        raise ConfigError("give exactly one of --trial N or --pick EXPR")
    if trial is not None:
        for r in complete:
            if r.number == trial:
                return r
        numbers = ", ".join(str(r.number) for r in complete) or "none"
        raise ConfigError(f"--trial {trial}: no complete trial with that number (complete: {numbers})")
    p = parse_pick(pick)
    candidates = [r for r in complete if r.feasible and p.metric in _values(r) and p.admits(_values(r))]
    if not candidates:
        raise ConfigError(f"--pick {pick!r}: no complete feasible trial satisfies it")
    directions = study.directions
    objectives = study.user_attrs.get("config", {}).get("objectives", [])

    def rank(r):  # the pick's metric first, then the study's objectives as tie-breakers
        v = _values(r)
        ties = tuple(v.get(o, 0.0) * (1 if d == optuna.study.StudyDirection.MAXIMIZE else -1) for o, d in zip(objectives, directions))
        return (p.key(v), *ties, -r.number)

    return max(candidates, key=rank)
