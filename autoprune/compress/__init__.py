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

from .build import Artifact, BuildSettings, build_artifact
from .entry import TrainingData, prune, to_onnx
from .onnx_export import export_onnx
from .prune import prune_channels
from .quantize import quantize_onnx
from .recover import finetune, recalibrate_bn

__all__ = [
    "BuildSettings", "Artifact", "TrainingData", "prune", "to_onnx",
    "build_artifact", "export_onnx", "quantize_onnx", "prune_channels", "recalibrate_bn", "finetune",
]
