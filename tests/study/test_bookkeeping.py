"""The runner's per-trial bookkeeping does as much at trial 200 as at trial 10, and keeps the files a rebuild writes.

The candidate is the FAKE of ``benchmarks/bookkeeping.py`` (no build, no ONNX, seeded-RNG
metrics of the real shape, 1 trial in 50 failing): what is under test is the bookkeeping,
on a real SQLite storage. The timing goal lives in that benchmark, not here: these tests
count work instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path

import optuna
import pytest

from autoprune.exceptions import CandidateError
from autoprune.study import bookkeeping, write_outputs
from autoprune.study.bookkeeping import Bookkeeping
from autoprune.study.progress import ProgressBar
from autoprune.study.records import CONFIRMATION_ATTR

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bookkeeping_benchmark", ROOT / "benchmarks" / "bookkeeping.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CountingStorage:
    """An Optuna storage that counts the reads made while ``counting`` is set: calls and trials returned."""

    def __init__(self, inner: optuna.storages.BaseStorage) -> None:
        self._inner = inner
        self.counting = False
        self.reads = 0
        self.trials_read = 0

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if not (name.startswith("get_") and callable(attr)):
            return attr

        def counted(*args, **kwargs):
            result = attr(*args, **kwargs)
            if self.counting:
                self.reads += 1
                self.trials_read += len(result) if name == "get_all_trials" else 0
            return result

        return counted


class Counted:
    """Wraps a function and counts its calls."""

    def __init__(self, fn) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def _optimize(study, books, fake, n, per_trial=None):
    callback = books if per_trial is None else per_trial
    with contextlib.redirect_stdout(io.StringIO()):  # the bar writes each FAKE failure's line there
        study.optimize(fake, n_trials=n, catch=(CandidateError,), callbacks=[callback])


def _rebuilt(url: str, out: Path) -> dict[str, str]:
    """trials.csv and front.json as a from-scratch rebuild (another process's view of the storage) writes them."""
    out.mkdir()
    write_outputs(optuna.load_study(study_name="fake", storage=url), out, ["accuracy", "latency_ms"])
    return {f: (out / f).read_text() for f in ("trials.csv", "front.json")}


def _kept(out: Path) -> dict[str, str]:
    return {f: (out / f).read_text() for f in ("trials.csv", "front.json")}


def test_work_per_trial_does_not_grow_with_the_study(tmp_path, bench, monkeypatch):
    storage = CountingStorage(optuna.storages.InMemoryStorage())  # counts, not timings: any storage will do
    study = bench.fake_study(storage)
    rows, points = Counted(bookkeeping.trial_row), Counted(bookkeeping.point_json)
    monkeypatch.setattr(bookkeeping, "trial_row", rows)
    monkeypatch.setattr(bookkeeping, "point_json", points)
    books = Bookkeeping(tmp_path, ["accuracy", "latency_ms"], ProgressBar(200, 0, enabled=False))
    books.start(study)
    work = {}

    def per_trial(study, trial):
        storage.counting, storage.reads, storage.trials_read = True, 0, 0
        rows.calls = points.calls = 0
        books(study, trial)
        storage.counting = False
        work[trial.number] = (storage.reads, storage.trials_read, rows.calls, points.calls)

    _optimize(study, books, bench.FakeCandidate(), 201, per_trial)
    assert len(books.front) >= 5  # a front that moves, so the counts below cover real updates
    for n in (10, 200):
        reads, trials_read, rows_made, points_made = work[n]
        assert (reads, trials_read) == (0, 0), f"trial {n}: the bookkeeping read the storage"
        assert rows_made == 1, f"trial {n}: {rows_made} trials.csv rows rendered"
        assert points_made <= 1, f"trial {n}: {points_made} front points rendered"  # only a point joining the front


def test_kept_files_equal_a_rebuild_from_storage(tmp_path, bench):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = bench.fake_study(url)
    study.enqueue_trial({}, user_attrs={"baseline": "dense-fp32"})  # a waiting trial when the run starts
    books = Bookkeeping(tmp_path, ["accuracy", "latency_ms"], ProgressBar(60, 0, enabled=False))
    books.start(study)
    _optimize(study, books, bench.FakeCandidate(layers=2), 60)

    kept = _kept(tmp_path)
    assert kept == _rebuilt(url, tmp_path / "rebuilt")
    assert len(kept["trials.csv"].splitlines()) == 61  # the header, one row per trial
    assert ",FAIL," in kept["trials.csv"] and ",dense-fp32," in kept["trials.csv"]


def test_a_resumed_study_rebuilds_once_then_goes_on(tmp_path, bench):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = bench.fake_study(url)
    books = Bookkeeping(tmp_path, ["accuracy", "latency_ms"])
    books.start(study)
    _optimize(study, books, bench.FakeCandidate(layers=2), 30)

    # The run dies mid-row; before the next one the study gains a confirmation (the first front
    # point re-measured 40 % slower), a dense test accuracy (a new trials.csv column) and a waiting trial.
    csv_path = tmp_path / "trials.csv"
    csv_path.write_text(csv_path.read_text()[:-40])
    (tmp_path / "front.json").unlink()
    first = books.front[0].trial
    slower = dict(first.user_attrs["metrics"]["latency_ms"], value=first.user_attrs["metrics"]["latency_ms"]["value"] * 1.4, how="FAKE confirmation")
    study.set_user_attr(CONFIRMATION_ATTR, {"settings": {"rounds": 3}, "passes": 1, "complete": True, "failed": [],
                                            "trials": {str(first.number): {"sha256": first.user_attrs["sha256"], "metrics": {"latency_ms": slower}}}})
    study.set_user_attr("dense", {**study.user_attrs["dense"], "test_accuracy": {"value": 0.9, "unit": "", "source": "measured", "how": "FAKE"}})
    study.enqueue_trial({}, user_attrs={"baseline": "dense-int8"})

    resumed = bench.fake_study(url)  # a new process: its own storage object
    again = Bookkeeping(tmp_path, ["accuracy", "latency_ms"], ProgressBar(60, 30, enabled=False, trials=resumed.get_trials()))
    again.start(resumed)
    at_start = _rebuilt(url, tmp_path / "at-start")
    assert _kept(tmp_path)["front.json"] == at_start["front.json"]
    finished = "".join(line for line in at_start["trials.csv"].splitlines(keepends=True) if ",WAITING," not in line)
    assert _kept(tmp_path)["trials.csv"] == finished  # the waiting trial gets its row when it finishes
    _optimize(resumed, again, bench.FakeCandidate(layers=2, seed=1), 30)

    kept = _kept(tmp_path)
    assert kept == _rebuilt(url, tmp_path / "rebuilt")
    assert "test_accuracy" in kept["trials.csv"].splitlines()[0]
    assert '"n_confirmed": 1' in kept["front.json"]
