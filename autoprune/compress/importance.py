"""Channel importance criteria: which channels of a group are pruned first.

A criterion is Torch-Pruning's interface: ``criterion(group) -> Tensor``, one score per
channel of the group's root layer (lower scores are pruned first), or None when it finds
nothing to score. :data:`IMPORTANCE` maps ``build.importance`` names to factories called
with no arguments. A criterion of one's own is ``build.importance: mypkg.module:make``
(``make()`` returns the criterion) or
``autoprune.compress.importance.IMPORTANCE.register("mine", make)``.

Nothing here imports torch: the built-in factories import Torch-Pruning when called, so
loading a study YAML checks the name without it.
"""

from __future__ import annotations

from typing import Any, Callable

from ..registry import Registry

__all__ = ["IMPORTANCE", "make_importance"]

IMPORTANCE = Registry("build.importance", "importance criterion")


@IMPORTANCE.register("magnitude")
def _magnitude() -> Any:
    import torch_pruning as tp

    return tp.importance.GroupMagnitudeImportance(p=2)


@IMPORTANCE.register("l1")
def _l1() -> Any:
    import torch_pruning as tp

    return tp.importance.GroupMagnitudeImportance(p=1)


@IMPORTANCE.register("bn_scale")
def _bn_scale() -> Any:
    import torch_pruning as tp

    return tp.importance.BNScaleImportance()


@IMPORTANCE.register("lamp")
def _lamp() -> Any:
    import torch_pruning as tp

    return tp.importance.LAMPImportance(p=2)


@IMPORTANCE.register("fpgm")
def _fpgm() -> Any:
    import torch_pruning as tp

    return tp.importance.FPGMImportance(p=2)


def make_importance(spec: str) -> Callable[[Any], Any]:
    """The criterion ``spec`` names (a registered name or ``module.path:factory``).

    Raises:
        ConfigError: unknown name (the message lists the known ones), a reference that
            cannot be imported, or a factory that made something not callable.
    """
    criterion = IMPORTANCE.create(spec)
    if not callable(criterion):
        from ..exceptions import ConfigError

        raise ConfigError(f"importance criterion {spec!r}: factory returned {type(criterion).__name__}, "
                          "expected a callable criterion(group) -> Tensor")
    return criterion
