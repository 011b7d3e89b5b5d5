"""Reading YAML into validated values, with errors that name the file and the key path.

A :class:`Reader` wraps one mapping. Each ``get`` checks type and range and records the
key as known; :meth:`Reader.finish` rejects any key that was never asked for. Messages read
like ``studies/q.yaml: search.max_ratio must be a number in [0, 0.95], got 1.2``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml

from ._scoped import current_umask
from .exceptions import ConfigError

__all__ = ["Reader", "load_yaml", "atomic_write_text", "atomic_write_bytes"]

_MISSING = object()


def load_yaml(path: str | os.PathLike, what: str = "file") -> tuple[dict, str]:
    """Load a YAML mapping; returns ``(data, label)`` where label is the path for messages."""
    p = Path(path)
    label = str(path)
    if not p.is_file():
        raise ConfigError(f"{label}: {what} not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{label}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping at the top level, got {type(data).__name__}")
    return data, label


class Reader:
    """Validated access to one mapping of a YAML document.

    Args:
        data: The mapping.
        label: The file, for messages.
        path: Key path of this mapping inside the file (``""`` at top level).
    """

    def __init__(self, data: Any, label: str, path: str = "") -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{label}: {path or 'top level'} must be a mapping, got {_show(data)}")
        self.data = data
        self.label = label
        self.path = path
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.label}: {self.key(key)} {message}")

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = _MISSING) -> Any:
        self._seen.add(name)
        if name not in self.data or self.data[name] is None and default is not _MISSING:
            if default is _MISSING:
                raise self.fail(name, "is required")
            return default
        return self.data[name]

    def str(self, name: str, default: Any = _MISSING, choices: Iterable[str] | None = None) -> Any:
        v = self.raw(name, default)
        if v is default and default is not _MISSING:
            return v
        if not isinstance(v, str) or not v:
            raise self.fail(name, f"must be a non-empty string, got {_show(v)}")
        if choices is not None and v not in choices:
            raise self.fail(name, f"must be one of {sorted(choices)}, got {v!r}")
        return v

    def int(self, name: str, default: Any = _MISSING, lo: int | None = None, hi: int | None = None) -> Any:
        v = self.raw(name, default)
        if v is default and default is not _MISSING:
            return v
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.fail(name, f"must be an integer in {_range(lo, hi)}, got {_show(v)}")
        return v

    def float(self, name: str, default: Any = _MISSING, lo: float | None = None, hi: float | None = None) -> Any:
        v = self.raw(name, default)
        if v is default and default is not _MISSING:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise self.fail(name, f"must be a number in {_range(lo, hi)}, got {_show(v)}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.fail(name, f"must be a number in {_range(lo, hi)}, got {_show(v)}")
        return float(v)

    def bool(self, name: str, default: Any = _MISSING) -> Any:
        v = self.raw(name, default)
        if not isinstance(v, bool):
            raise self.fail(name, f"must be true or false, got {_show(v)}")
        return v

    def list(self, name: str, default: Any = _MISSING) -> Any:
        v = self.raw(name, default)
        if v is default and default is not _MISSING:
            return v
        if not isinstance(v, list):
            raise self.fail(name, f"must be a list, got {_show(v)}")
        return v

    def sub(self, name: str, default_empty: bool = True) -> "Reader":
        v = self.raw(name, {} if default_empty else _MISSING)
        return Reader(v, self.label, self.key(name))

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            known = ", ".join(sorted(self._seen))
            raise ConfigError(f"{self.label}: unknown key {self.key(str(unknown[0]))} (known keys here: {known})")


def _range(lo: Any, hi: Any) -> str:
    return f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"


def _show(v: Any) -> str:
    return f"{v!r}" if not isinstance(v, (dict, list)) else type(v).__name__


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the file the mode a plain open() would
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())
