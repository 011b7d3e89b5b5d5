import sys

import numpy as np
import pytest
import torch

from autoprune import tasks
from autoprune.exceptions import ConfigError
from autoprune.tasks.digits import DigitsTask, load_digits


def test_digits_data_is_the_real_uci_set():
    X, y = load_digits()
    assert X.shape == (1797, 1, 8, 8) and X.dtype == np.float32
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert sorted(np.unique(y)) == list(range(10))


def test_eval_split_is_fixed_and_disjoint_from_training():
    a, b = tasks.get("digits", width=0.25, epochs=4), tasks.get("digits", width=0.25, epochs=4)
    Xa, ya = a.eval_data()
    Xb, yb = b.eval_data()
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(ya, yb)
    Xt, _ = a.train_data()
    assert len(Xa) + len(Xt) == 1797 and len(Xa) == 359
    seen = {x.tobytes() for x in Xt}
    assert sum(x.tobytes() in seen for x in Xa) < 20  # a few digits images are exact duplicates in the UCI set


def test_model_is_trained_once_then_loaded_from_cache():
    t = tasks.get("digits", width=0.25, epochs=4)
    net = t.model()
    path = t.weights_path()
    assert path.is_file()
    mtime = path.stat().st_mtime_ns
    again = tasks.get("digits", width=0.25, epochs=4).model()
    assert path.stat().st_mtime_ns == mtime
    for (n1, p1), (n2, p2) in zip(net.state_dict().items(), again.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    X, y = t.eval_data()
    with torch.no_grad():
        acc = (net(torch.from_numpy(X)).argmax(1).numpy() == y).mean()
    assert acc > 0.85  # a quarter-width net after 4 epochs; the full one reaches >= 0.98 (test_digits_full.py)


def test_one_seed_trains_one_model_whatever_ran_before(tmp_path, monkeypatch):
    trained = []
    for i, noise in enumerate((0, 5)):
        monkeypatch.setenv("AUTOPRUNE_CACHE", str(tmp_path / f"cache{i}"))
        torch.rand(noise)  # the process's global RNG in another state, as after other work
        before = torch.get_rng_state()
        trained.append(DigitsTask(width=0.125, epochs=1).model().state_dict())
        assert torch.equal(torch.get_rng_state(), before)  # training leaves the caller's RNG alone
    for (n1, p1), (n2, p2) in zip(trained[0].items(), trained[1].items()):
        assert n1 == n2 and torch.equal(p1, p2), n1


@pytest.mark.parametrize("options, key", [({"width": 0.0}, "width"), ({"epochs": 0}, "epochs"), ({"seed": "x"}, "seed")])
def test_bad_options_name_the_option(options, key):
    with pytest.raises(ConfigError, match=key):
        DigitsTask(**options)


def test_unknown_task_lists_known_ones():
    with pytest.raises(ConfigError, match="digits"):
        tasks.get("cifar-1000")
    with pytest.raises(ConfigError, match="unknown_option"):
        tasks.get("digits", unknown_option=1)


def test_user_task_from_module_reference(tmp_path, monkeypatch):
    (tmp_path / "mytask.py").write_text(
        "from autoprune.tasks.digits import DigitsTask\n"
        "def make_task(**options):\n"
        "    t = DigitsTask(width=0.25, epochs=4)\n"
        "    t.name = 'mine'\n"
        "    return t\n"
        "def not_a_task():\n"
        "    return 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    t = tasks.get("mytask:make_task")
    assert t.name == "mine" and t.example_input().shape == (1, 1, 8, 8)
    with pytest.raises(ConfigError, match="expected autoprune.tasks.Task"):
        tasks.get("mytask:not_a_task")
    with pytest.raises(ConfigError, match="cannot be imported"):
        tasks.get("mytask:missing")
    sys.modules.pop("mytask", None)
