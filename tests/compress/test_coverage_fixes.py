"""Failures that benchmarks/model_coverage.py found in models people ship, fixed.

* ``transformers.BertModel`` (not the classifier) failed ONNX export with dict inputs: the
  TorchScript exporter passed ``use_cache=None`` by position, and BertModel's forward sets it too.
* torchvision's GoogLeNet / Inception v3 have auxiliary heads that run in training only: no
  node of the exported graph computes with them, so an int8 plan for them could not be built.
* torchvision's VGG and AlexNet pool adaptively to 7x7 / 6x6 before their classifier: at a
  64x64 input (2x2 feature maps) ONNX export refused it ("output size that are not factor of
  input size"); it now exports as the equivalent MatMuls.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

import autoprune


def test_a_hugging_face_base_model_with_dict_inputs_builds_int8():
    transformers = __import__("transformers")
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=32)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.BertModel(cfg).eval()
    x = {"input_ids": torch.randint(0, 100, (1, 8), generator=torch.Generator().manual_seed(0)),
         "attention_mask": torch.ones(1, 8, dtype=torch.int64)}
    space = autoprune.discover(model, x)
    plan = space.plan_from_params(space.params_for(0.5, 8))
    rng = np.random.default_rng(0)
    X = {"input_ids": rng.integers(0, 100, (16, 8)), "attention_mask": np.ones((16, 8), dtype=np.int64)}
    artifact = autoprune.build(model, plan, X, x)
    assert artifact.channels and all(after < before for before, after in artifact.channels.values())
    assert type(model).forward is transformers.BertModel.forward and "forward" not in vars(model)  # restored


class _WithAuxHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.aux = nn.Linear(16, 10)  # used in training only, like GoogLeNet's aux1/aux2
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x)).mean((2, 3))
        if self.training:
            return self.fc(h) + self.aux(h)
        return self.fc(h)


def test_a_layer_that_does_not_run_on_the_example_input_is_left_out_of_quantization_with_the_reason():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = _WithAuxHead().eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    space = autoprune.discover(model, x)
    assert "aux" not in {q.name for q in space.layers}
    reason = next(e.reason for e in space.excluded if e.name == "aux" and e.what == "quantize")
    assert "does not run on the example input" in reason
    plan = space.plan_from_params(space.params_for(0.0, 8))
    X = np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32)
    assert autoprune.build(model, plan, X, x).size_bytes > 0  # int8 everywhere it runs


class _VGGLike(nn.Module):
    """VGG's shape: features, then an adaptive average pool to 7x7 (here from 2x2), then the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
                                      nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4))
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(16 * 49, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def test_an_adaptive_pool_to_a_size_that_does_not_divide_its_input_exports_and_prunes():
    import onnxruntime as ort

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = _VGGLike().eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # 2x2 feature maps, pooled to 7x7
    space = autoprune.discover(model, x)
    X = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    for bits in (32, 8):
        artifact = autoprune.build(model, space.plan_from_params(space.params_for(0.5, bits)), X, x)
        assert artifact.channels and all(after < before for before, after in artifact.channels.values())
        got = ort.InferenceSession(artifact.onnx_bytes).run(None, {"input": X[:4]})[0]
        want = artifact.model(torch.from_numpy(X[:4])).detach().numpy()
        assert got.shape == (4, 10)  # the batch axis stays dynamic through the MatMuls
        if bits == 32:
            np.testing.assert_allclose(got, want, atol=1e-4)
        ops = {n.op_type for n in onnx.load_from_string(artifact.onnx_bytes).graph.node}
        assert "MatMul" in ops or "MatMulInteger" in ops or "QLinearMatMul" in ops
    assert "forward" not in vars(model.avgpool)  # the pool's own forward again
