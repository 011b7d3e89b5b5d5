"""Model coverage: every torchvision classification model and five Hugging Face classes through autoprune's public chain.

Each model (random weights, never downloaded; 64x64 images, Hugging Face models from small
configs, see ``benchmarks/coverage_job.py``) goes through what a new user would run:

1. ``autoprune.discover(model, x, probe=True)``; when it raises ``UnsupportedLayerError``, the
   modules it names are pasted into ``exclude`` and it is run again ("needed exclude");
2. a plan at ratio 0.5 everywhere (``space.params_for(0.5, bits)``), built with ``autoprune.build``
   at fp32 and at int8 (``BuildSettings(bn_batches=2, calibration_samples=16)``);
3. the fp32 ONNX: ``onnx.checker``, and onnxruntime's outputs vs the exported torch model's (within
   1e-3 of the output's largest magnitude, at least 1); the int8 ONNX runs, with the right shapes;
4. latency, measured with onnxruntime on one thread, batch 1: the dense fp32 ONNX, the pruned fp32
   and the pruned int8 artifacts, interleaved in shuffled order for ``--rounds`` rounds (each
   visit the median of 3-25 runs), as the CPU time of the inference thread (on a shared, niced
   core wall time mostly measures the neighbours; see ``coverage_job.interleaved``).
   ``speedup fp32`` = dense fp32 / pruned fp32 (pruning alone), ``speedup int8`` = dense fp32 / pruned int8 (the artifact vs the model as it came), each the
   median over rounds of the per-round ratio. The run's own noise: the dense model timed in a
   second session as if it were another model (its per-round ratio range, "A/A");
5. never broken: ``autoprune.compress.prune`` at each of ``--ratios`` (and the model ``build``
   exported at 0.5) either returns a model that runs on the example input with the dense output
   shapes and finite outputs (ok), or raises an autoprune error (refused); any other exception is
   "crashed" (an error, but not a clear one); a returned model that fails is "broken".

Torch-Pruning's own result comes from the same script: ``torch_pruning.pruner.MetaPruner`` with
``MagnitudeImportance(p=2)``, ratio 0.5, the model's output layers ignored, then the pruned
model is run ("runs": dense output shapes, finite, fewer parameters).

Each model runs in its own processes (autoprune and Torch-Pruning apart), pinned to one CPU,
with a budget of CPU time (``--timeout``; wall time up to 4x that, not counting time stopped) and
resident memory (``--mem-gb``); a job past it is killed and recorded with the stage it was in.
Results are appended to ``--jsonl`` (one line per model; the last line for a model wins), and the
table is rewritten to ``--md`` after every model.
Models run smallest first (torchvision's parameter counts), so a partial run covers the most.

Environment (torchvision does not import beside the pinned torch 2.13.0 CPU wheel; this pair
does, a CUDA build that runs on the CPU, ~5.5 GB)::

    python3 -m venv .venv-coverage
    .venv-coverage/bin/pip install torch==2.14.1 torchvision==0.29.1
    .venv-coverage/bin/pip install torch-pruning optuna onnx onnxruntime numpy pyyaml plotly tqdm scipy filelock transformers
    .venv-coverage/bin/pip install --no-deps -e .

Run::

    OMP_NUM_THREADS=1 nice -n 19 .venv-coverage/bin/python benchmarks/model_coverage.py [--only resnet18,hf_bert]
        [--resume] [--fresh] [--summary-only] [--timeout 300] [--mem-gb 8] [--ratios 0.05,0.3,0.55] [--rounds 5] [--cpu N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coverage_job import HF_MODELS, is_transformer

HERE = Path(__file__).resolve().parent
JOB = HERE / "coverage_job.py"
JOBS = ("autoprune", "torch_pruning")
GOAL_PASS = 74
WALL_FACTOR = 4  # a job's wall-time limit, in multiples of its CPU-time budget


def model_names() -> list[str]:
    """torchvision's classification models, smallest first, then the Hugging Face classes (all small)."""
    import torchvision.models as tvm

    size = {n: min(w.meta["num_params"] for w in tvm.get_model_weights(n)) for n in tvm.list_models(module=tvm)}
    return list(HF_MODELS) + sorted(size, key=lambda n: (size[n], n))


