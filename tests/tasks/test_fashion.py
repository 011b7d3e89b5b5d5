"""Fashion-MNIST: the IDX reader on good and corrupt files, the splits, the shipped weights.

The data are Debian's ``dataset-fashion-mnist`` (installed by ``make test``); CI fails, not
skips, without them.
"""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest

from autoprune import tasks
from autoprune.exceptions import ConfigError
from autoprune.tasks import fashion
from autoprune.tasks.idx import IDXError, read_idx


def _idx(path, array: np.ndarray, magic: bytes | None = None, shape=None, compress=True) -> None:
    shape = array.shape if shape is None else shape
    head = (magic or bytes([0, 0, 8, array.ndim])) + struct.pack(f">{len(shape)}I", *shape)
    data = head + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)


def test_read_idx_round_trip(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    _idx(tmp_path / "x.gz", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz", 3, (28, 28)), a)


@pytest.mark.parametrize("defect, message", [
    ("missing", "file not found"),
    ("magic", "bad IDX magic"),
    ("count", "header says 3 items"),
    ("truncated", "not a complete gzip file"),
    ("not_gzip", "not a complete gzip file"),
    ("shape", "items of shape (27, 28)"),
])
def test_read_idx_rejects_corrupt_files_naming_them(tmp_path, defect, message):
    path = tmp_path / "bad-idx3-ubyte.gz"
    a = np.zeros((2, 28, 28), np.uint8)
    if defect == "magic":
        _idx(path, a, magic=b"\x00\x00\x0d\x03")
    elif defect == "count":
        _idx(path, a, shape=(3, 28, 28))
    elif defect == "truncated":
        _idx(path, a)
        path.write_bytes(path.read_bytes()[:-9])
    elif defect == "not_gzip":
        _idx(path, a, compress=False)
    elif defect == "shape":
        _idx(path, np.zeros((2, 27, 28), np.uint8))
    with pytest.raises(IDXError) as e:
        read_idx(path, 3, (28, 28))
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_corrupt_data_dir_says_which_four_files_to_put_where(tmp_path, monkeypatch):
    for name in fashion.FILES.values():
        shutil.copy(fashion.DEFAULT_DIR / name, tmp_path / name)
    (tmp_path / fashion.FILES["test_labels"]).write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ConfigError) as e:
        tasks.get("fashion", data_dir=str(tmp_path))
    msg = str(e.value)
    assert fashion.FILES["test_labels"] in msg and str(tmp_path) in msg and "\n" not in msg
    assert all(name in msg for name in fashion.FILES.values()) and fashion.ENV in msg
    monkeypatch.setenv(fashion.ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="nowhere.*file not found"):
        tasks.get("fashion")


def test_bad_options_name_the_option():
    with pytest.raises(ConfigError, match="option arch"):
        tasks.get("fashion", arch="vgg")
    with pytest.raises(ConfigError, match="option eval_samples"):
        tasks.get("fashion", eval_samples=10)


@pytest.fixture(scope="module")
def task():
    return tasks.get("fashion", arch="resnet")


def test_the_real_data_and_the_splits(task):
    Xtr, ytr = task.train_data()
    Xva, yva = task.validation_data()
    Xte, yte = task.test_data()
    assert Xtr.shape == (55_000, 1, 28, 28) and Xva.shape == (5_000, 1, 28, 28) and Xte.shape == (10_000, 1, 28, 28)
    assert Xtr.dtype == np.float32 and 0.0 <= Xtr.min() and Xtr.max() <= 1.0
    assert np.bincount(yte).tolist() == [1000] * 10  # the official test split is balanced
    # deterministic and disjoint: the two index sets partition the 60k training images
    tr, va = fashion.split_indices()
    tr2, va2 = fashion.split_indices()
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 60_000
    # the search evaluates on validation, never on test
    Xe, ye = task.eval_data()
    np.testing.assert_array_equal(Xe, Xva)
    sub = tasks.get("fashion", arch="resnet", eval_samples=1000)
    np.testing.assert_array_equal(sub.eval_data()[0], Xva[:1000])
    assert "subset of 1000" in sub.eval_description and "validation" in sub.eval_description


@pytest.mark.parametrize("arch", ["resnet", "mobilenetv2"])
def test_weights_not_shipped_are_trained_into_the_cache(model_cache, arch):
    t = tasks.get("fashion", arch=arch, epochs=2)  # another recipe than the shipped one: trained on first use
    assert t.shipped_weights() is None
    assert t.weights_path().parent == model_cache and arch in t.weights_path().name


@pytest.mark.parametrize("arch", ["resnet", "mobilenetv2"])
def test_shipped_weights_reach_92_percent_on_the_test_split(arch):
    from autoprune.tasks.training import accuracy

    t = tasks.get("fashion", arch=arch)
    assert t.shipped_weights() is not None and t.shipped_weights().stat().st_size < 5 * 2**20
    X, y = t.test_data()
    acc = np.mean([accuracy(t.model(), X[i : i + 2000], y[i : i + 2000]) for i in range(0, len(y), 2000)])
    assert acc >= 0.92, f"{arch}: test accuracy {acc:.4f}"
