"""One model of the coverage benchmark, in its own process: autoprune's chain, or Torch-Pruning's own pruner.

Run by ``benchmarks/model_coverage.py`` (which sets the time and memory budget); by hand::

    python benchmarks/coverage_job.py {autoprune|torch_pruning} MODEL RESULT.json [--ratios 0.05,0.3,0.55] [--rounds 5]

The result JSON is rewritten after every stage, so a job killed for time or memory still
says how far it got (``stage``). An exception is recorded as ``error`` (class and first line)
and ``where`` (the innermost frames of the traceback), with ``failed_stage``; once discover has
given a space, the ratio checks run even when the chain at 0.5 failed. The process exits 0.

Models: every classification model of ``torchvision.models`` (random weights, never
downloaded) and five Hugging Face classes built from small configs (:data:`HF_MODELS`).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

IMAGE = 64  # input height and width of the image models
SAMPLES = 16  # training inputs for BatchNorm re-estimation and int8 calibration
TOKENS, VOCAB, MEL_BINS = 64, 1000, 80
# Models that cannot take 64x64: the smallest size each accepts.
IMAGE_SIZE = {"inception_v3": 75, "maxvit_t": 224, "vit_h_14": 70}  # 75: its minimum; 224: every stage divisible by its 7x7 window; 70: patch 14
TRANSFORMER_PREFIXES = ("vit_", "swin_", "maxvit_", "hf_")
# fp32 ONNX vs torch: max |diff| within this share of the output's largest magnitude (at least 1)
FP32_TOLERANCE = 1e-3


def _hf(build: Callable[[Any], torch.nn.Module], config: Callable[[Any], Any], inputs: str) -> Callable[[], tuple]:
    def make():
        import transformers

        return build(transformers)(config(transformers)), inputs
    return make


# Small configs: 4 layers, width 256 in 4 heads of 64, MLP 1024; 64 tokens / 64 patches / 64 audio positions.
HF_MODELS: dict[str, Callable[[], tuple]] = {
    "hf_bert": _hf(lambda t: t.BertModel, lambda t: t.BertConfig(
        vocab_size=VOCAB, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
        max_position_embeddings=128), "tokens"),
    "hf_bert_classifier": _hf(lambda t: t.BertForSequenceClassification, lambda t: t.BertConfig(
        vocab_size=VOCAB, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
        max_position_embeddings=128, num_labels=2), "tokens"),
    "hf_distilbert_classifier": _hf(lambda t: t.DistilBertForSequenceClassification, lambda t: t.DistilBertConfig(
        vocab_size=VOCAB, dim=256, n_layers=4, n_heads=4, hidden_dim=1024, max_position_embeddings=128,
        num_labels=2), "tokens"),
    "hf_vit_classifier": _hf(lambda t: t.ViTForImageClassification, lambda t: t.ViTConfig(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024, image_size=IMAGE,
        patch_size=8, num_labels=10), "image"),
    "hf_whisper_encoder_classifier": _hf(lambda t: t.WhisperForAudioClassification, lambda t: t.WhisperConfig(
        d_model=256, encoder_layers=4, encoder_attention_heads=4, encoder_ffn_dim=1024, num_mel_bins=MEL_BINS,
        max_source_positions=TOKENS, decoder_layers=1, decoder_attention_heads=4, num_labels=2), "mel"),
}


def is_transformer(name: str) -> bool:
    return name.startswith(TRANSFORMER_PREFIXES)


def make_model(name: str) -> tuple[torch.nn.Module, Any, Any, dict]:
    """The model (eval, seeded random weights), its batch-1 example input, training data, and what they are."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    if name in HF_MODELS:
        model, kind = HF_MODELS[name]()
    else:
        import torchvision

        size = IMAGE_SIZE.get(name, IMAGE)
        kw = {"image_size": size} if name.startswith("vit_") else {"input_size": (size, size)} if name == "maxvit_t" else {}
        model, kind = torchvision.models.get_model(name, weights=None, **kw), "image"
    if kind == "tokens":
        X = {"input_ids": rng.integers(0, VOCAB, (SAMPLES, TOKENS)), "attention_mask": np.ones((SAMPLES, TOKENS), np.int64)}
        desc = f"input_ids + attention_mask 1x{TOKENS} (int64)"
    elif kind == "mel":
        X = rng.standard_normal((SAMPLES, MEL_BINS, 2 * TOKENS)).astype(np.float32)
        desc = f"mel 1x{MEL_BINS}x{2 * TOKENS}"
    else:
        size = IMAGE if name in HF_MODELS else IMAGE_SIZE.get(name, IMAGE)
        X = rng.standard_normal((SAMPLES, 3, size, size)).astype(np.float32)
        desc = f"image 1x3x{size}x{size}"
    x = {k: torch.from_numpy(v[:1]) for k, v in X.items()} if isinstance(X, dict) else torch.from_numpy(X[:1])
    _no_zero_layers(model)
    params = sum(p.numel() for p in model.parameters())
    return model.eval(), x, X, {"input": desc, "params": params, "transformer": is_transformer(name)}


