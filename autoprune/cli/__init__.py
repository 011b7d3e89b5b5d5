"""The ``autoprune`` command line.

Each subcommand lives in its own module of this package with ``register(subparsers)``;
heavy imports (torch, optuna) happen inside the command, so ``autoprune agent serve`` on a
small device never loads them. Errors autoprune raises on purpose print one line and exit
with their code (2 for bad input); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from .. import __version__
from ..exceptions import AutopruneError

__all__ = ["main"]

COMMANDS = ("run", "export", "apply", "profile", "report", "agent", "sensitivity", "calibrate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoprune",
        description="Search per-layer pruning ratios and bit-widths, measured on the target device.",
    )
    parser.add_argument("--version", action="version", version=f"autoprune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AutopruneError as e:
        print(f"autoprune {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # its message, where there is one, says what was kept
        print(f"autoprune {args.command}: interrupted" + (f": {e}" if str(e) else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