def _usage(pid: int) -> tuple[str, float, int]:
    """(state, CPU seconds, resident bytes) of process ``pid`` from /proc; ("", 0, 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        with open(f"/proc/{pid}/status") as f:
            rss = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:")), 0)
    except OSError:
        return "", 0.0, 0
    return fields[0], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), rss


def run_job(job: str, name: str, args: argparse.Namespace) -> dict:
    """One job in its own process, killed past its budget: ``args.timeout`` CPU seconds, or
    ``args.mem_gb`` resident, or ``WALL_FACTOR`` times the CPU budget in wall time while not stopped.

    The time budget is CPU time, so a model gets the same budget however loaded the machine is;
    the wall limit catches a job that hangs without computing. Time the job spends stopped
    (SIGSTOP, e.g. by someone who needs the CPUs quiet) counts against neither.
    """
    with tempfile.TemporaryDirectory() as tmp:
        result, log = Path(tmp) / "result.json", Path(tmp) / "log.txt"
        cmd = [sys.executable, str(JOB), job, name, str(result), "--ratios", args.ratios, "--rounds", str(args.rounds),
               "--mem-gb", str(args.mem_gb), "--timeout", str(args.timeout)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        pin = (lambda: os.sched_setaffinity(0, {args.cpu})) if args.cpu is not None else None
        last, active, cpu, peak, killed = time.monotonic(), 0.0, 0.0, 0, None
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=pin, cwd=HERE.parent)
            while proc.poll() is None:
                state, used, rss = _usage(proc.pid)
                now = time.monotonic()
                active += 0.0 if state == "T" else now - last
                last, cpu, peak = now, max(cpu, used), max(peak, rss)
                if peak > args.mem_gb * 2**30:
                    killed = f"MemoryBudget: over {args.mem_gb} GB resident"
                elif cpu > args.timeout:
                    killed = f"TimeBudget: over {args.timeout:.0f} CPU s"
                elif active > WALL_FACTOR * args.timeout:
                    killed = f"WallBudget: over {WALL_FACTOR * args.timeout:.0f} s running, {cpu:.0f} CPU s"
                if killed:
                    proc.kill()
                    proc.wait()
                    break
                time.sleep(0.25)
        r = json.loads(result.read_text()) if result.exists() else {"job": job, "model": name}
        r["wall_s"], r["cpu_s"], r["peak_rss_gb"] = round(active, 1), round(cpu, 1), round(peak / 2**30, 2)
        if killed:
            r["error"] = f"{killed} (in stage {r.get('stage', 'start')})"
        elif "error" not in r and r.get("stage") != "done":
            tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:]
            r["error"] = f"exit code {proc.returncode} in stage {r.get('stage', 'start')}: {' '.join(tail)[:300]}"
    return r


def load(path: Path) -> dict[str, dict]:
    records = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                records[rec["model"]] = rec
    return records


# -- the table ------------------------------------------------------------------------------
def _pruned(a: dict) -> bool:
    return a.get("pruned_groups", 0) > 0


def _passes(a: dict) -> bool:
    """The whole chain (discover, build fp32 and int8, ONNX checks, latency), with something pruned."""
    return bool(a.get("chain")) and "speedup_int8" in a and _pruned(a)


def _broken(a: dict) -> list[dict]:
    return [c for c in a.get("ratios", []) if c["outcome"] == "broken"]


def _faster(a: dict, key: str) -> bool:
    """Faster than dense beyond the run's own noise (the dense-vs-dense ratio's largest deviation)."""
    lo, hi = a.get("noise_aa", [1.0, 1.0])
    return a.get(key, 0.0) > max(hi, 1 / lo)


def _ratios_cell(a: dict) -> str:
    checks = a.get("ratios", [])
    if not checks:
        return ""
    counts = {k: sum(c["outcome"] == k for c in checks) for k in ("ok", "refused", "crashed", "broken")}
    return " ".join(f"{n} {k}" for k, n in counts.items() if n)


def _tp_cell(t: dict) -> str:
    if t.get("ok"):
        return f"runs ({t['params_kept']:.0%} params)"
    if t.get("outcome") == "broken":
        return "broken: " + t["error"].removeprefix("the returned model fails: ")[:70]
    if t.get("outcome") == "ok":
        return "runs, nothing pruned"
    return "fails: " + t.get("error", "not run")[:70]


def _row(name: str, rec: dict) -> str:
    a, t = rec.get("autoprune", {}), rec.get("torch_pruning", {})
    info = a or t
    num = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
    cells = [
        f"`{name}`", "transformer" if is_transformer(name) else "cnn", num(info.get("params", 0) / 1e6 or None, ".1f"),
        info.get("input", "").replace("image ", "").replace(" (int64)", ""),
        "y" if _passes(a) else "n", "y" if _pruned(a) else "n",
        f"{len(a['exclude'])}" if "exclude" in a else "", num(a.get("macs_kept"), ".0%"),
        num(a.get("fp32_max_abs_diff"), ".1e"), {True: "y", False: "n"}.get(a.get("int8_ok"), ""),
        num(a.get("speedup_fp32"), ".2f"), num(a.get("speedup_int8"), ".2f"),
        "" if "noise_aa" not in a else f"{a['noise_aa'][0]:.2f}-{a['noise_aa'][1]:.2f}",
        _ratios_cell(a), _tp_cell(t) if t else "not run", (a.get("error") or "").replace("|", "/")[:110],
    ]
    return "| " + " | ".join(cells) + " |"


def summarize(records: dict[str, dict], names: list[str], args: argparse.Namespace) -> str:
    ran = [n for n in names if n in records]
    ap = {n: records[n].get("autoprune", {}) for n in ran}
    tp = {n: records[n].get("torch_pruning", {}) for n in ran}
    passes = [n for n in ran if _passes(ap[n])]
    tp_runs = [n for n in ran if tp[n].get("ok")]
    transformers = [n for n in names if is_transformer(n)]
    t_ok = [n for n in transformers if n in ran and _passes(ap[n])
            and (ap[n].get("heads_pruned_groups", 0) + ap[n].get("linear_pruned_groups", 0)) > 0 and _faster(ap[n], "speedup_fp32")]
    t_int8 = [n for n in transformers if n in ran and _faster(ap[n], "speedup_int8")]
    broken = {n: _broken(ap[n]) for n in ran if _broken(ap[n])}
    crashed = [n for n in ran if any(c["outcome"] == "crashed" for c in ap[n].get("ratios", []))]
    checked = [n for n in ran if len(ap[n].get("ratios", [])) > 1]
    exclude_needed = [n for n in ran if ap[n].get("exclude")]
    exclude_not_tp = [n for n in exclude_needed if tp[n].get("ok")]
    missing = [n for n in names if n not in records]
    speedups = sorted(ap[n]["speedup_int8"] for n in passes)
    median = speedups[len(speedups) // 2] if speedups else float("nan")
    mark = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    partial = f" ({len(ran)} run so far)" if missing else ""
    host = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    try:
        host = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")) + f", {os.cpu_count()} CPUs"
    except (OSError, StopIteration):
        pass
    lines = [
        "# Model coverage (benchmarks/model_coverage.py)",
        "",
        f"{len(ran)} of {len(names)} models run; host {host}; every job pinned to one CPU, niced, with other work beside it; "
        f"latency measured with onnxruntime, 1 thread, batch 1, {args.rounds} interleaved rounds, as the inference thread's CPU time.",
        "",
        f"- **Pass the whole chain and prune something: {len(passes)} of {len(names)}**{partial} "
        f"(goal >= {GOAL_PASS} and >= Torch-Pruning's {len(tp_runs)}: {mark(len(passes) >= max(GOAL_PASS, len(tp_runs)))})",
        f"- Torch-Pruning alone (MetaPruner, magnitude, 0.5, output layers ignored) prunes to a model that runs: {len(tp_runs)} of {len(names)}",
        f"- Needed a hand-written exclude: {len(exclude_needed)}; of them, Torch-Pruning needs none on {len(exclude_not_tp)} "
        f"(goal 0: {mark(not exclude_not_tp)}){': ' + ', '.join(exclude_not_tp) if exclude_not_tp else ''}",
        f"- Transformers with heads or MLP pruned and pruned fp32 faster than dense fp32 beyond the run's A/A noise: "
        f"{len(t_ok)} of {len(transformers)} (goal all: {mark(len(t_ok) == len(transformers))}); "
        f"pruned int8 faster than dense fp32 beyond noise: {len(t_int8)} of {len(transformers)}",
        f"- Returned broken at some ratio: {len(broken)} models (goal 0: {mark(not broken)}){': ' + ', '.join(broken) if broken else ''}; "
        f"ratios checked on {len(checked)} models ({args.ratios} and the build at 0.5); raised an error that is not "
        f"autoprune's (crashed): {len(crashed)}{': ' + ', '.join(crashed) if crashed else ''}",
        f"- Median speedup int8 (dense fp32 / pruned int8) over the passing models: {median:.2f}x (measured)",
    ]
    if missing:
        lines.append(f"- Not run yet ({len(missing)}): {', '.join(missing)}")
    lines += [
        "",
        "Columns: **chain** passes discover, build fp32 and int8, ONNX checker, onnxruntime vs torch and latency, with "
        "something pruned; **excl** modules a user pasted into `exclude` from discover's errors; **MACs** kept at 0.5; "
        "**fp32 diff** max |onnxruntime - torch| of the fp32 artifact; **sp fp32** dense fp32 / pruned fp32, "
        "**sp int8** dense fp32 / pruned int8 (medians of per-round ratios of the inference thread's CPU time, measured); **A/A** the dense model against "
        "itself in a second session, the per-round range: the run's own noise; **ratios** outcomes of the ratio checks; "
        "**TP** Torch-Pruning's own result.",
        "",
        "| model | type | params M | input | chain | pruned | excl | MACs | fp32 diff | int8 | sp fp32 | sp int8 | A/A | ratios | TP | error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(n, records[n]) for n in ran]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated model names")
    ap.add_argument("--resume", action="store_true", help="skip models that already have a line in --jsonl")
    ap.add_argument("--fresh", action="store_true", help="empty --jsonl first")
    ap.add_argument("--summary-only", action="store_true", help="rewrite --md from --jsonl, run nothing")
    ap.add_argument("--timeout", type=float, default=300.0, help="CPU seconds per job (autoprune, Torch-Pruning); wall limit 4x")
    ap.add_argument("--mem-gb", type=float, default=8.0, help="resident memory per job")
    ap.add_argument("--ratios", default="0.05,0.3,0.55")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)), help="the CPU every job is pinned to")
    ap.add_argument("--jsonl", type=Path, default=HERE / "results" / "model_coverage.jsonl")
    ap.add_argument("--md", type=Path, default=HERE / "results" / "model_coverage.md")
    args = ap.parse_args(argv)
    names = model_names()
    only = [n for n in args.only.split(",") if n]
    unknown = [n for n in only if n not in names]
    if unknown:
        ap.error(f"--only: unknown models {unknown} (known: {', '.join(names)})")
    if args.fresh and args.jsonl.exists():
        args.jsonl.unlink()
    args.jsonl.parent.mkdir(parents=True, exist_ok=True)
    done = load(args.jsonl)
    todo = [] if args.summary_only else [n for n in (only or names) if not (args.resume and n in done)]
    for i, name in enumerate(todo, 1):
        rec = {"model": name}
        for job in JOBS:
            rec[job] = run_job(job, name, args)
        with open(args.jsonl, "a") as f:
            f.write(json.dumps(rec) + "\n")
        done[name] = rec
        a, t = rec["autoprune"], rec["torch_pruning"]
        status = "pass" if _passes(a) else f"FAIL {a.get('error', 'nothing pruned')}"
        print(f"[{i}/{len(todo)}] {name}: {status}; sp int8 {a.get('speedup_int8', float('nan')):.2f}; "
              f"ratios {_ratios_cell(a)}; TP {_tp_cell(t)} ({a.get('cpu_s')} + {t.get('cpu_s')} CPU s)", flush=True)
        args.md.write_text(summarize(done, names, args))
    args.md.write_text(summarize(done, names, args))
    print(args.md.read_text().split("\n\nColumns:")[0])


if __name__ == "__main__":
    sys.exit(main())
