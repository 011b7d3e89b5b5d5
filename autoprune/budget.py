"""A time and memory budget for discovery: a model Torch-Pruning cannot trace fails fast, never hangs.

Torch-Pruning's dependency graph can grow without bound on some models: on torchvision's
Swin (its attention excluded) it expands each reshape's index mapping into Python lists,
25-50 MB more every second for minutes (12-18 GB). :func:`run_within` runs discovery under a
:class:`DiscoveryBudget` and raises :class:`~autoprune.exceptions.DiscoveryBudgetError`
naming the model, what ran out and how to raise it.

How: a watchdog thread checks the elapsed time and the growth of the process's resident
memory (``/proc/self/statm``) every 20 ms; past either limit it raises an exception in the
discovering thread (CPython's ``PyThreadState_SetAsyncExc``), which unwinds Torch-Pruning's
Python code between two bytecodes, freeing what it built. The model stays in the process: a
child process would have to fork one that holds onnxruntime and OpenMP threads and database
connections, or pickle the model and its results, and would not run beside a CUDA model or
on Windows. The exception derives from ``BaseException`` so that no ``except Exception``
swallows it, and it is raised again each second until it lands (Torch-Pruning's forward
fallback has a bare ``except:``). Limits: one C call (a single long operator) is
interrupted only when it returns; the memory limit applies where ``/proc`` exists (Linux).
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from .exceptions import AutopruneError, ConfigError, DiscoveryBudgetError, DiscoveryError

if TYPE_CHECKING:  # loading a study YAML (which reads DiscoveryBudget) never imports torch
    from torch import nn

__all__ = ["DiscoveryBudget", "run_within", "traced", "available_mb", "resident_mb"]

T = TypeVar("T")
POLL_S = 0.02  # how often the watchdog looks
REFIRE_S = 1.0  # an interrupt not acknowledged by then was swallowed: raise it again
MEMORY_SHARE = 0.5  # the default memory budget: this share of the memory available when discovery starts


@dataclasses.dataclass(frozen=True)
class DiscoveryBudget:
    """How long discovery may run and how much memory it may add.

    Args:
        seconds: Wall-clock seconds for :func:`~autoprune.space.discover` to trace the model
            and find its channel groups and layers (not its probe, which prunes one copy per
            group); None: no time limit.
        memory_mb: Growth of the process's resident memory allowed, in MB; None: half the
            memory available when discovery starts (``MemAvailable``, or the cgroup's limit
            if lower). Only measured where ``/proc`` exists (Linux).
    """

    seconds: float | None = 300.0
    memory_mb: float | None = None

    def __post_init__(self) -> None:
        for name in ("seconds", "memory_mb"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
                raise ConfigError(f"discovery budget: {name} must be a positive number or None, got {v!r}")

    def limit_mb(self) -> float | None:
        """The memory limit in MB: ``memory_mb``, else :data:`MEMORY_SHARE` of what is available (None: unknown)."""
        if self.memory_mb is not None:
            return float(self.memory_mb)
        free = available_mb()
        return None if free is None else MEMORY_SHARE * free


def resident_mb() -> float | None:
    """This process's resident memory in MB (None where ``/proc`` is not)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def available_mb() -> float | None:
    """Memory available to this process in MB: ``MemAvailable``, or what its cgroup's limit leaves if less."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) / 1024 for line in f if line.startswith("MemAvailable:")]
    except (OSError, ValueError):
        pass
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2, then v1
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit) as f, open(usage) as g:
                cap, used = f.read().strip(), int(g.read())
        except (OSError, ValueError):
            continue
        if cap.isdigit() and int(cap) < 1 << 60:  # "max" or a huge number: no limit
            found.append((int(cap) - used) / 2**20)
    return min(found) if found else None


class _Interrupt(BaseException):
    """Raised in the discovering thread by the watchdog (a BaseException: ``except Exception`` lets it pass)."""


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    """Schedule ``exc`` in thread ``thread_id`` at its next bytecode; None clears a scheduled one."""
    n = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)
    if n > 1:  # cannot happen for one thread id; undo as the C API says
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


class _Watchdog(threading.Thread):
    def __init__(self, budget: DiscoveryBudget, target: int) -> None:
        super().__init__(name="autoprune-discovery-budget", daemon=True)
        self.seconds, self.memory_mb = budget.seconds, budget.limit_mb()
        self.target = target
        self.start_rss = resident_mb() if self.memory_mb is not None else None
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.done = self.acked = False
        self.reason: tuple[str, float, float] | None = None  # (what ran out, limit, amount used)
        self.grown = 0.0
        self.fired_at = 0.0

    def run(self) -> None:
        while True:
            time.sleep(POLL_S)
            with self.lock:
                if self.done or self.acked:
                    return
                now = time.monotonic()
                if self.reason is None:
                    self.reason = self._exceeded(now)
                if self.reason is not None and now - self.fired_at >= REFIRE_S:
                    self.fired_at = now
                    _raise_in(self.target, _Interrupt)

    def _exceeded(self, now: float) -> tuple[str, float, float] | None:
        rss = resident_mb() if self.start_rss is not None else None
        if rss is not None:
            self.grown = max(self.grown, rss - self.start_rss)
            if self.grown > self.memory_mb:
                return "memory_mb", self.memory_mb, self.grown
        if self.seconds is not None and now - self.t0 > self.seconds:
            return "seconds", self.seconds, now - self.t0
        return None

    def stop(self) -> None:
        """No interrupt after this returns: stop the watchdog, clear one scheduled but not yet raised."""
        for _ in range(3):  # at most one interrupt is in flight once acknowledged
            try:
                with self.lock:
                    self.done = True
                _raise_in(self.target, None)
                return
            except _Interrupt:
                self.acked = True


def _where(tb) -> str:
    """Where an interrupt landed: the outermost Torch-Pruning function it unwound, else the innermost function."""
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame.f_globals.get("__name__", ""), tb.tb_frame.f_code.co_name))
        tb = tb.tb_next
    in_tp = next((func for module, func in frames if module.startswith("torch_pruning")), None)
    return f"in Torch-Pruning's {in_tp}" if in_tp else f"in {frames[-1][0]}.{frames[-1][1]}" if frames else "discovering"


_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
          "_forward_pre_hooks_with_kwargs")


def _hook_ids(model: nn.Module) -> dict[nn.Module, set[int]]:
    return {m: {k for attr in _HOOKS for k in getattr(m, attr, {})} for m in model.modules()}


def _remove_hooks_since(before: dict[nn.Module, set[int]]) -> None:
    """Remove the forward hooks added since ``before``: an interrupted trace never reached Torch-Pruning's removal."""
    for m, ids in before.items():
        for attr in _HOOKS:
            hooks = getattr(m, attr, None)
            for k in [k for k in hooks or {} if k not in ids]:
                del hooks[k]


