"""``autoprune export RUN_DIR --trial N | --pick EXPR [--finetune EPOCHS [--distill] [--lr LR]]``: write plan.yaml, model.onnx and metrics.json."""

from __future__ import annotations

import argparse

from ._args import positive_number, whole_number

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export one trial (plan.yaml + model.onnx + metrics.json)",
        description="Rebuild the chosen trial's artifact, verify it is byte-identical to the measured one, and write it. "
                    "With --finetune, recover the pruned model first (whole epochs on the task's training data), "
                    "re-export it with the same plan and calibration, and re-measure it: metrics.json then holds the "
                    "recovered numbers and the study's (proxy) numbers side by side.",
    )
    p.add_argument("run_dir", help="run directory of a study")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, help="trial number")
    which.add_argument("--pick", help="e.g. \"max accuracy where latency_ms <= 0.5\"")
    p.add_argument("--out", help="output directory (default: RUN_DIR/export/trial-N)")
    p.add_argument("--finetune", type=whole_number("epochs"), metavar="EPOCHS",
                   help="recover the pruned model for EPOCHS passes over the training data (AdamW, cosine decay) before "
                        "exporting it; deterministic, and recorded in plan.yaml so that `autoprune apply` rebuilds it")
    p.add_argument("--distill", action="store_true", help="with --finetune: distil from the dense model as well as the labels")
    p.add_argument("--lr", type=positive_number(), help="with --finetune: peak learning rate (default: the study's build.finetune_lr)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..exceptions import ConfigError

    if args.finetune is None and (args.distill or args.lr is not None):  # before loading anything
        raise ConfigError(f"{'--distill' if args.distill else '--lr'} needs --finetune EPOCHS")

    from ..export import export_trial
    from ..metrics import format_value, metric_names
    from ._output import format_metric, print_json

    r = export_trial(args.run_dir, args.out, trial=args.trial, pick=args.pick, finetune=args.finetune, distill=args.distill, lr=args.lr)
    if args.json:
        doc = {"out_dir": str(r.out_dir), "trial": r.trial, "sha256": r.sha256, "metrics": r.metrics, "confirmed": r.confirmed}
        if r.recovery is not None:
            doc.update(proxy_metrics=r.proxy_metrics, recovery=r.recovery)
        print_json(doc)
        return 0
    print(f"exported trial {r.trial} to {r.out_dir}/ (plan.yaml, model.onnx, metrics.json)")
    if r.recovery is None:
        print(f"model.onnx sha256 {r.sha256} (identical to the measured artifact)")
        for name, m in r.metrics.items():
            print(f"  {name:15s} {format_metric(name, m, r.confirmed)}")
        return 0
    rec = r.recovery
    kd = ", distilled from the dense model" if rec["distill"] else ""
    print(f"model.onnx sha256 {r.sha256} (recovered: {rec['epochs']} epoch(s) at lr {rec['lr']:g}{kd}, {rec['seconds']:.1f} s; "
          f"the measured artifact {rec['unrecovered_sha256'][:16]}… was checked first)")
    print("  recovered (measured on the exported model.onnx):")
    for name, m in r.metrics.items():
        print(f"    {name:15s} {format_metric(name, m)}")
    print(f"  proxy (the study's numbers for the unrecovered artifact{', confirmed' if r.confirmed else ''}):")
    for name, m in r.proxy_metrics.items():
        print(f"    {name:15s} {format_metric(name, m, r.confirmed)}")
    for name in metric_names(direction="maximize"):  # the scores (accuracy, test_accuracy) recovery is meant to restore
        if name in r.metrics and name in r.proxy_metrics:
            print(f"  {name}: {format_value(name, r.proxy_metrics[name]['value'])} proxy ({r.proxy_metrics[name]['how']}) -> "
                  f"{format_value(name, r.metrics[name]['value'])} recovered ({r.metrics[name]['how']})")
    lat = rec["latency"]
    print(f"  latency_ms: {lat['unrecovered_latency_ms']['value']:.3f} ms unrecovered -> {r.metrics['latency_ms']['value']:.3f} ms recovered, "
          f"measured round-robin in the same {lat['rounds']} rounds (ratio {lat['latency_ratio']:.3f})")
    return 0
