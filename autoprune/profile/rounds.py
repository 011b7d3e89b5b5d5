"""Interleaved measurement rounds: the protocol behind a confirmed latency.

One timed window lands in one moment of the machine. A shared machine runs at two speeds for
seconds at a time (another tenant on the same core, or not), so one window says which
moment it was as much as how fast the model is. Measuring several models round-robin, in
alternating order, in many short rounds spreads each model's rounds over the whole run so
slow and fast moments hit them alike; a model's latency is then the trimmed mean of its
round medians. A mean, not a median, across rounds: with two speed modes a median of a few
rounds jumps between them where a mean averages them.

The study's confirmation pass, ``autoprune profile --rounds`` and the quickstart benchmark's
re-check all use :func:`measure_rounds` and :func:`trimmed_mean`, so a re-measurement repeats
the protocol that produced the reported number. Nothing here imports torch.
"""

from __future__ import annotations

import os
import statistics
from typing import Hashable, Mapping

from ..exceptions import ProfilerError
from ..metrics import Metric
from .base import Measurement, Profiler

__all__ = ["TRIM", "TRIMMED_MEAN", "trimmed_mean", "round_fastest", "fastest_run", "measure_rounds", "round_latency"]

TRIM = 0.1  # fraction cut from each end of the sorted round values (one from each end at 10 rounds)
TRIMMED_MEAN = f"{TRIM:.0%}-trimmed mean"


def trimmed_mean(values: list[float], trim: float = TRIM) -> float:
    """Mean of ``values`` after cutting ``int(trim * n)`` from each end (a plain mean under 1/trim values).

    The same cut as ``scipy.stats.trim_mean``, without importing scipy on the device side.

    Raises:
        ValueError: ``values`` is empty.
    """
    if not values:
        raise ValueError("trimmed_mean of no values")
    cut = int(trim * len(values))
    return statistics.fmean(sorted(values)[cut:len(values) - cut])


def round_fastest(m: Measurement) -> float:
    """One round's fastest run (ms); its median from an agent that does not send it."""
    return m.latency.get("min_ms", m.latency["median_ms"])


def fastest_run(rounds: list[Measurement]) -> float:
    """The fastest single run over ``rounds`` (ms): the device's undisturbed speed, what a cost model is fitted to.

    A shared VM's core can be slowed by a neighbour most of the time (1.3-1.9x on this project's
    2-vCPU AMD EPYC hosts, with no steal time showing) and run undisturbed for moments shorter
    than a round, so a round's median mostly measures the neighbour. Two passes of 10 rounds of
    0.25 s over 24 models there: summaries of the round medians moved 1.1-25 % between passes
    (median over models), the fastest run 0.2 % (``benchmarks/results/round_statistic-epyc-avx2.txt``).
    On a quiet device the two differ by the run-to-run spread, a few per cent.
    """
    return min(round_fastest(m) for m in rounds)


def measure_rounds(
    profiler: Profiler,
    models: Mapping[Hashable, str | os.PathLike],
    rounds: int,
    window_s: float | None = None,
) -> tuple[dict[Hashable, list[Measurement]], dict[Hashable, str]]:
    """Measure every model once per round, round-robin, alternating the order each round.

    Args:
        profiler: Takes each measurement.
        models: ``{key: ONNX path}``, in the order of the first round.
        rounds: Rounds (>= 1).
        window_s: Timed window per measurement (the profiler's ``min_duration_s``); None keeps the profile's.

    Returns:
        ``(measurements, failed)``: the measurements of each model that never failed, in round
        order, and ``{key: reason}`` for models whose measurement failed (left out of later rounds).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    results: dict[Hashable, list[Measurement]] = {k: [] for k in models}
    failed: dict[Hashable, str] = {}
    live = list(models.items())
    if window_s is not None:
        profiler = profiler.with_settings(min_duration_s=window_s)
    for k in range(rounds):
        for key, path in (live if k % 2 == 0 else live[::-1]):
            try:
                results[key].append(profiler.measure(path))
            except ProfilerError as e:
                failed[key] = str(e)
        live = [(key, path) for key, path in live if key not in failed]
    return {k: v for k, v in results.items() if k not in failed}, failed


def round_latency(rounds: list[Measurement], statistic: str = "median") -> Metric:
    """One model's latency over its rounds: the trimmed mean of the rounds' ``statistic`` ("median" or "p90").

    ``how`` says what was averaged, its range and each round's window; the source is the rounds'.
    """
    if statistic == "median":
        values, what = [m.latency_ms.value for m in rounds], "round medians"
    elif statistic == "p90":
        values, what = [m.latency["p90_ms"] for m in rounds], "round 90th percentiles"
    else:
        raise ValueError(f"statistic must be 'median' or 'p90', got {statistic!r}")
    s = rounds[0].settings
    how = (f"{TRIMMED_MEAN} of {len(values)} {what} ({min(values):.4g}-{max(values):.4g} ms), "
           f"each round >= {s.get('repetitions')} runs in a >= {s.get('min_duration_s')}-s window")
    return Metric(trimmed_mean(values), "ms", rounds[0].latency_ms.source, how)
