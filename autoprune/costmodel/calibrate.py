"""``autoprune calibrate``: measure probe models on a device, fit its cost model, report held-out error.

The probes (:mod:`.probes`: single kernels swept over channels, kernels, strides, sizes and
alignment, fp32 and int8) and the zoo architectures at random plans are built as artifacts
are, then timed through **the device's own profiler** (local or agent) in interleaved rounds
(:func:`~autoprune.profile.rounds.measure_rounds`, the confirmation pass's protocol, with a
shorter window). A share of the models is held out of the fit and predicted: that error is
printed and stored; the stored coefficients are then refitted on every model. What the fit
cannot read from the graph is chosen the same way, on the held-out models: the device's vector
blocks (:func:`_choose_blocks`) and the fitting method.

The time is bounded by ``budget_minutes``: building stops at about 40 % of it, and the timing
window is sized so that the kernel profiles and the rounds fit in what is left.

What the calibration cannot see is the host's speed later: a shared VM runs at different speeds
for minutes at a time. An anchor tried in version 7 (some models timed again at the end in
longer rounds, every timing scaled by their median ratio) never found a faster device than the
calibration had, in three runs; the drift came later (docs/costmodel.md), so it was dropped.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from ..device import DeviceProfile
from ..profile import make_profiler
from ..profile.rounds import fastest_run, measure_rounds, trimmed_mean
from ..profile.timing import make_inputs, make_session
from .calibration import Calibration, errors, fit
from .kernels import BLOCK_CHOICES, Kernel, runtime_kernels

__all__ = ["Sample", "CalibrationRun", "calibrate", "device_facts", "graph_level", "kernels_of", "measure_models", "build_samples"]

BUILD_SHARE = 0.4  # of the budget spent building probes; the rest profiles their kernels and times them
REPEATS = 100  # held-out models timed twice: the timings' own repeatability, printed beside the held-out error
REPEAT = "#repeat"  # name suffix of a model's second set of rounds
MIN_WINDOW_S, MAX_WINDOW_S = 0.02, 0.25
# Interleaved rounds per model. On a noisy host the fastest run is found in more, shorter windows spread over
# time sooner than in fewer, longer ones: at about the same timing per model, 4 rounds repeated with a MAPE of
# 6.6-7.5 % where 3 repeated with 10.2-11.4 % (benchmarks/calibration_rounds.py, 150 calibration models traced
# together; benchmarks/results/calibration_rounds-epyc-avx2.txt)
ROUNDS = 4


@dataclasses.dataclass(frozen=True)
class Sample:
    """A calibration model: where it came from, its artifact and what its kernels are."""

    name: str
    kind: str  # probe kind, or "zoo:<family>"
    bits: int
    path: Path
    kernels: tuple[Kernel, ...]


@dataclasses.dataclass(frozen=True)
class CalibrationRun:
    """What a calibration did: the fitted model, every sample's measured and held-out predicted latency."""

    calibration: Calibration
    measured_ms: dict[str, float]
    heldout_predicted_ms: dict[str, float]
    samples: tuple[Sample, ...]
    seconds: dict[str, float]
    node_ms: dict[str, dict[str, float]] | None = None  # per model, each kernel's profiled time (local devices)


def graph_level(device: DeviceProfile) -> str:
    """``all`` for this machine's own runtime (fusions and layouts as its sessions run them), else ``extended``."""
    return "all" if device.profiler.kind == "local" else "extended"


def device_facts(device: DeviceProfile) -> dict[str, Any]:
    """What a calibration must match to be used: the profile and its settings, and this CPU (model and vector
    extension) and runtime for a local one."""
    s = device.profiler
    facts: dict[str, Any] = {"name": device.name, "profiler": s.kind, "threads": s.threads,
                             "execution_provider": s.execution_provider, "batch_size": s.batch_size}
    if s.kind == "local":
        import onnxruntime

        from ..profile.local import host_info

        # the model string alone does not tell a VM's CPUs apart ("AMD EPYC" with AVX2 or AVX-512)
        host = host_info()
        facts.update(cpu=str(host["cpu"]), vector_isa=host["vector_isa"], onnxruntime=onnxruntime.__version__)
    return facts