def _no_zero_layers(model: torch.nn.Module) -> None:
    """Give layers whose weight is all zeros (torchvision's ViT heads) random weights, std 0.02.

    A zero head makes every output 0, and comparing ONNX with torch on it tests nothing.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and not m.weight.any():
                m.weight.normal_(0.0, 0.02)


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"


def _where(e: BaseException) -> list[str]:
    """The innermost frames of ``e``'s traceback, as ``file:line function`` (site-packages paths shortened)."""
    frames = traceback.extract_tb(e.__traceback__)[-4:]
    return [f"{f.filename.split('site-packages/')[-1].replace(os.getcwd() + '/', '')}:{f.lineno} {f.name}" for f in frames]


def _outputs(model: torch.nn.Module, x: Any) -> list[torch.Tensor]:
    from autoprune.compress.check import output_tensors
    from autoprune.inputs import call

    with torch.no_grad():
        return output_tensors(call(model, x))


def _same_shapes(a: list[torch.Tensor], b: list) -> bool:
    return len(a) == len(b) and all(tuple(p.shape) == tuple(q.shape) for p, q in zip(a, b))


def _feeds(x: Any) -> dict[str, np.ndarray]:
    from autoprune.inputs import input_names, to_numpy

    arrays = to_numpy(x)
    return dict(arrays) if isinstance(arrays, dict) else {input_names(x)[0]: arrays}


