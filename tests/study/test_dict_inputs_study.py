"""A YAML study whose task gives dict inputs (token ids and an attention mask, int64) runs end to end.

The task is defined here and named in the YAML as ``module:factory``, as a user's would be:
a hand-written token classifier whose forward takes ``input_ids`` and ``attention_mask``.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import optuna
import torch
import yaml
from torch import nn

from autoprune.config import load_study_config
from autoprune.export import export_trial
from autoprune.study import run_study
from autoprune.tasks import Task

VOCAB, TOKENS = 50, 12


class TokenClassifier(nn.Module):
    """Mean of the unmasked token embeddings, then a two-layer MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        m = attention_mask.unsqueeze(-1).to(torch.float32)
        h = (self.embed(input_ids) * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.fc2(torch.relu(self.fc1(h)))


def _data(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random token ids and masks; the label says whether most unmasked tokens are in the vocabulary's lower half."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, (n, TOKENS))
    mask = (rng.random((n, TOKENS)) > 0.2).astype(np.int64)
    y = (((ids < VOCAB // 2) * mask).sum(1) * 2 > mask.sum(1)).astype(np.int64)
    return {"input_ids": ids, "attention_mask": mask}, y


class TokenTask(Task):
    name = "tokens"

    def model(self) -> nn.Module:
        torch.manual_seed(0)
        model = TokenClassifier()
        X, y = self.train_data()
        feeds = {k: torch.from_numpy(v) for k, v in X.items()}
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        for _ in range(100):
            opt.zero_grad()
            nn.functional.cross_entropy(model(**feeds), torch.from_numpy(y)).backward()
            opt.step()
        return model.eval()

    def example_input(self) -> dict[str, torch.Tensor]:
        X, _ = _data(1, 9)
        return {k: torch.from_numpy(v) for k, v in X.items()}

    def eval_data(self):
        return _data(96, 1)

    def train_data(self):
        return _data(256, 2)

    def test_data(self):
        return _data(64, 3)


def make_task() -> TokenTask:
    return TokenTask()


def test_a_yaml_study_with_dict_inputs_runs_and_exports(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text(yaml.safe_dump({
        "version": 1, "name": "tokens", "task": f"{__name__}:make_task", "device": "local-cpu",
        "constraints": {"max_accuracy_drop": 0.5},
        "search": {"n_trials": 3, "round_to": 4, "baselines": ["dense-fp32", "uniform-0.5"], "ladder": 0,
                   "sensitivity": {"ratios": [0.5], "rounds": 1, "window_s": 0.05}},
        "build": {"bn_batches": 1, "calibration_samples": 32},
        "confirm": {"rounds": 2, "min_duration_s": 0.05},
    }))
    result = run_study(load_study_config(path), tmp_path / "run", progress=False, log=lambda m: None)
    trials = result.study.trials
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)

    # onnxruntime's accuracy on the int64 eval data is the torch model's own
    task = TokenTask()
    model, (X, y) = task.model(), task.eval_data()
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in X.items()}).numpy()
    dense = json.loads((tmp_path / "run" / "front.json").read_text())["dense"]["accuracy"]
    assert dense["source"] == "measured" and dense["value"] == task.score(logits, y) > 0.7
    assert result.study.user_attrs["sensitivity"]["groups"], "the sensitivity analysis scored no group"

    pruned = next(t for t in trials if t.user_attrs.get("baseline") == "uniform-0.5")
    assert pruned.params["ratio:fc1"] == 0.5 and 0.0 < pruned.values[0] <= 1.0
    exported = export_trial(tmp_path / "run", tmp_path / "export", trial=pruned.number)
    graph = onnx.load(str(exported.out_dir / "model.onnx")).graph
    assert {i.name: i.type.tensor_type.elem_type for i in graph.input} == {
        "input_ids": onnx.TensorProto.INT64, "attention_mask": onnx.TensorProto.INT64}
    assert exported.metrics["test_accuracy"]["source"] == "measured"
