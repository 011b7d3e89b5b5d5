"""What a task is: a trained model, its example input, its data and its metric."""

from __future__ import annotations

import abc

import numpy as np
import torch
from torch import nn

__all__ = ["Task"]


class Task(abc.ABC):
    """A model to compress together with the data that judges it.

    Subclasses provide the trained dense model, an example input (batch of one), a fixed
    evaluation split and training data (used for BatchNorm recalibration, quantization
    calibration and optional fine-tuning). The default metric is top-1 accuracy.

    Attributes:
        name: Short name used in run directories and reports.
        options: The options the task was made with (recorded in plans, so that a plan can
            be rebuilt from the same original).
    """

    name: str = "task"

    def __init__(self, **options) -> None:
        self.options = dict(options)

    @abc.abstractmethod
    def model(self) -> nn.Module:
        """The trained dense model, in eval mode. Callers must not modify it."""

    @abc.abstractmethod
    def example_input(self) -> torch.Tensor | dict[str, torch.Tensor]:
        """One input of batch size 1, as the deployed model receives it.

        A tensor, or a dict of tensors passed to the model as keyword arguments (a tokenizer's
        ``input_ids`` and ``attention_mask``, int64): each key becomes an ONNX input of that
        name and dtype, and every ``X`` of the task is then a dict of arrays with the same keys.
        """

    @abc.abstractmethod
    def eval_data(self) -> tuple[np.ndarray | dict[str, np.ndarray], np.ndarray]:
        """The fixed evaluation split ``(X, y)``: numpy arrays (``X`` a dict of them for dict inputs)."""

    @abc.abstractmethod
    def train_data(self) -> tuple[np.ndarray | dict[str, np.ndarray], np.ndarray]:
        """Training data ``(X, y)`` for calibration, BatchNorm statistics and fine-tuning (``X`` as in :meth:`eval_data`)."""

    def test_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The held-out test split ``(X, y)``, or None when the task has none.

        Never used to select anything: the search selects on :meth:`eval_data` (validation);
        autoprune reports ``test_accuracy`` on confirmed and exported artifacts only.
        """
        return None

    @property
    def eval_description(self) -> str:
        """What :meth:`eval_data` is, for the ``how`` of every accuracy measured on it."""
        return "eval split"

    def score(self, outputs: np.ndarray, y: np.ndarray) -> float:
        """The metric (higher is better): top-1 accuracy of ``outputs`` logits against ``y``."""
        return float((np.asarray(outputs).argmax(axis=1) == np.asarray(y)).mean())

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss used by fine-tuning."""
        return nn.functional.cross_entropy(outputs, y)

    def spec(self) -> dict:
        """How to make this task again: ``{"name": ..., "options": ...}``."""
        return {"name": self.name, "options": dict(self.options)}
