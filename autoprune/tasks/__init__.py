"""Tasks: a trained model plus the data and metric that judge it.

``get("digits")`` gives the built-in task; ``get("mypkg.module:make_task", **options)``
imports ``make_task`` and calls it with the options. The evaluation split is fixed, so
anyone can re-check an exported model::

    X, y = autoprune.tasks.get("digits").eval_data()

A task of one's own is ``task: mypkg.module:make_task`` in the study YAML, or registered
under a name with ``autoprune.tasks.TASKS.register("mine", make_task)``.
"""

from __future__ import annotations

from typing import Callable

from ..exceptions import ConfigError
from ..registry import Registry
from .base import Task

__all__ = ["Task", "get", "register", "TASKS"]

TASKS = Registry("task", "task", returns=Task)
TASKS.register("digits", "autoprune.tasks.digits:DigitsTask")
TASKS.register("fashion", "autoprune.tasks.fashion:FashionTask")


def register(name: str, factory: Callable[..., Task]) -> None:
    """Make ``factory(**options) -> Task`` available as ``task: name`` in study YAML."""
    TASKS.register(name, factory)


def get(spec: str | Task, **options) -> Task:
    """A task from a registered name or a ``module.path:factory`` reference (objects pass through)."""
    if isinstance(spec, Task):
        return spec
    factory = TASKS.get(spec)
    try:
        task = factory(**options)
    except TypeError as e:
        raise ConfigError(f"task {spec!r}: bad options {sorted(options)}: {e}") from None
    if not isinstance(task, Task):
        raise ConfigError(f"task {spec!r}: factory returned {type(task).__name__}, expected autoprune.tasks.Task")
    return task