def _int8_share(onnx_bytes: bytes) -> tuple[int, int]:
    """(weighted ops fed by DequantizeLinear, weighted ops): how much of the graph runs in int8."""
    import onnx

    graph = onnx.load_from_string(onnx_bytes).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    weighted = [n for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    return sum(producer.get(n.input[0]) == "DequantizeLinear" for n in weighted), len(weighted)


def interleaved(sessions: dict[str, Any], feeds: dict[str, np.ndarray], rounds: int, seed: int = 0,
                visit_s: float = 0.1) -> dict[str, dict[str, list[float]]]:
    """Per round and session, the median run's CPU time and the fastest run's wall time (ms), visited in shuffled order.

    Each visit runs once untimed, then ``n`` timed runs (``n`` sized from warm-up so a visit
    lasts about ``visit_s``, 3-25 runs); load from other processes hits every session alike.
    On one intra-op thread onnxruntime runs the graph on the calling thread, so the thread's
    CPU time (``time.thread_time``) is the inference's own, without the time it spent
    preempted: on a shared, niced core wall times mostly measure the neighbours (a longer
    model is preempted more often, which inflates wall-clock speedups).
    """
    runs = {}
    for key, s in sessions.items():
        s.run(None, feeds)
        t0 = time.thread_time()
        s.run(None, feeds)
        runs[key] = int(min(25, max(3, visit_s / max(time.thread_time() - t0, 1e-6))))
    stats: dict[str, dict[str, list[float]]] = {k: {"cpu": [], "wall_min": []} for k in sessions}
    rng = random.Random(seed)
    for _ in range(rounds):
        order = list(sessions)
        rng.shuffle(order)
        for key in order:
            s = sessions[key]
            s.run(None, feeds)
            cpu, wall = [], []
            for _ in range(runs[key]):
                c0, w0 = time.thread_time(), time.perf_counter()
                s.run(None, feeds)
                wall.append(time.perf_counter() - w0)
                cpu.append(time.thread_time() - c0)
            stats[key]["cpu"].append(float(np.median(cpu)) * 1e3)
            stats[key]["wall_min"].append(min(wall) * 1e3)
    return stats


def _ratio_check(model, x, space, ratio: float, dense: list[torch.Tensor]) -> dict:
    """Prune at ``ratio`` everywhere: ok (runs, dense shapes, finite), refused (an autoprune error), crashed or broken."""
    import autoprune
    from autoprune.exceptions import AutopruneError

    plan = space.plan_from_params(space.params_for(ratio, 32))
    try:
        pruned = autoprune.compress.prune(model, plan, x, space=space)
    except AutopruneError as e:
        return {"ratio": ratio, "outcome": "refused", "error": _first_line(e)}
    except Exception as e:  # not silent, but not one of autoprune's clear errors
        return {"ratio": ratio, "outcome": "crashed", "error": _first_line(e), "where": _where(e)}
    return {"ratio": ratio, **_returned(pruned, x, dense), "params": sum(p.numel() for p in pruned.parameters())}


def _returned(pruned, x, dense: list[torch.Tensor]) -> dict:
    """What a model autoprune returned does on the example input: ok, or broken (fails, other shapes, not finite)."""
    try:
        out = _outputs(pruned, x)
    except Exception as e:
        return {"outcome": "broken", "error": f"the returned model fails: {_first_line(e)}"}
    if not _same_shapes(dense, out):
        return {"outcome": "broken", "error": f"output shapes {[tuple(t.shape) for t in out]}, dense {[tuple(t.shape) for t in dense]}"}
    if not all(torch.isfinite(t).all() for t in out if t.is_floating_point()):
        return {"outcome": "broken", "error": "outputs not finite"}
    return {"outcome": "ok"}


def _budget(mem_gb: float | None, timeout: float | None):
    """Discovery's own budget, inside the driver's limits, so that a model Torch-Pruning cannot trace
    here ends in autoprune's ``DiscoveryBudgetError`` (what a user sees), not in the driver's kill.
    Without limits: autoprune's defaults (300 s, half the memory available)."""
    from autoprune.budget import DiscoveryBudget, resident_mb

    seconds = 0.6 * timeout if timeout else DiscoveryBudget().seconds
    memory = 0.8 * mem_gb * 1024 - (resident_mb() or 0.0) if mem_gb else None
    return DiscoveryBudget(seconds=seconds, memory_mb=memory)


def run_autoprune(name: str, r: dict, save: Callable[[], None], ratios: list[float], rounds: int, budget=None) -> None:
    """discover(probe) -> ratio 0.5 everywhere -> build fp32 and int8 -> ONNX checks -> latency; then the other ratios."""
    import autoprune
    from autoprune.exceptions import UnsupportedLayerError

    r["stage"] = "model"
    model, x, X, info = make_model(name)
    r.update(info)
    dense = _outputs(model, x)
    r["stage"] = "discover"
    save()
    exclude: list[str] = []
    t0 = time.perf_counter()
    for _ in range(10):  # as a user would: paste the exclude list each error gives, and retry
        try:
            space = autoprune.discover(model, x, probe=True, exclude=exclude, **({"budget": budget} if budget else {}))
            break
        except UnsupportedLayerError as e:
            new = [m for m in e.modules if m not in exclude]
            if not new:
                raise
            exclude += new
    else:
        raise RuntimeError(f"discover still refuses after 10 rounds of exclude ({len(exclude)} modules)")
    r["discover_s"] = round(time.perf_counter() - t0, 1)
    r["exclude"] = exclude
    r["groups"] = len(space.groups)
    r["excluded_prune"] = sum(e.what == "prune" for e in space.excluded)
    r["probe_excluded"] = {e.name: e.reason.partition(": ")[2][:200] for e in space.excluded if "discovery probe" in e.reason}
    r["ratios"] = []
    try:
        _chain(model, x, X, space, dense, r, save, rounds)
    except Exception as e:  # recorded; the ratio checks still run on the space discover gave
        r["error"], r["where"] = _first_line(e), _where(e)
    r["failed_stage"] = r["stage"] if "error" in r else None
    r["stage"] = "ratios"
    for ratio in ratios:
        save()
        r["ratios"].append(_ratio_check(model, x, space, ratio, dense))
    r["stage"] = "done"


def _chain(model, x, X, space, dense: list[torch.Tensor], r: dict, save: Callable[[], None], rounds: int) -> None:
    """Ratio 0.5 everywhere: build fp32 and int8, check the ONNX, time dense against pruned."""
    import onnx

    import autoprune
    from autoprune.compress import BuildSettings
    from autoprune.profile.timing import make_session

    settings = BuildSettings(bn_batches=2, calibration_samples=SAMPLES)
    plan32 = space.plan_from_params(space.params_for(0.5, 32))
    plan8 = space.plan_from_params(space.params_for(0.5, 8))

    r["stage"] = "build fp32"
    save()
    t0 = time.perf_counter()
    art32 = autoprune.build(model, plan32, X, x, settings, space=space)
    r["build_s"] = round(time.perf_counter() - t0, 1)
    pruned_groups = {g for g, (before, after) in art32.channels.items() if after < before}  # (before, after), as prune_channels says
    attention = {g.name for g in space.groups if g.attention}
    r["pruned_groups"] = len(pruned_groups)
    r["heads_pruned_groups"] = len(pruned_groups & attention)
    r["linear_pruned_groups"] = len({g.name for g in space.groups if g.kind == "linear" and not g.attention} & pruned_groups)
    r["macs_kept"] = art32.macs / max(space.total_macs, 1)
    r["params_kept"] = sum(p.numel() for p in art32.model.parameters()) / max(sum(p.numel() for p in model.parameters()), 1)
    r["ratios"].append({"ratio": 0.5, **_returned(art32.model, x, dense)})  # the model build exported

    r["stage"] = "onnx fp32"
    save()
    onnx.checker.check_model(onnx.load_from_string(art32.onnx_bytes))
    feeds = _feeds(x)
    s32 = make_session(art32.onnx_bytes, threads=1)
    ref = _outputs(art32.model, x)
    got = s32.run(None, feeds)
    if not _same_shapes(ref, got):
        raise RuntimeError(f"fp32 ONNX outputs {[g.shape for g in got]}, torch {[tuple(t.shape) for t in ref]}")
    r["fp32_max_abs_diff"] = max(float(np.abs(g - t.numpy()).max()) for g, t in zip(got, ref))
    scale = max(1.0, max(float(t.abs().max()) for t in ref))
    r["fp32_ok"] = r["fp32_max_abs_diff"] <= FP32_TOLERANCE * scale
    del art32, got  # the session holds what the latency needs: the fp32 bytes and torch model are 2x the pruned model
    gc.collect()

    r["stage"] = "build int8"
    save()
    art8 = autoprune.build(model, plan8, X, x, settings, space=space)
    s8 = make_session(art8.onnx_bytes, threads=1)
    got8 = s8.run(None, feeds)
    r["int8_ok"] = _same_shapes(ref, got8) and all(np.isfinite(g).all() for g in got8 if g.dtype.kind == "f")
    r["int8_rel_diff"] = max(float(np.abs(g - t.numpy()).max()) for g, t in zip(got8, ref)) / scale if r["int8_ok"] else None
    r["int8_ops"] = _int8_share(art8.onnx_bytes)

    r["stage"] = "latency"
    save()
    with tempfile.TemporaryDirectory() as tmp:  # sessions from the file: a model over 2 GB keeps its weights beside it
        dense_path = Path(tmp) / "dense.onnx"
        del art8
        autoprune.to_onnx(model, space.plan_from_params(space.params_for(0.0, 32)), x, dense_path, space=space)
        gc.collect()
        dense_session = make_session(str(dense_path), threads=1)
        # A/A: the dense model again in a second session; a model over 2 GB (ViT-H/14, RegNetY-128GF) is
        # timed again in the same session, which would not fit twice beside everything else here.
        large = any(f != dense_path for f in Path(tmp).iterdir())  # its weights were written beside it
        r["aa_same_session"] = large
        sessions = {"dense": dense_session, "dense_again": dense_session if large else make_session(str(dense_path), threads=1),
                    "pruned_fp32": s32, "pruned_int8": s8}
    stats = interleaved(sessions, feeds, rounds)
    r["latency_ms"] = {k: float(np.median(v["cpu"])) for k, v in stats.items()}  # CPU time, median over rounds
    r["latency_wall_min_ms"] = {k: float(np.median(v["wall_min"])) for k, v in stats.items()}

    def per_round(key: str, stat: str = "cpu") -> list[float]:
        return [d / p for d, p in zip(stats["dense"][stat], stats[key][stat])]

    r["speedup_fp32"] = float(np.median(per_round("pruned_fp32")))
    r["speedup_int8"] = float(np.median(per_round("pruned_int8")))
    r["speedup_int8_wall"] = float(np.median(per_round("pruned_int8", "wall_min")))
    aa = per_round("dense_again")
    r["noise_aa"] = [min(aa), max(aa)]  # dense vs the same dense model in a second session, per round
    aa_wall = per_round("dense_again", "wall_min")
    r["noise_aa_wall"] = [min(aa_wall), max(aa_wall)]
    r["chain"] = bool(r["fp32_ok"] and r["int8_ok"])


def run_torch_pruning(name: str, r: dict, save: Callable[[], None]) -> None:
    """Torch-Pruning alone: MetaPruner, magnitude importance, ratio 0.5, the model's output layers ignored."""
    import torch_pruning as tp

    from autoprune.space import output_layers

    r["stage"] = "model"
    model, x, _, info = make_model(name)
    r.update(info)
    dense = _outputs(model, x)
    ignored = [model.get_submodule(n) for n in output_layers(model, x)]
    r["stage"] = "prune"
    save()
    t0 = time.perf_counter()
    pruner = tp.pruner.MetaPruner(model, x, tp.importance.MagnitudeImportance(p=2), pruning_ratio=0.5, ignored_layers=ignored)
    pruner.step()
    r["prune_s"] = round(time.perf_counter() - t0, 1)
    r["params_kept"] = sum(p.numel() for p in model.parameters()) / max(info["params"], 1)
    r["stage"] = "run"
    save()
    r.update(_returned(model, x, dense))
    r["ok"] = r["outcome"] == "ok" and r["params_kept"] < 1.0
    r["stage"] = "done"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("job", choices=["autoprune", "torch_pruning"])
    ap.add_argument("model")
    ap.add_argument("result", type=Path)
    ap.add_argument("--ratios", default="0.05,0.3,0.55")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mem-gb", type=float, default=None, help="the driver's memory limit: discovery's own budget stays under it")
    ap.add_argument("--timeout", type=float, default=None, help="the driver's CPU-time limit: discovery's own budget stays under it")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    r: dict[str, Any] = {"job": args.job, "model": args.model}

    def save() -> None:
        tmp = args.result.with_suffix(".tmp")
        tmp.write_text(json.dumps(r))
        os.replace(tmp, args.result)

    t0 = time.perf_counter()
    try:
        if args.job == "autoprune":
            run_autoprune(args.model, r, save, [float(v) for v in args.ratios.split(",") if v], args.rounds,
                          _budget(args.mem_gb, args.timeout))
        else:
            run_torch_pruning(args.model, r, save)
    except Exception as e:  # recorded, not raised: the driver reads the result file
        r["error"], r["where"] = _first_line(e), _where(e)
    r["seconds"] = round(time.perf_counter() - t0, 1)
    save()


if __name__ == "__main__":
    sys.exit(main())
