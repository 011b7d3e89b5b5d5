"""Accuracy of an artifact: the ONNX model itself, run by onnxruntime on the task's eval split."""

from __future__ import annotations

import numpy as np

from .metrics import Metric
from .profile.timing import make_session

__all__ = ["evaluate_onnx"]


def evaluate_onnx(model: bytes | str, X: np.ndarray, y: np.ndarray, task, batch_size: int = 512, split: str | None = None) -> Metric:
    """Score ``model`` on ``(X, y)`` with ``task.score``; one intra-op thread so results are reproducible.

    ``split`` names the data in the metric's ``how`` (default: the task's ``eval_description``).
    """
    session = make_session(model, threads=1)
    name = session.get_inputs()[0].name
    outputs = np.concatenate([session.run(None, {name: X[i : i + batch_size]})[0] for i in range(0, len(X), batch_size)])
    if not np.isfinite(outputs).all():
        from .exceptions import CandidateError

        raise CandidateError("the ONNX model produces non-finite outputs (NaN/inf) on the eval split")
    return Metric(task.score(outputs, y), "", "measured", f"onnxruntime on the {len(y)}-sample {split or getattr(task, 'eval_description', 'eval split')} of task {task.name}")
