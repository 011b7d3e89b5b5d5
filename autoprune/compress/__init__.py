"""Building a candidate for real: prune channels, recover, export ONNX, quantize.

One entry point builds an artifact, and everyone calls it: the study, ``export``, ``apply``
and a user's script (all of them run :func:`~autoprune.compress.build.build_artifact`)::

    artifact = autoprune.build(model, plan, task, example_input, settings)   # settings: BuildSettings
    artifact.onnx_bytes, artifact.sha256                                      # what the study measured

Two of its stages, for looking inside (neither ships what a study measured)::

    small = autoprune.compress.prune(model, plan, example_input)            # channels removed, nothing else
    autoprune.to_onnx(small, plan, example_input, "m.onnx", X)              # build's export + quantize stage alone

``autoprune.build`` is :func:`autoprune.compress.entry.build`; ``autoprune.compress.build``
is the module of the stages (:class:`BuildSettings`, :class:`Artifact`, ``build_artifact``).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .._lazy import lazy_names

# Names are imported on first use, so that reading a study YAML (which needs only
# compress.settings and compress.importance) never imports torch or onnxruntime.
_LAZY = {
    "BuildSettings": "settings",
    "Artifact": "build",
    "build_artifact": "build",
    "TrainingData": "entry",
    "prune": "entry",
    "to_onnx": "entry",
    "export_onnx": "onnx_export",
    "prune_channels": "prune",
    "quantize_onnx": "quantize",
    "recalibrate_bn": "recover",
    "finetune": "recover",
}

__all__ = [
    "BuildSettings", "Artifact", "TrainingData", "prune", "to_onnx",
    "build_artifact", "export_onnx", "quantize_onnx", "prune_channels", "recalibrate_bn", "finetune",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)


class _Package(types.ModuleType):
    """Keeps ``compress.prune`` the function (from ``entry``) once the ``prune`` submodule loads.

    Importing a submodule binds it on its package under its own name; eagerly, the function
    was imported after the module and won. Lazily, the binding is refused instead, so the name
    falls through to :func:`__getattr__` (the submodule stays in ``sys.modules``).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "prune" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
