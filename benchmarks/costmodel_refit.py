"""Refit a cost-model benchmark's timings with this autoprune's features, without timing anything again.

Takes a ``benchmarks/costmodel.py --dump DIR`` (every calibration and held-out model's ONNX file and
its timings, ``data.json``), reads each model's kernels with this checkout's :mod:`autoprune.costmodel.kernels`,
fits the calibration models (the whole-model fit, the method every calibration on this project's hosts has
chosen) at the vector blocks the run's calibration chose (``--calibration``, its ``costmodel-calibration.json``),
and reports what ``benchmarks/costmodel.py`` reports against the fastest run:

* the calibration models' own ``--folds``-fold held-out error, all of them and the zoo plans alone, and the
  mean Kendall tau of random 10-plan draws of one zoo family (the criterion a feature is chosen on: it
  uses none of the benchmark's held-out models);
* the benchmark's held-out models: share within +/-10 % and MAPE for the held-out plans and the left-out
  family, Kendall tau over the plans of each model beside the measurements' own floor (odd vs even rounds).

So a feature can be judged on a run's timings first, then confirmed by a run with new draws. The timings
are the dump's: the numbers say ``refitted``, never ``measured`` anew.

Usage: python benchmarks/costmodel_refit.py DUMP --calibration CAL.json [--device local-cpu] [--folds 5] [--results FILE]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoprune._schema import atomic_write_text  # noqa: E402
from autoprune.costmodel.calibrate import kernels_of  # noqa: E402
from autoprune.costmodel.calibration import VERSION, errors, fit  # noqa: E402
from autoprune.device import load_device_profile  # noqa: E402


def _tau(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def _cv(samples, ms: np.ndarray, kinds: list[str], blocks, folds: int) -> tuple[dict, float]:
    """Each calibration model predicted by a fit without its fold: errors of all, of the zoo plans, and zoo tau."""
    order = np.random.default_rng(0).permutation(len(samples))
    pred = np.zeros(len(samples))
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        part = fit([samples[i] for i in train], ms[train], {}, blocks=blocks)
        pred[test] = [part.predict(samples[i]).latency_ms for i in test]
    zoo = [i for i, k in enumerate(kinds) if k.startswith("zoo:")]
    by = collections.defaultdict(list)
    for i in zoo:
        by[kinds[i]].append(i)
    rng = np.random.default_rng(1)
    taus = [_tau(pred[s], ms[s]) for idx in by.values() if len(idx) >= 10
            for s in (rng.choice(idx, size=10, replace=False) for _ in range(20))]
    return {"all": errors(pred, ms), "zoo plans": errors(pred[zoo], ms[zoo])}, float(np.mean(taus)) if taus else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dump", type=Path)
    ap.add_argument("--calibration", type=Path, required=True, help="the run's calibration JSON (its chosen vector blocks)")
    ap.add_argument("--device", default="local-cpu", help="the profile the run calibrated (its graph level reads the kernels)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--results", type=Path, help="write the report here too (.txt)")
    args = ap.parse_args(argv)
    data = json.loads((args.dump / "data.json").read_text())
    blocks = {k: (int(v[0]), int(v[1])) for k, v in json.loads(args.calibration.read_text())["blocks"].items()}
    device = load_device_profile(args.device)
    read = lambda m: kernels_of(args.dump / m["path"], device)  # noqa: E731  (at the level its calibration read them)
    cal = data["calibration"]
    samples = [read(m) for m in cal]
    ms = np.array([m["ms"] for m in cal])
    kinds = [m["kind"] for m in cal]
    lines = [f"refit of {args.dump} ({len(cal)} calibration models, {len(data['heldout'])} held-out) with calibration "
             f"version {VERSION}'s features, at the run's blocks " + ", ".join(f"{k} {v[0]}x{v[1]}" for k, v in sorted(blocks.items()))
             + "; timings as the dump recorded them (refitted, not measured again)"]
    cv, tau = _cv(samples, ms, kinds, blocks, args.folds)
    lines.append(f"calibration models, {args.folds}-fold held-out: " + "; ".join(
        f"{label} {int(e['n'])}: within +/-10 % {e['within_10']:.1%}, MAPE {e['mape']:.2%}" for label, e in cv.items())
        + f"; zoo plans' Kendall tau over random 10-plan draws of one family {tau:.3f}")
    model = fit(samples, ms, {}, blocks=blocks)
    held = data["heldout"]
    meas = {h["name"]: min(h["rounds_min"]) for h in held}
    pred = {h["name"]: model.predict(read(h)).latency_ms for h in held}
    left = set(data.get("leave_out", []))
    for label, group in (("held-out plans", [h for h in held if h["family"] not in left]),
                         (f"left-out family ({', '.join(sorted(left))})", [h for h in held if h["family"] in left])):
        if group:
            e = errors([pred[h["name"]] for h in group], [meas[h["name"]] for h in group])
            lines.append(f"  {label}: {int(e['n'])} models, within +/-10 % {e['within_10']:.0%}, MAPE {e['mape']:.1%}")
    taus, floors = {}, {}
    for fam in sorted({h["family"] for h in held}):
        hs = [h for h in held if h["family"] == fam]
        if len(hs) < 3:  # as the benchmark: tau over fewer plans says nothing
            continue
        taus[fam] = _tau([pred[h["name"]] for h in hs], [meas[h["name"]] for h in hs])
        floors[fam] = _tau([min(h["rounds_min"][0::2]) for h in hs], [min(h["rounds_min"][1::2]) for h in hs])
    lines.append("  Kendall tau over the plans of one model (floor: odd vs even rounds): "
                 + ", ".join(f"{f} {taus[f]:.2f} ({floors[f]:.2f})" for f in taus)
                 + f"; mean {np.mean(list(taus.values())):.2f} ({np.mean(list(floors.values())):.2f})")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.results:
        atomic_write_text(args.results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
