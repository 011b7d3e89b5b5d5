"""A compression plan: per layer, a channel pruning ratio and a bit-width.

Keys are module paths (``conv3``, ``layer1.0.conv2``) or ``re:`` patterns. Precedence when
resolving a layer's entry: an exact module path wins; otherwise the first ``re:`` pattern
(in the plan's order) that fully matches the path; otherwise the default (ratio 0, bits 32,
i.e. the layer is left as it is). ``ratio`` applies to channel groups (named by their root
module), ``bits`` to quantizable layers.

YAML form (``plan.yaml``)::

    version: 1
    layers:
      conv2: {ratio: 0.5, bits: 8}
      "re:conv[45]": {ratio: 0.25}
      fc: {bits: 32}
    meta: {...}        # task, device profile, build settings, versions (written by export)
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Iterable

import yaml

from ._schema import Reader, atomic_write_text, load_yaml
from .exceptions import ConfigError, PlanError

__all__ = ["Plan", "LayerPlan"]

PLAN_VERSION = 1


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    """One layer's entry; ``None`` means "not said here" (falls through to the next rule)."""

    ratio: float | None = None
    bits: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("ratio", self.ratio), ("bits", self.bits)) if v is not None}


@dataclasses.dataclass(frozen=True)
class Plan:
    """Per-layer ratios and bit-widths, keyed by module path or ``re:`` pattern.

    Args:
        layers: Mapping from key to :class:`LayerPlan`; insertion order is the pattern order.
        meta: Free-form facts that travel with the plan (task, device, build settings).
    """

    layers: dict[str, LayerPlan] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    version: int = PLAN_VERSION

    def __post_init__(self) -> None:
        for key, lp in self.layers.items():
            if key.startswith("re:"):
                try:
                    re.compile(key[3:])
                except re.error as e:
                    raise PlanError(f"plan: layers.{key} is not a valid regular expression: {e}") from None
            if lp.ratio is not None and not (isinstance(lp.ratio, (int, float)) and 0.0 <= lp.ratio < 1.0):
                raise PlanError(f"plan: layers.{key}.ratio must be a number in [0, 1), got {lp.ratio!r}")
            if lp.bits is not None and (isinstance(lp.bits, bool) or not isinstance(lp.bits, int) or not 1 <= lp.bits <= 32):
                raise PlanError(f"plan: layers.{key}.bits must be an integer in [1, 32], got {lp.bits!r}")

    # -- resolution -------------------------------------------------------------------
    def _lookup(self, name: str, field: str) -> Any:
        exact = self.layers.get(name)
        if exact is not None and getattr(exact, field) is not None:
            return getattr(exact, field)
        for key, lp in self.layers.items():
            if key.startswith("re:") and getattr(lp, field) is not None and re.fullmatch(key[3:], name):
                return getattr(lp, field)
        return None

    def ratio(self, name: str) -> float:
        r = self._lookup(name, "ratio")
        return 0.0 if r is None else float(r)

    def bits(self, name: str) -> int:
        b = self._lookup(name, "bits")
        return 32 if b is None else int(b)

    def unmatched(self, names: Iterable[str]) -> list[str]:
        """Keys of this plan that name no layer in ``names`` (exact keys absent, patterns matching none)."""
        names = list(names)
        out = []
        for key in self.layers:
            if key.startswith("re:"):
                if not any(re.fullmatch(key[3:], n) for n in names):
                    out.append(key)
            elif key not in names:
                out.append(key)
        return out

    # -- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": self.version, "layers": {k: v.to_dict() for k, v in self.layers.items()}}
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, data: dict, label: str = "plan") -> "Plan":
        """A plan from its YAML mapping; any problem raises :class:`PlanError` naming ``label`` and the key path."""
        try:
            return cls._from_dict(data, label)
        except PlanError:
            raise
        except ConfigError as e:
            raise PlanError(str(e)) from None

    @classmethod
    def _from_dict(cls, data: dict, label: str) -> "Plan":
        r = Reader(data, label)
        version = r.int("version", PLAN_VERSION, lo=1, hi=PLAN_VERSION)
        layers_r = r.sub("layers")
        layers = {}
        for key in list(layers_r.data):
            entry = layers_r.sub(str(key))
            ratio = entry.float("ratio", None, lo=0.0, hi=0.99)
            bits = entry.int("bits", None, lo=1, hi=32)
            entry.finish()
            layers[str(key)] = LayerPlan(ratio=ratio, bits=bits)
        layers_r.finish()
        meta = r.raw("meta", {})
        if not isinstance(meta, dict):
            raise r.fail("meta", "must be a mapping")
        r.finish()
        try:
            return cls(layers=layers, meta=meta, version=version)
        except PlanError as e:
            raise PlanError(str(e).replace("plan:", f"{label}:", 1)) from None

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Plan":
        data, label = load_yaml(path, "plan")
        return cls.from_dict(data, label)
