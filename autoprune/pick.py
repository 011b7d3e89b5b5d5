"""``--pick`` expressions: choose one trial by an objective under constraints.

Grammar::

    (max|min) METRIC [where METRIC OP NUMBER (and METRIC OP NUMBER)*]     OP: <= < >= > ==

e.g. ``max accuracy where latency_ms <= 0.5 and size_kb < 800``.

``test_accuracy`` (accuracy on the task's test split, reported on confirmed trials) is refused:
choosing by it would make the test split a second validation split. Pick on ``accuracy``.
"""

from __future__ import annotations

import dataclasses
import operator
import re

from .exceptions import ConfigError
from .metrics import REPORTED_ONLY

__all__ = ["Pick", "parse_pick"]

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}
_COND = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
METRICS = ("accuracy", "latency_ms", "latency_p90_ms", "energy_mj", "size_kb", "onnx_size_kb", "macs")


def _check_metric(text: str, name: str) -> None:
    if name in REPORTED_ONLY:
        raise ConfigError(f"--pick {text!r}: selecting on the test split ({name}) is not allowed; "
                          "pick on accuracy (the validation split the search selected on)")
    if name not in METRICS:
        raise ConfigError(f"--pick {text!r}: unknown metric {name!r} (known: {', '.join(METRICS)})")


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
