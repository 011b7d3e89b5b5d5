"""The pruned model still runs: on the example input, with the dense model's output shapes.

Torch-Pruning resizes the parameters it knows about; code it cannot see (a reshape with a
hard-coded channel count, a head count kept in an attribute) can still break. Pruning
runs the model once before and once after, so a broken model is an error, never a result.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Iterator

import torch
from torch import nn

from ..inputs import call

__all__ = ["output_shapes", "output_tensors", "forward_failure"]


@contextlib.contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd; every module's train/eval flag is restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, training in modes:  # per module: train(mode) would overwrite children set apart
            m.training = training


def _shapes(out: Any) -> Any:
    """The shapes of every tensor in ``out`` (tensors, tuples, lists, dicts, Hugging Face outputs)."""
    if torch.is_tensor(out):
        return tuple(out.shape)
    if isinstance(out, Mapping):
        return {k: _shapes(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return [_shapes(v) for v in out]
    return type(out).__name__


def output_tensors(out: Any) -> list[torch.Tensor]:
    """Every tensor in a model's output (a tensor, tuples, lists, dicts, Hugging Face outputs), in order."""
    if torch.is_tensor(out):
        return [out]
    if isinstance(out, Mapping):
        return [t for v in out.values() for t in output_tensors(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in output_tensors(v)]
    return []


def output_shapes(model: nn.Module, example_input: Any) -> Any:
    """Shapes of ``model(example_input)``'s outputs, in eval mode (the model's modes are restored)."""
    with _inference(model):
        return _shapes(call(model, example_input))


def _failing_module(model: nn.Module, example_input: Any) -> str | None:
    """Path of the innermost module whose forward raises on ``example_input``, or None if none does."""
    running: list[str] = []
    hooks = []
    for name, m in model.named_modules():
        def enter(mod, args, name=name):
            running.append(name)

        def leave(mod, args, out):  # returns None: a forward hook's return value replaces the output
            running.pop()

        hooks += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    try:
        with _inference(model):
            call(model, example_input)
    except Exception:
        return running[-1] if running else None
    finally:
        for h in hooks:
            h.remove()
    return None


def forward_failure(model: nn.Module, example_input: Any, expected: Any) -> str | None:
    """What is wrong with ``model`` on ``example_input``, or None when it runs with ``expected`` shapes.

    Args:
        model: The pruned model; its train/eval modes are left as they were.
        example_input: The input the dense model was traced with.
        expected: :func:`output_shapes` of the dense model.

    Returns:
        None, or one line: where the forward raised and the error, or the shapes that differ.
    """
    try:
        got = output_shapes(model, example_input)
    except Exception as e:
        where = _failing_module(model, example_input)
        first = (str(e).strip().splitlines() or [""])[0]
        kind = type(model.get_submodule(where)).__name__ if where is not None else ""
        at = "" if where is None else f" in the model's own forward ({kind})" if where == "" else f" in module {where!r} ({kind})"
        return f"its forward fails{at}: {type(e).__name__}: {first}"
    if got != expected:
        return f"its outputs have shapes {got}, the dense model's {expected}"
    return None
