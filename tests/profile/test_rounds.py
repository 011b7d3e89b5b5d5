"""Interleaved measurement rounds and the trimmed mean that summarises them."""

from __future__ import annotations

import dataclasses
import statistics
import time

import numpy as np
import pytest

from autoprune.device import load_device_profile
from autoprune.exceptions import ProfilerError
from autoprune.profile import LocalProfiler
from autoprune.profile.rounds import fastest_run, measure_rounds, round_latency, trimmed_mean

from test_local import tiny_onnx  # tests/profile is on sys.path (pytest rootdir import mode)


def test_trimmed_mean_cuts_one_value_from_each_end_at_ten():
    assert trimmed_mean([1.0, 2.0, 3.0]) == pytest.approx(2.0)  # under 10 values nothing is cut
    rounds = [1.0] * 5 + [1.6] * 4 + [50.0]  # one stray round does not move it
    assert trimmed_mean(rounds) == pytest.approx((1.0 * 4 + 1.6 * 4) / 8)
    with pytest.raises(ValueError, match="no values"):
        trimmed_mean([])


def test_a_mean_averages_two_speed_modes_where_a_median_jumps():
    # a bimodal machine (fast 1.0, slow 1.6): two re-measurements with 2 and 3 slow rounds of 5
    a, b = [1.0, 1.0, 1.6, 1.6, 1.6], [1.0, 1.0, 1.0, 1.6, 1.6]
    assert statistics.median(b) / statistics.median(a) == pytest.approx(1 / 1.6)
    assert abs(trimmed_mean(b) / trimmed_mean(a) - 1) < 0.11


def test_the_fastest_run_is_the_fastest_single_run_over_the_rounds(tmp_path):
    """What a cost model is fitted to: real rounds from the local profiler, each with its fastest run."""
    from autoprune.profile.timing import latency_stats

    assert latency_stats(np.array([3.0, 1.0, 2.0]) * 1e-3)["min_ms"] == pytest.approx(1.0)
    profiler = RecordingProfiler()
    got, _ = measure_rounds(profiler, {"m": tiny_onnx(tmp_path / "m.onnx")}, 3, window_s=0.02)
    rounds = got["m"]
    assert all(0 < m.latency["min_ms"] <= m.latency["median_ms"] for m in rounds)
    assert fastest_run(rounds) == min(m.latency["min_ms"] for m in rounds)
    # a round from an agent that does not send its fastest run counts its median
    older = dataclasses.replace(rounds[0], latency={k: v for k, v in rounds[0].latency.items() if k != "min_ms"})
    assert fastest_run([older]) == rounds[0].latency["median_ms"]


class RecordingProfiler(LocalProfiler):
    """The real local profiler that also records the order of its calls and the window it used;
    a FAKE failure for paths named ``broken-*``."""

    def __init__(self) -> None:
        device = load_device_profile("local-cpu")
        super().__init__(dataclasses.replace(device, profiler=dataclasses.replace(device.profiler, warmup=2, repetitions=5)))
        self.calls: list[tuple[str, float]] = []

    def measure(self, model_path, inputs=None):
        self.calls.append((str(model_path).rsplit("/", 1)[-1], self.device.profiler.min_duration_s))
        if "broken" in str(model_path):
            raise ProfilerError(f"{model_path}: cannot be measured")
        return super().measure(model_path, inputs)


def test_rounds_alternate_the_order_and_use_the_window(tmp_path):
    models = {k: tiny_onnx(tmp_path / f"{k}.onnx") for k in ("a", "b", "c")}
    prof = RecordingProfiler()
    window = prof.device.profiler.min_duration_s
    t0 = time.perf_counter()
    results, failed = measure_rounds(prof, models, rounds=3, window_s=0.02)
    assert not failed and all(len(v) == 3 for v in results.values())
    assert [name for name, _ in prof.calls] == ["a.onnx", "b.onnx", "c.onnx", "c.onnx", "b.onnx", "a.onnx", "a.onnx", "b.onnx", "c.onnx"]
    assert {w for _, w in prof.calls} == {0.02}
    assert prof.device.profiler.min_duration_s == window  # the caller's profiler is left as it was
    assert time.perf_counter() - t0 >= 9 * 0.02
    assert all(m.latency_ms.source == "measured" for ms in results.values() for m in ms)


def test_with_settings_changes_a_copy_that_shares_the_profilers_state(tmp_path):
    prof = RecordingProfiler()
    window = prof.device.profiler.min_duration_s
    fast = prof.with_settings(min_duration_s=0.01, warmup=1)
    assert (fast.device.profiler.min_duration_s, fast.device.profiler.warmup) == (0.01, 1)
    assert (prof.device.profiler.min_duration_s, prof.device.profiler.warmup) == (window, 2)
    assert fast.measure(tiny_onnx(tmp_path / "a.onnx")).settings["min_duration_s"] == 0.01
    assert prof.calls == [("a.onnx", 0.01)]  # state (here the call log; sessions, pools) is shared
    with pytest.raises(TypeError, match="no_such_setting"):
        prof.with_settings(no_such_setting=1)


def test_a_failing_model_leaves_the_rounds_and_is_reported(tmp_path):
    models = {"ok": tiny_onnx(tmp_path / "ok.onnx"), "bad": tiny_onnx(tmp_path / "broken-1.onnx")}
    prof = RecordingProfiler()
    results, failed = measure_rounds(prof, models, rounds=3)
    assert set(results) == {"ok"} and len(results["ok"]) == 3
    assert "cannot be measured" in failed["bad"]
    assert [name for name, _ in prof.calls].count("broken-1.onnx") == 1


def test_rounds_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        measure_rounds(RecordingProfiler(), {"a": tiny_onnx(tmp_path / "a.onnx")}, rounds=0)


def test_round_latency_averages_the_round_statistic_and_says_how(tmp_path):
    results, _ = measure_rounds(RecordingProfiler(), {"a": tiny_onnx(tmp_path / "a.onnx")}, rounds=3, window_s=0.01)
    rounds = results["a"]
    median, p90 = round_latency(rounds), round_latency(rounds, "p90")
    assert median.value == pytest.approx(statistics.fmean(m.latency_ms.value for m in rounds))
    assert p90.value == pytest.approx(statistics.fmean(m.latency["p90_ms"] for m in rounds)) and p90.value >= median.value
    assert median.source == "measured" and median.unit == "ms"
    assert median.how.startswith("10%-trimmed mean of 3 round medians") and ">= 0.01-s window" in median.how
    assert "3 round 90th percentiles" in p90.how
    with pytest.raises(ValueError, match="statistic must be"):
        round_latency(rounds, "mean")
