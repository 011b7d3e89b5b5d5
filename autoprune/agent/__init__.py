"""The on-device profiling agent: an HTTP/JSON server that measures ONNX models one at a time.

Imports only the standard library, numpy and onnxruntime (never torch or optuna), so it
installs on a small board with ``pip install 'autoprune[agent]'``. Start it with
``autoprune agent serve``; the search talks to it through
:class:`autoprune.profile.agent.AgentProfiler`.
"""

from .errors import ApiError
from .modelcheck import ModelRejected, check_model_bytes
from .openapi import openapi_spec
from .queue import MeasurementQueue
from .server import AgentConfig, AgentServer, is_loopback
from .store import ModelStore, SessionCache

__all__ = ["AgentServer", "AgentConfig", "ApiError", "MeasurementQueue", "ModelStore", "SessionCache", "check_model_bytes",
           "ModelRejected", "openapi_spec", "is_loopback"]
