"""Names for the implementations of one extension point, and ``module.path:factory`` for a user's own.

Each extension point (tasks, profiler kinds, energy meters, importance criteria, samplers)
declares one :class:`Registry` next to its interface. A YAML value is either a registered
name or a reference to a factory in the user's code::

    build:
      importance: magnitude                  # a registered name
    search:
      sampler: mypkg.samplers:make_sampler   # imported when the study starts

and Python code registers its own under a name::

    @autoprune.samplers.SAMPLERS.register("cmaes")
    def make_cmaes(search):
        return optuna.samplers.CmaEsSampler(seed=search.seed)

A built-in entry may itself be a ``"module.path:attr"`` string, so that declaring a registry
imports nothing heavy: loading a YAML file checks names without importing torch, optuna or
onnxruntime, and only building the object imports its module.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable, Iterator

from .exceptions import ConfigError

__all__ = ["Registry", "REFERENCE_RE"]

# ``package.module:attr``; the attribute may be dotted (a class's alternative constructor).
REFERENCE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class Registry:
    """Factories by name for one extension point.

    Args:
        key: Where the name is given, for messages (``"search.sampler"``, ``"profiler.kind"``).
        what: What the factory makes, for messages (``"sampler"``, ``"profiler"``).
        returns: The class every product must be an instance of, or its ``"module:attr"``
            reference (resolved on first use, so declaring the registry stays light); None:
            any object.
    """

    def __init__(self, key: str, what: str, returns: type | str | None = None) -> None:
        self.key = key
        self.what = what
        self._returns = returns
        self._entries: dict[str, Callable[..., Any] | str] = {}

    def register(self, name: str, factory: Callable[..., Any] | str | None = None) -> Any:
        """Make ``factory`` available as ``name``; without ``factory``, a decorator.

        Args:
            name: The name YAML files use. Registering a name again replaces the entry.
            factory: A callable, or a ``"module.path:attr"`` string imported on first use.

        Returns:
            ``factory`` (or the decorator, which returns the decorated object unchanged).

        Raises:
            ValueError: ``name`` contains ``:`` (that form means a reference to user code).
        """
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"{self.what} name must be a non-empty string without ':', got {name!r}")
        if factory is None:
            def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
                self._entries[name] = f
                return f

            return decorate
        if isinstance(factory, str) and not REFERENCE_RE.match(factory):
            raise ValueError(f"{self.what} {name!r}: {factory!r} is not a 'module.path:attr' reference")
        self._entries[name] = factory
        return factory

    def pop(self, name: str, default: Any = None) -> Any:
        """Remove ``name``; returns its entry, or ``default`` when it was not registered."""
        return self._entries.pop(name, default)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.key!r}, names={self.names()})"

    def problem(self, spec: Any) -> str | None:
        """Why ``spec`` names nothing here, or None when it is a known name or a well-formed reference.

        A reference is checked for form only: importing the user's module waits until the
        object is built, so reading a stored run never needs that module.
        """
        if isinstance(spec, str) and (spec in self._entries or REFERENCE_RE.match(spec)):
            return None
        return f"must be one of {self.names()} or 'module.path:factory', got {spec!r}"

    def check(self, spec: Any, where: str = "", load: bool = False) -> str:
        """``spec`` if :meth:`problem` finds none (and, with ``load``, its factory imports).

        Args:
            spec: A name or ``module.path:factory`` reference.
            where: The file, for the message.
            load: Also import a reference's module, so that a typo in it fails now rather
                than when the object is first built.

        Raises:
            ConfigError: one line naming ``where``, the key and the known names (or why the
                reference cannot be imported).
        """
        prefix = f"{where}: " if where else ""
        why = self.problem(spec)
        if why is not None:
            raise ConfigError(f"{prefix}{self.key} {why}")
        if load:
            try:
                self.get(spec)
            except ConfigError as e:
                raise ConfigError(f"{prefix}{self.key}: {e}") from None
        return spec

    def read(self, reader: Any, name: str, default: str) -> str:
        """Read key ``name`` of a :class:`~autoprune._schema.Reader` and check it here."""
        value = reader.raw(name, default)
        why = self.problem(value)
        if why is not None:
            raise reader.fail(name, why)
        return value

    def get(self, spec: str) -> Callable[..., Any]:
        """The factory for a registered name or a ``module.path:factory`` reference.

        Raises:
            ConfigError: unknown name (the message lists the known ones), or a reference
                that cannot be imported.
        """
        if spec in self._entries:
            entry = self._entries[spec]
            return _resolve(entry, self.what, spec) if isinstance(entry, str) else entry
        if isinstance(spec, str) and REFERENCE_RE.match(spec):
            return _resolve(spec, self.what, spec)
        raise ConfigError(f"unknown {self.what} {spec!r} (known: {self.names()}; or give 'module.path:factory')")

    def create(self, spec: str, *args: Any, **kwargs: Any) -> Any:
        """``get(spec)(*args, **kwargs)``, checked against ``returns``.

        Raises:
            ConfigError: as :meth:`get`, or the factory made something of the wrong type.
        """
        product = self.get(spec)(*args, **kwargs)
        returns = self._returns
        if isinstance(returns, str):
            returns = self._returns = _resolve(returns, "class", returns)
        if returns is not None and not isinstance(product, returns):
            expected = f"{returns.__module__}.{returns.__qualname__}"
            raise ConfigError(f"{self.what} {spec!r}: factory returned {type(product).__name__}, expected {expected}")
        return product


def _resolve(reference: str, what: str, spec: str) -> Any:
    """Import ``module.path:attr`` (``attr`` may be dotted)."""
    module_name, _, attr = reference.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{what} {spec!r} cannot be imported: {e}") from None
    return obj
