"""``autoprune apply plan.yaml``: rebuild the compressed model from the original."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "apply", help="rebuild a model from an exported plan.yaml",
        description="Apply an exported plan to the original model and write the ONNX artifact "
                    "(a plan exported with --finetune is rebuilt with the same recovery, to the same bytes).",
    )
    p.add_argument("plan", help="plan.yaml written by `autoprune export`")
    p.add_argument("--out", default="model.onnx", help="output ONNX path (default: model.onnx)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import apply_plan
    from ._output import print_json

    r = apply_plan(args.plan, args.out)
    if args.json:
        print_json(r)
        return 0
    same = {True: "identical to the plan's recorded artifact", False: "DIFFERS from the plan's recorded artifact", None: "no recorded artifact to compare"}
    recovered = ", recovered as the plan's meta.recovery says" if r.get("recovered") else ""
    print(f"wrote {r['out']} ({r['size_bytes']} bytes, sha256 {r['sha256'][:16]}…{recovered}, {same[r['matches_plan']]})")
    return 0 if r["matches_plan"] is not False else 1
