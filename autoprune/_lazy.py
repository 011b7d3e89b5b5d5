"""Packages whose public names load on first use (PEP 562), so light callers stay light.

Reading a study YAML or a finished run must not import torch or onnxruntime; a package's
``__init__`` therefore lists where each public name lives instead of importing it.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable

__all__ = ["lazy_names"]


def lazy_names(package: str, names: dict[str, str], exported: Iterable[str],
               submodules: bool = True) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: The package's ``__name__``.
        names: ``{public name: module}``; the module absolute (``autoprune.space``), relative
            (``..pareto``) or a submodule's bare name (``runner``).
        exported: What ``dir()`` lists (the package's ``__all__``).
        submodules: Any other public attribute is the submodule of that name, as an eager
            package would have bound it on import.
    """
    listed = sorted(exported)

    def __getattr__(name: str) -> Any:
        if name in names:
            module = names[name]
            module = module if module.startswith(".") or "." in module else "." + module
            return getattr(importlib.import_module(module, package), name)
        if submodules and not name.startswith("_"):
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as e:
                if e.name != f"{package}.{name}":
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return listed

    return __getattr__, __dir__
