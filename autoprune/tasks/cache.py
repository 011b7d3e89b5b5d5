"""Trained base models, cached on disk so a study (or a test session) trains at most once.

The cache lives in ``$AUTOPRUNE_CACHE`` (default ``~/.cache/autoprune``); files are keyed by
everything that changes the weights and written atomically, so concurrent workers never
read half a file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .._schema import atomic_write_bytes

__all__ = ["cache_dir", "load_or_train"]


def cache_dir() -> Path:
    return Path(os.environ.get("AUTOPRUNE_CACHE", Path.home() / ".cache" / "autoprune"))


def load_or_train(net: nn.Module, path: Path, train: Callable[[nn.Module], object]) -> nn.Module:
    """Load ``net``'s weights from ``path``, or ``train(net)`` and store them there; returns ``net`` in eval mode."""
    if path.is_file():
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        train(net)
        buf = io.BytesIO()
        torch.save(net.state_dict(), buf)
        atomic_write_bytes(path, buf.getvalue())
    return net.eval()
