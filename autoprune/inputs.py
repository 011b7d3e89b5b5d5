"""Model inputs as people pass them: one tensor, or a dict of named tensors passed as keyword arguments.

A dict is what a Hugging Face tokenizer returns (``input_ids``, ``attention_mask``, ...);
its keys become the ONNX graph's input names, and training and calibration data take the
same form: a dict of arrays sharing their first (sample) dimension. A single tensor
exports as one input named :data:`INPUT_NAME`. Every value keeps its own dtype: token ids
and masks stay int64, images float32.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from .exceptions import ConfigError

__all__ = ["INPUT_NAME", "Inputs", "Data", "call", "check_inputs", "input_names", "rows", "take", "count", "to_numpy", "feeds"]

# The ONNX input name of a model taking one tensor.
INPUT_NAME = "input"

Inputs = Union[torch.Tensor, Mapping[str, torch.Tensor]]
Data = Union[np.ndarray, Mapping[str, np.ndarray]]


def check_inputs(example: Any, where: str = "example_input") -> Inputs:
    """``example`` if it is a tensor or a non-empty dict of tensors keyed by argument name.

    Raises:
        ConfigError: anything else (the message says what was given).
    """
    if torch.is_tensor(example):
        return example
    if isinstance(example, Mapping) and example and all(isinstance(k, str) and torch.is_tensor(v) for k, v in example.items()):
        return example
    got = type(example).__name__ if not isinstance(example, Mapping) else f"dict with {sorted(map(str, example))}"
    raise ConfigError(f"{where} must be a tensor or a dict of tensors keyed by the forward's argument names, got {got}")


def call(model: nn.Module, inputs: Inputs) -> Any:
    """``model(inputs)``, or ``model(**inputs)`` for a dict."""
    return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)


def input_names(example: Inputs) -> list[str]:
    """The ONNX graph's input names: the dict's keys, or ``[INPUT_NAME]`` for one tensor."""
    return list(example) if isinstance(example, Mapping) else [INPUT_NAME]


def take(data: Data, index: Any) -> Data:
    """``data[index]`` for an array, or for every array of a dict (numpy indexing: a slice or indices)."""
    return {k: v[index] for k, v in data.items()} if isinstance(data, Mapping) else data[index]


def rows(data: Data, index: Any) -> Inputs:
    """:func:`take` as torch tensors (sharing memory where numpy allows), ready for :func:`call`."""
    picked = take(data, index)
    if isinstance(picked, Mapping):
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in picked.items()}
    return torch.from_numpy(np.ascontiguousarray(picked))


def count(data: Data) -> int:
    """Number of samples in ``data``."""
    return len(next(iter(data.values()))) if isinstance(data, Mapping) else len(data)


def to_numpy(inputs: Inputs) -> Data:
    """Tensors as numpy arrays, in the same structure."""
    if isinstance(inputs, Mapping):
        return {k: v.detach().cpu().numpy() for k, v in inputs.items()}
    return inputs.detach().cpu().numpy()


def feeds(batch: Data, dtypes: Mapping[str, np.dtype], what: str = "data") -> dict[str, np.ndarray]:
    """One batch as onnxruntime feeds: each of the graph's inputs (``{name: dtype}``), cast to its dtype.

    An array feeds a one-input graph; a dict must hold every input by name (extra keys are
    ignored). Token ids stay integers and images float32 whatever the data's own dtypes are.

    Raises:
        ConfigError: one array for a graph of several inputs, or a dict without one of them
            (the message names ``what`` the data is).
    """
    if not isinstance(batch, Mapping):
        if len(dtypes) != 1:
            raise ConfigError(f"{what} is one array, but the model takes {len(dtypes)} inputs {list(dtypes)}: "
                              "pass a dict of arrays keyed by them")
        ((name, dtype),) = dtypes.items()
        return {name: np.asarray(batch).astype(dtype, copy=False)}
    missing = [name for name in dtypes if name not in batch]
    if missing:
        raise ConfigError(f"{what} has no {missing[0]!r} (the model's inputs: {list(dtypes)}; given: {list(batch)})")
    return {name: np.asarray(batch[name]).astype(dtype, copy=False) for name, dtype in dtypes.items()}
