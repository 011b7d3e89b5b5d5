"""Helpers for the agent tests: tiny ONNX models and a JSON client (the fixtures live in conftest.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request

import numpy as np
from onnx import TensorProto, helper, numpy_helper


TOKEN = "s3cret-test-token"


def make_model(dim: int = 16, layers: int = 1, domain: str = "", external: bool = False) -> bytes:
    """x[N, dim] -> (MatMul W)*layers -> y. ``domain``/``external`` make models the agent must refuse."""
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        w = numpy_helper.from_array(np.full((dim, dim), 0.01, np.float32), f"W{i}")
        if external:
            w.data_location = TensorProto.EXTERNAL
            w.ClearField("raw_data")
            e = w.external_data.add()
            e.key, e.value = "location", "../../etc/passwd"
        inits.append(w)
        out = "y" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, f"W{i}"], [out], domain=domain))
        prev = out
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", dim])],
        inits,
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model.SerializeToString()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Client:
    """Minimal JSON client for the tests: returns (status, headers, body)."""

    def __init__(self, url: str, token: str | None = TOKEN) -> None:
        self.url, self.token = url, token

    def call(self, method: str, path: str, body=None, token: str | None = ..., raw: bytes | None = None, headers=None, timeout=60):
        token = self.token if token is ... else token
        h = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read())

    def profile(self, model: bytes, **settings):
        return self.call("POST", "/v1/profile", {"model": b64(model), **settings})

    def put_model(self, model: bytes, digest: str | None = None, **kw):
        """``PUT /v1/models/{sha256}`` with the raw bytes (``digest`` overrides the path's hash)."""
        return self.call("PUT", f"/v1/models/{digest or sha(model)}", raw=model,
                         headers={"Content-Type": "application/octet-stream", **kw.pop("headers", {})}, **kw)

    def profile_by_hash(self, digest: str, **settings):
        return self.call("POST", "/v1/profile", {"model_sha256": digest, **settings})


