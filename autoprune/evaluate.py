"""Accuracy of an artifact: the ONNX model itself, run by onnxruntime on the task's eval split."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .inputs import Data, count, feeds, take
from .metrics import Metric
from .profile.timing import ORT_DTYPES, make_session

__all__ = ["evaluate_onnx"]


def evaluate_onnx(model: bytes | str | os.PathLike | Any, X: Data, y: np.ndarray, task, batch_size: int = 512,
                  split: str | None = None) -> Metric:
    """Score ``model`` on ``(X, y)`` with ``task.score``; one intra-op thread so results are reproducible.

    ``X`` is an array of inputs, or a dict of them keyed by the graph's input names (token ids
    and attention masks); each input is cast to the graph's dtype for it. ``model`` is the
    ONNX bytes, the path of a file, or an :class:`~autoprune.compress.Artifact` (one with
    external data, over 2 GB, is saved to a temporary directory and read from there).
    ``split`` names the data in the metric's ``how`` (default: the task's ``eval_description``).
    """
    from .exceptions import CandidateError

    if getattr(model, "external_data", None) is not None:
        with tempfile.TemporaryDirectory(prefix="autoprune-eval-") as tmp:
            model.save(Path(tmp) / "model.onnx")
            return evaluate_onnx(str(Path(tmp) / "model.onnx"), X, y, task, batch_size, split)
    model = getattr(model, "onnx_bytes", model)
    session = make_session(model if isinstance(model, bytes) else str(model), threads=1)
    unknown = [f"{i.name} ({i.type})" for i in session.get_inputs() if i.type not in ORT_DTYPES]
    if unknown:
        raise CandidateError(f"the ONNX model takes inputs of a type numpy cannot feed: {', '.join(unknown)}")
    dtypes = {i.name: np.dtype(ORT_DTYPES[i.type]) for i in session.get_inputs()}
    n = count(X)
    outputs = np.concatenate([session.run(None, feeds(take(X, slice(i, i + batch_size)), dtypes, "the eval data"))[0]
                              for i in range(0, n, batch_size)])
    if not np.isfinite(outputs).all():
        raise CandidateError("the ONNX model produces non-finite outputs (NaN/inf) on the eval split")
    return Metric(task.score(outputs, y), "", "measured", f"onnxruntime on the {len(y)}-sample {split or getattr(task, 'eval_description', 'eval split')} of task {task.name}")
