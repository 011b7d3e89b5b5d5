"""Tasks: a trained model plus the data and metric that judge it.

``get("digits")`` gives the built-in task; ``get("mypkg.module:make_task", **options)``
imports ``make_task`` and calls it with the options. The evaluation split is fixed, so
anyone can re-check an exported model::

    X, y = autoprune.tasks.get("digits").eval_data()
"""

from __future__ import annotations

import importlib
from typing import Callable

from ..exceptions import ConfigError
from .base import Task

__all__ = ["Task", "get", "register", "TASKS"]

TASKS: dict[str, Callable[..., Task]] = {}


def register(name: str, factory: Callable[..., Task]) -> None:
    """Make ``factory(**options) -> Task`` available as ``task: name`` in study YAML."""
    TASKS[name] = factory


def _digits(**options) -> Task:
    from .digits import DigitsTask

    return DigitsTask(**options)


def _fashion(**options) -> Task:
    from .fashion import FashionTask

    return FashionTask(**options)


register("digits", _digits)
register("fashion", _fashion)


def get(spec: str | Task, **options) -> Task:
    """A task from a registered name or a ``module.path:factory`` reference (objects pass through)."""
    if isinstance(spec, Task):
        return spec
    if spec in TASKS:
        factory = TASKS[spec]
    elif ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"task {spec!r} cannot be imported: {e}") from None
    else:
        raise ConfigError(f"unknown task {spec!r} (built-in: {sorted(TASKS)}; or give 'module.path:factory')")
    try:
        task = factory(**options)
    except TypeError as e:
        raise ConfigError(f"task {spec!r}: bad options {sorted(options)}: {e}") from None
    if not isinstance(task, Task):
        raise ConfigError(f"task {spec!r}: factory returned {type(task).__name__}, expected autoprune.tasks.Task")
    return task