def run_within(budget: DiscoveryBudget | None, model: nn.Module, fn: Callable[[], T]) -> T:
    """``fn()``, interrupted with :class:`DiscoveryBudgetError` once it runs past ``budget`` (None: no budget).

    Args:
        budget: The limits.
        model: The model ``fn`` traces: named in the message, and left without the hooks an
            interrupted trace had registered on it.
        fn: The work.

    Raises:
        DiscoveryBudgetError: ``fn`` ran past the time or memory budget; what it built is freed.
    """
    if budget is None:
        return fn()
    hooks = _hook_ids(model)
    dog = _Watchdog(budget, threading.get_ident())
    dog.start()
    try:
        try:
            return fn()
        except _Interrupt as e:  # its traceback (and what fn built) goes when this handler ends
            dog.acked = True
            where = _where(e.__traceback__)
    finally:
        dog.stop()
    _remove_hooks_since(hooks)
    what, limit, used = dog.reason
    model_name = type(model).__name__
    if what == "seconds":
        ran = f"ran past its time budget of {limit:g} s {where} ({used:.1f} s, resident memory +{dog.grown:.0f} MB)"
    else:
        ran = f"ran past its memory budget of {limit:.0f} MB {where} (resident memory +{used:.0f} MB after {time.monotonic() - dog.t0:.1f} s)"
    raise DiscoveryBudgetError(
        f"discover: {model_name} {ran}; Torch-Pruning may never finish tracing this model. To allow more, set "
        f"search.discovery.{what} in the study YAML (or autoprune.discover(..., budget=autoprune.DiscoveryBudget({what}=...)))",
        model=model_name, resource=what, limit=limit, used=used)


def traced(model: nn.Module, what: str, fn: Callable[[], T]) -> T:
    """``fn()``, with Torch-Pruning's own failures on ``model`` as :class:`DiscoveryError`."""
    try:
        return fn()
    except AutopruneError:
        raise
    except Exception as e:
        frames = traceback.extract_tb(e.__traceback__)
        at = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
        at += f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        if frames and "torch_pruning" not in Path(frames[-1].filename).parts:  # raised by the model's own code
            raise DiscoveryError(f"discover: {type(model).__name__}'s forward fails on example_input while Torch-Pruning "
                                 f"traces it: {at}") from e
        raise DiscoveryError(f"discover: Torch-Pruning fails to {what} of {type(model).__name__}: {at}; "
                             "this model cannot be searched") from e
