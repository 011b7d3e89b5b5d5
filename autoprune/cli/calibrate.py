"""``autoprune calibrate --device PROFILE``: fit a device's latency cost model and point its profile at it.

Probe models and zoo plans are built and timed through the device's own profiler
(:func:`autoprune.costmodel.calibrate.calibrate`); the fitted calibration is written as JSON
(default ``<profile's directory>/calibrations/<device name>.json``) and the profile's
``calibration:`` key is set to it, relative to the profile, by a text edit that keeps the
file's comments. Everything the user gave is checked before anything is built or written.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

__all__ = ["register", "run", "set_calibration_key"]

# The top-level key only (no indentation), with the comment after its value, which is kept.
_KEY_RE = re.compile(r"^calibration\s*:[^#\n]*?(?P<comment>\s+#.*)?$", re.MULTILINE)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate", help="fit a device's latency cost model (for search.mode model / hybrid)",
        description="Build probe models and zoo plans, time them on the device through its profiler, fit the "
                    "per-kernel cost model, print its held-out error, write it as JSON and set the device "
                    "profile's calibration: key to it.",
    )
    p.add_argument("--device", required=True, metavar="NAME_OR_YAML", help="device profile: a YAML path or a name in device_profiles/")
    p.add_argument("--budget-minutes", type=float, default=12.0, metavar="M", help="wall-time budget of the calibration (default 12)")
    p.add_argument("--out", metavar="PATH", help="calibration file (default: <profile's directory>/calibrations/<device name>.json)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the probe and plan draws (default 0)")
    p.add_argument("--rounds", type=int, metavar="R",
                   help="interleaved timing rounds per model (default 4: autoprune.costmodel.calibrate.ROUNDS)")
    p.add_argument("--leave-out", default="", metavar="FAMILY[,FAMILY]",
                   help="zoo families not to calibrate on (to see the error on an unseen family)")
    p.set_defaults(func=run)


def set_calibration_key(text: str, value: str, label: str) -> str:
    """``text`` (a device profile's YAML) with its top-level ``calibration:`` set to ``value``; comments kept.

    The existing ``calibration:`` line is replaced, or one is appended.

    Raises:
        ConfigError: the edited text would not read back with ``calibration`` equal to ``value``
            (e.g. the key is written in a form this edit does not handle).
    """
    import yaml

    from ..exceptions import ConfigError

    line = yaml.safe_dump({"calibration": value}, default_flow_style=False, width=10_000).rstrip("\n")
    found = _KEY_RE.findall(text)
    if len(found) > 1:
        raise ConfigError(f"{label}: calibration: appears {len(found)} times; leave one and rerun")
    if found:
        edited = _KEY_RE.sub(lambda m: line + (m.group("comment") or ""), text, count=1)
    else:
        edited = text + ("" if not text or text.endswith("\n") else "\n") + line + "\n"
    try:
        data = yaml.safe_load(edited)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict) or data.get("calibration") != value:
        raise ConfigError(f"{label}: cannot set calibration: by a line edit (is it a multi-line value?); "
                          f"set it to {value!r} by hand")
    return edited


def _check(args: argparse.Namespace):
    """The device profile, calibration path, profile path and families, or a ConfigError naming the flag or file."""
    from .. import zoo
    from ..costmodel.targets import TARGETS
    from ..device import load_device_profile
    from ..exceptions import ConfigError

    if not args.budget_minutes > 0:
        raise ConfigError(f"--budget-minutes must be > 0, got {args.budget_minutes:g}")
    if args.rounds is not None and args.rounds < 1:
        raise ConfigError(f"--rounds must be >= 1, got {args.rounds}")
    leave_out = tuple(f.strip() for f in args.leave_out.split(",") if f.strip())
    unknown = [f for f in leave_out if f not in zoo.names()]
    if unknown:
        raise ConfigError(f"--leave-out: unknown zoo family {unknown[0]!r} (known: {', '.join(zoo.names())})")
    device = load_device_profile(args.device)
    profile = Path(device.path)
    if device.profiler.kind in TARGETS or device.target is not None:
        raise ConfigError(f"{profile}: profiler kind {device.profiler.kind!r} is a modelled target (its latency is computed "
                          "from the graph by its target: parameters): nothing to calibrate")
    if not profile.is_file() or not os.access(profile, os.W_OK) or not os.access(profile.parent, os.W_OK):
        raise ConfigError(f"{profile}: the device profile must be a writable file (its calibration: key is set)")
    out = Path(args.out) if args.out else profile.parent / "calibrations" / f"{device.name}.json"
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory; give the calibration file's path")
    if out.suffix != ".json":
        raise ConfigError(f"--out {out}: a calibration file ends in .json")
    set_calibration_key(profile.read_text(), _relative(out, profile), str(profile))  # fails now, not after the budget
    return device, profile, out, leave_out


def _relative(out: Path, profile: Path) -> str:
    """``out`` as the profile's ``calibration:`` names it: relative to the profile's directory, with ``/``."""
    return Path(os.path.relpath(out.resolve(), profile.resolve().parent)).as_posix()


NOISY_WITHIN_10 = 0.9  # below this share of repeated timings within +/-10 % of each other, calibrate says the machine is noisy


def noise_note(heldout: dict[str, float]) -> str | None:
    """A line for a calibration whose repeated timings disagree (``heldout["repeat_within_10"]`` below
    :data:`NOISY_WITHIN_10`); None when they agree or were not taken."""
    if not heldout.get("repeat_n") or heldout["repeat_within_10"] >= NOISY_WITHIN_10:
        return None
    return (f"note: this machine's timings did not repeat ({_percent(1 - heldout['repeat_within_10'])} of the models timed "
            f"twice differ by more than 10 %): the calibration is fitted to noise as much as to the device; "
            f"calibrate again when it is quiet, or with more --rounds")


def _percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def run(args: argparse.Namespace) -> int:
    from .._schema import atomic_write_text
    from ..costmodel.calibrate import ROUNDS, calibrate
    from ..costmodel.calibrated import load_device_calibration
    from ..costmodel.calibration import CalibrationError
    from ..device import load_device_profile
    from ..exceptions import AutopruneError

    device, profile, out, leave_out = _check(args)
    progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        result = calibrate(device, args.budget_minutes, seed=args.seed, rounds=args.rounds or ROUNDS, leave_out=leave_out,
                           log=progress)
    except ValueError as e:  # too few models measured to fit (fit, or the held-out draw, refuses)
        if isinstance(e, AutopruneError):  # already says what is wrong (a ConfigError is a ValueError too)
            raise
        raise CalibrationError(f"calibrating {device.name} ({profile}): {e}; give a larger --budget-minutes") from None
    cal = result.calibration
    cal.save(out)
    rel = _relative(out, profile)
    atomic_write_text(profile, set_calibration_key(profile.read_text(), rel, str(profile)))
    load_device_calibration(load_device_profile(profile))  # the profile now resolves to this file, for this device

    notes, h, s = cal.notes, cal.heldout, result.seconds
    print(f"calibration: {out} (written; {profile} now has calibration: {rel})")
    print(f"models: {notes.get('models')} measured on {device.name} ({notes.get('probe_models')} probes, "
          f"{notes.get('zoo_models')} zoo plans), {notes.get('rounds')} interleaved rounds of "
          f"{1e3 * notes.get('window_s', 0):.0f}-ms windows each (latency: the fastest run over the rounds, the device undisturbed)")
    how = ("per-kernel coefficients fitted on onnxruntime's per-kernel profile, overhead and scale on whole-model latencies"
           if cal.method == "kernel-profile" else "per-kernel coefficients fitted on whole-model latencies")
    print(f"method: {cal.method} ({how})")
    if h.get("n"):
        print(f"held-out error: {int(h['n'])} models predicted by a fit without them, against their measured latency: "
              f"MAPE {_percent(h['mape'])}, {_percent(h['within_10'])} within +/-10 %, "
              f"p90 absolute error {_percent(h['p90_abs'])}")
        if h.get("repeat_n"):
            print(f"the measurements' own repeatability: {int(h['repeat_n'])} of those models timed twice in the same rounds, "
                  f"one fastest run against the other: MAPE {_percent(h['repeat_mape'])}, "
                  f"{_percent(h['repeat_within_10'])} within +/-10 %, p90 absolute error {_percent(h['repeat_p90_abs'])} "
                  f"(no prediction can be shown closer than this)")
            note = noise_note(h)
            if note:
                print(note)
    else:
        print("held-out error: none (no model was held out)")
    print(f"time: {s['total']:.1f} s (measured wall time: build {s['build']:.1f} s, timing {s['time']:.1f} s, "
          f"kernel profiling {s['kernels']:.1f} s; budget {args.budget_minutes:g} min)")
    return 0
