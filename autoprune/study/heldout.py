"""The task's test split: reported on confirmed and exported artifacts, never used to select.

The search selects on the task's evaluation (validation) split. Accuracy on the test
split (:meth:`autoprune.tasks.Task.test_data`) is measured only after the search: by the
confirmation pass on each rebuilt, byte-checked artifact, on the dense reference once the
search has finished, and by export on the exported bytes. It is stored as the metric
``test_accuracy`` beside the trial's confirmed numbers, never in a trial's user attrs,
values or constraints, so neither the sampler nor the front can see it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import optuna

from ..baselines import baseline_params
from ..compress import Artifact
from ..evaluate import evaluate_onnx
from ..metrics import Metric
from .candidate import build, standin_note
from .context import StudyContext

__all__ = ["TEST_SPLIT", "measure_test_accuracy", "dense_artifact", "record_dense_test_accuracy"]

TEST_SPLIT = "test split (reported only, never used to select)"


def measure_test_accuracy(task, model: Any, standin: dict[str, int] | None = None,
                          data: tuple[np.ndarray, np.ndarray] | None = None) -> Metric | None:
    """Accuracy of the ONNX ``model`` on ``task``'s test split; None when the task has none.

    Args:
        task: The study's task.
        model: The artifact (or its ONNX bytes): the one that was measured and is exported.
        standin: ``{layer: bits}`` built as int8 stand-ins; the ``how`` then says so.
        data: The test split when the caller already loaded it (default: ``task.test_data()``).
    """
    data = data if data is not None else task.test_data()
    if data is None:
        return None
    X, y = data
    m = evaluate_onnx(model, X, y, task, split=TEST_SPLIT)
    return standin_note(m, standin) if standin else m


def dense_artifact(ctx: StudyContext) -> Artifact:
    """The dense reference: the original model in fp32, with no pruning, quantization or sparsity."""
    plain = dataclasses.replace(ctx.config.build, sparsity="none")
    return build(ctx, ctx.space.plan_from_params(baseline_params(ctx.space, "dense-fp32")), plain)


def record_dense_test_accuracy(study: optuna.Study, ctx: StudyContext) -> None:
    """Add ``test_accuracy`` to the study's ``dense`` attribute, once, if the task has a test split.

    Called after the search, so the test split is never loaded while trials are selected.
    """
    dense = study.user_attrs.get("dense")
    if not dense or "test_accuracy" in dense:
        return
    data = ctx.task.test_data()
    if data is None:
        return
    m = measure_test_accuracy(ctx.task, dense_artifact(ctx), data=data)
    study.set_user_attr("dense", {**dense, "test_accuracy": m.to_dict()})
