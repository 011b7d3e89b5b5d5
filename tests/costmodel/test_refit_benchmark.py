"""``benchmarks/costmodel_refit.py`` refits a dump's timings with this checkout's features and reports the benchmark's errors.

The dump's models are real artifacts (probes and zoo plans as a calibration builds them); their
timings are SYNTHETIC: a known linear cost in this checkout's kernel features, so a refit must
recover it (every prediction within 1 %, every ranking exact), and a dump from another model does not.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from autoprune.costmodel.calibrate import build_samples
from autoprune.costmodel.kernels import FEATURES
from autoprune.device import load_device_profile

ROOT = Path(__file__).resolve().parents[2]
COST = dict(zip(FEATURES, (0.002, 0.02, 0.01, 0.0, 0.0, 0.0, 0.0, 0.003, 0.005, 0.01, 0.0, 0.015, 0.0)))  # ms per unit


@pytest.fixture(scope="module")
def refit():
    spec = importlib.util.spec_from_file_location("costmodel_refit", ROOT / "benchmarks" / "costmodel_refit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    """40 real calibration-style artifacts; the zoo plans among them are also the held-out models, as one model's plans."""
    out = tmp_path_factory.mktemp("dump")
    samples = build_samples(load_device_profile("local-cpu"), out / "models", 120.0, seed=0, max_models=40)
    cost = np.array([COST[f] for f in FEATURES])
    ms = {s.name: 0.01 + sum(float(np.dot(cost, k.features)) for k in s.kernels) for s in samples}
    cal = [{"name": s.name, "kind": s.kind, "bits": s.bits, "path": str(s.path.relative_to(out)), "ms": ms[s.name]}
           for s in samples]
    held = [{"name": f"held-{s.name}", "family": "zoo", "path": str(s.path.relative_to(out)),
             "rounds": [ms[s.name]] * 4, "rounds_min": [ms[s.name] * f for f in (1.0, 1.001, 1.002, 1.0)]}
            for s in samples if s.kind.startswith("zoo:")]
    (out / "data.json").write_text(json.dumps({"calibration": cal, "heldout": held, "leave_out": []}))
    (out / "cal.json").write_text(json.dumps({"blocks": {"fp32": [16, 4], "int8": [16, 4]}}))
    return out


def _cv_share(text: str) -> float:
    """The calibration models' k-fold share within +/-10 %, from the report."""
    line = next(x for x in text.splitlines() if x.startswith("calibration models"))
    return float(re.search(r"all \d+: within \+/-10 % ([\d.]+)%", line).group(1))


def test_a_refit_recovers_the_cost_the_timings_follow(refit, dump, tmp_path, capsys):
    assert refit([str(dump), "--calibration", str(dump / "cal.json"), "--folds", "2", "--results", str(tmp_path / "r.txt")]) == 0
    text = capsys.readouterr().out
    assert (tmp_path / "r.txt").read_text() == text
    assert "refitted, not measured again" in text.splitlines()[0]
    assert 0.0 <= _cv_share(text) <= 100.0  # 2 folds of 40 models: a fold holds kinds the other never ran
    assert "  held-out plans: " in text and "within +/-10 % 100%, MAPE 0.0%" in text  # the full fit has seen every kind
    assert text.rstrip().endswith("mean 1.00 (1.00)")  # the plans ranked as timed, as their rounds rank them


def test_timings_the_features_cannot_say_are_reported_as_missed(refit, dump, tmp_path, capsys):
    data = json.loads((dump / "data.json").read_text())
    rng = np.random.default_rng(0)
    for m in data["calibration"]:
        m["ms"] *= float(rng.uniform(0.5, 2.0))  # a cost no kernel feature explains; the held-out timings keep the true one
    other = tmp_path / "dump"
    other.mkdir()
    (other / "data.json").write_text(json.dumps(data))
    (other / "models").symlink_to(dump / "models")
    refit([str(other), "--calibration", str(dump / "cal.json"), "--folds", "2"])
    held = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("  held-out plans: "))
    share = float(re.search(r"within \+/-10 % (\d+)%", held).group(1))
    assert share < 60.0