def kernels_of(path: str | Path, device: DeviceProfile, level: str | None = None) -> tuple[Kernel, ...]:
    """The kernels ``device``'s runtime executes for the artifact at ``path`` (inputs at the profile's batch size)."""
    s = device.profiler
    feeds = make_inputs(make_session(str(path), threads=s.threads), s.batch_size)
    return tuple(runtime_kernels(path, feeds, level or graph_level(device), threads=s.threads))


def kernel_times(path: str | Path, device: DeviceProfile, runs: int = 60, warmup: int = 10) -> dict[str, float]:
    """``{kernel name: ms}``: each kernel's trimmed mean time over ``runs``, from onnxruntime's own profiler.

    Only for this machine's runtime (a ``local`` profiler); the session is set up as the
    profiler's (threads, provider), with profiling on.
    """
    import json
    import os

    import onnxruntime as ort

    s = device.profiler
    with tempfile.TemporaryDirectory(prefix="autoprune-profile-") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = s.threads, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(str(path), so, providers=[s.execution_provider])
        feeds = make_inputs(session, s.batch_size)
        for _ in range(warmup + runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    times: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            times.setdefault(e["name"][:-len("_kernel_time")], []).append(e["dur"] / 1e3)
    return {name: trimmed_mean(v[-runs:]) for name, v in times.items()}


def repeatability(measured: Mapping[str, float]) -> dict[str, float]:
    """Errors (:func:`.calibration.errors`) of each ``<name>#repeat`` timing against ``<name>``'s in ``measured``.

    Two fastest runs of the same model, timed apart in the same interleaved run: the error the
    measurements themselves carry, so no prediction can be shown closer than this.
    """
    pairs = [(v, measured[k[:-len(REPEAT)]]) for k, v in measured.items() if k.endswith(REPEAT) and k[:-len(REPEAT)] in measured]
    return errors([a for a, _ in pairs], [b for _, b in pairs])


def measure_models(device: DeviceProfile, paths: dict[str, Path], rounds: int, window_s: float) -> dict[str, float]:
    """``{name: fastest run (ms)}`` (:func:`~autoprune.profile.rounds.fastest_run`), timed in interleaved rounds
    through the device's profiler.

    The cost model is fitted on the device's undisturbed speed. On a shared machine a neighbour
    slows most runs by 1.3-2x, in moments shorter than a round: the fastest run over the rounds
    repeats where round medians do not (up to calibration version 5 the fastest round's median; on
    a noisy host it repeated with a MAPE of 19 %, ``benchmarks/costmodel.py``; calibration version 6).
    """
    profiler = make_profiler(device).with_settings(warmup=5, repetitions=10)
    try:
        got, failed = measure_rounds(profiler, paths, rounds, window_s)
    finally:
        profiler.close()
    return {k: fastest_run(v) for k, v in got.items() if k not in failed}


def _probe_artifacts(seed: int, out: Path) -> Iterable[tuple[str, str, int, Path]]:
    import autoprune
    from ..space import discover
    from .probes import probes

    seen = set()
    for p in probes(seed):
        if p.name in seen:
            continue
        seen.add(p.name)
        space = discover(p.module, p.example_input, round_to=1)
        X = p.example_input.repeat(8, *([1] * (p.example_input.dim() - 1))).numpy()
        X = X + np.random.default_rng(len(seen)).standard_normal(X.shape).astype(np.float32)
        for bits in (32, 8):
            path = out / f"{p.name}-b{bits}.onnx"
            plan = space.plan_from_params(space.params_for(0.0, bits))
            autoprune.to_onnx(p.module, plan, p.example_input, path, X, space=space)
            yield f"{p.name}-b{bits}", p.kind, bits, path


def _zoo_artifacts(seed: int, out: Path, leave_out: tuple[str, ...]) -> Iterable[tuple[str, str, int, Path]]:
    import autoprune
    from .. import zoo
    from ..compress import BuildSettings
    from ..space import discover

    rng = np.random.default_rng(seed + 1)
    families = [f for f in zoo.names() if f not in leave_out]
    models, spaces = {}, {}
    settings = BuildSettings(bn_batches=1, finetune_steps=0, calibration_samples=32)
    k = 0
    while True:
        for fam in families:
            k += 1
            # Each plan's channel rounding drawn anew: counts in multiples of 8 and counts that are not
            # (round_to 1) run at different speeds per MAC, and a family calibrated on one kind only
            # mispredicts the other (an earlier draw per family left MobileNetV2 and RegNet unaligned only).
            round_to = int(rng.choice((1, 8)))
            if fam not in models:
                models[fam] = zoo.build(fam), zoo.example_input(fam)
            model, x = models[fam]
            if (fam, round_to) not in spaces:
                spaces[fam, round_to] = discover(model, x, max_ratio=0.9, round_to=round_to)
            space = spaces[fam, round_to]
            params = {f"ratio:{g.name}": round(float(rng.integers(0, int(g.max_ratio / 0.05) + 1)) * 0.05, 10)
                      for g in space.groups if g.max_ratio > 0}
            bits = int(rng.choice((8, 32)))
            params.update({f"bits:{q.name}": bits if bits in q.bits else 32 for q in space.layers if len(q.bits) > 1})
            plan = space.plan_from_params(params)
            X = zoo.example_input(fam, batch=32, seed=k).numpy()
            path = out / f"zoo-{fam}-{k}-b{bits}.onnx"
            autoprune.build(model, plan, X, x, out=path, settings=settings, space=space)
            yield f"zoo-{fam}-{k}-b{bits}", f"zoo:{fam}", bits, path


def build_samples(device: DeviceProfile, out: Path, seconds: float, *, seed: int = 0, zoo_share: float = 0.35,
                  leave_out: tuple[str, ...] = (), max_models: int = 2000, log: Callable[[str], None] = lambda s: None) -> list[Sample]:
    """Build probes and zoo plans into ``out`` for about ``seconds``, ``zoo_share`` of them zoo plans."""
    probe_it, zoo_it = _probe_artifacts(seed, out), _zoo_artifacts(seed, out, leave_out)
    samples: list[Sample] = []
    t0 = time.perf_counter()
    level = graph_level(device)
    while time.perf_counter() - t0 < seconds and len(samples) < max_models:
        source = zoo_it if (len(samples) + 1) * zoo_share >= sum(s.kind.startswith("zoo:") for s in samples) + 1 else probe_it
        name, kind, bits, path = next(source)
        samples.append(Sample(name, kind, bits, path, kernels_of(path, device, level)))
        if len(samples) % 25 == 0:
            log(f"  built {len(samples)} calibration models ({time.perf_counter() - t0:.0f} s)")
    return samples


def _window(budget_s: float, n: int, rounds: int) -> float:
    per = budget_s / max(1, n * rounds) - 0.01  # a session's start and warm-up take ~10 ms
    return float(min(MAX_WINDOW_S, max(MIN_WINDOW_S, per)))


def _choose_blocks(train: list[Sample], held: list[Sample], measured: dict[str, float], facts: dict[str, Any],
                   level: str) -> tuple[Calibration, dict[str, float]]:
    """The device's vector blocks on evidence: the whole-model fit at each of :data:`.kernels.BLOCK_CHOICES`, the
    one closest on the held-out models kept (an x86 core with AVX-512 packs fp32 GEMMs 32 wide, one with AVX2
    16 wide; another device's runtime, other widths). Returns that fit (its ``blocks`` are the choice) and every
    candidate's held-out MAPE."""
    by: dict[str, tuple[float, Calibration]] = {}
    for fp32, int8 in itertools.product(BLOCK_CHOICES["fp32"], BLOCK_CHOICES["int8"]):
        blocks = {"fp32": fp32, "int8": int8}
        part = fit([s.kernels for s in train], [measured[s.name] for s in train], facts, level=level, blocks=blocks)
        e = errors([part.predict(s.kernels).latency_ms for s in held], [measured[s.name] for s in held])
        by[f"fp32 {fp32[0]}x{fp32[1]}, int8 {int8[0]}x{int8[1]}"] = (e["mape"], part)
    best = min(by.values(), key=lambda v: v[0])[1]
    return best, {label: round(mape, 5) for label, (mape, _) in by.items()}


def calibrate(device: DeviceProfile, budget_minutes: float = 12.0, *, seed: int = 0, rounds: int = ROUNDS, holdout: float = 0.2,
              leave_out: tuple[str, ...] = (), log: Callable[[str], None] = lambda s: None, workdir: str | Path | None = None) -> CalibrationRun:
    """Build, measure and fit ``device``'s cost model within about ``budget_minutes``.

    Args:
        device: The device profile; its profiler (local or agent) times the models.
        budget_minutes: Wall-time budget of the whole calibration.
        seed: Probe and plan draws.
        rounds: Interleaved timing rounds per model.
        holdout: Share of models predicted from a fit without them (the printed error).
        leave_out: Zoo families not to calibrate on (to measure error on an unseen family).
        log: Progress lines.
        workdir: Where artifacts are written (a temporary directory by default).
    """
    budget = budget_minutes * 60.0
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autoprune-calibrate-") as tmp:
        out = Path(workdir or tmp)
        out.mkdir(parents=True, exist_ok=True)
        log(f"calibrating {device.name}: building probe models (~{BUILD_SHARE * budget:.0f} s)")
        samples = build_samples(device, out, BUILD_SHARE * budget, seed=seed, leave_out=leave_out, log=log)
        t_built = time.perf_counter()
        node_ms = None
        if device.profiler.kind == "local":  # onnxruntime's per-kernel profiler runs here only
            log(f"profiling the kernels of {len(samples)} models (onnxruntime's profiler)")
            node_ms = {s.name: kernel_times(s.path, device) for s in samples}
        t_kernels = time.perf_counter()
        # The held-out draw comes first: some of those models are timed twice, in the same rounds, so that
        # their held-out error is printed beside the error of the measurements themselves.
        rng = np.random.default_rng(seed + 2)
        held = set(rng.choice([s.name for s in samples], size=max(1, int(holdout * len(samples))), replace=False).tolist())
        repeats = set(rng.choice(sorted(held), size=min(REPEATS, len(held)), replace=False).tolist())
        paths = {s.name: s.path for s in samples}
        paths.update({f"{s.name}{REPEAT}": s.path for s in samples if s.name in repeats})
        left = budget - (t_kernels - t_start) - 10.0
        window = _window(left, len(paths), rounds)
        log(f"timing {len(samples)} models ({len(repeats)} of them twice): {rounds} interleaved rounds of "
            f"{window * 1e3:.0f}-ms windows on {device.name}")
        timed = measure_models(device, paths, rounds, window)
        t_timed = time.perf_counter()
    measured = {k: v for k, v in timed.items() if not k.endswith(REPEAT)}
    noise = repeatability(timed)
    samples = [s for s in samples if s.name in measured]
    held &= set(measured)
    if not held:
        raise ValueError("no held-out model could be timed")
    facts = device_facts(device)
    level = graph_level(device)
    train = [s for s in samples if s.name not in held]
    nodes = (lambda group: [node_ms[s.name] for s in group] if node_ms else None)  # noqa: E731
    whole, blocks_heldout = _choose_blocks(train, [s for s in samples if s.name in held], measured, facts, level)
    blocks = whole.blocks
    # The method on evidence: fitted on the same models both ways, the one closer on the held-out ones is kept.
    fits = {"whole-model": whole}
    if node_ms:
        fits["kernel-profile"] = fit([s.kernels for s in train], [measured[s.name] for s in train], facts,
                                     node_ms=nodes(train), level=level, blocks=blocks)
    heldout_by, predicted_by = {}, {}
    for method, part in fits.items():
        predicted_by[method] = {s.name: part.predict(s.kernels).latency_ms for s in samples if s.name in held}
        heldout_by[method] = errors(predicted_by[method].values(), [measured[k] for k in predicted_by[method]])
    method = min(heldout_by, key=lambda m: heldout_by[m]["mape"])
    predicted = predicted_by[method]
    heldout = {**heldout_by[method], **{f"repeat_{k}": v for k, v in noise.items()}}  # beside the measurements' own error
    seconds = {"build": t_built - t_start, "kernels": t_kernels - t_built, "time": t_timed - t_kernels}
    notes = {"models": len(samples), "probe_models": sum(not s.kind.startswith("zoo:") for s in samples),
             "zoo_models": sum(s.kind.startswith("zoo:") for s in samples), "left_out_families": list(leave_out),
             "rounds": rounds, "window_s": round(window, 4), "seconds": {k: round(v, 1) for k, v in seconds.items()},
             "seed": seed, "heldout_by_method": heldout_by, "heldout_mape_by_blocks": blocks_heldout}
    calibration = fit([s.kernels for s in samples], [measured[s.name] for s in samples], facts,
                      node_ms=nodes(samples) if method == "kernel-profile" else None, level=level, heldout=heldout, notes=notes,
                      blocks=blocks)
    seconds["total"] = time.perf_counter() - t_start
    return CalibrationRun(calibration, measured, predicted, tuple(samples), seconds, node_ms)
