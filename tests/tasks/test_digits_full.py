"""The full-width digits CNN that the quickstart searches: trained within budget, >= 98% held out.

Trains the real model once (about 1.5 minutes on 2 cores; cached for the session). Its speed
goal (dense fp32 >= 1 ms per image at batch 1, one thread) is a timing and lives in
benchmarks/quickstart.py, whose measured output the README quotes.
"""

import pytest

from autoprune import tasks
from autoprune.compress.onnx_export import export_onnx
from autoprune.evaluate import evaluate_onnx


@pytest.mark.slow
def test_full_digits_model_reaches_98_percent_as_onnx():
    task = tasks.get("digits")
    assert task.widths == (96, 192, 192, 384, 384)
    model = task.model()
    proto = export_onnx(model, task.example_input())
    X, y = task.eval_data()
    acc = evaluate_onnx(proto.SerializeToString(), X, y, task)
    assert acc.value >= 0.98 and acc.source == "measured"
