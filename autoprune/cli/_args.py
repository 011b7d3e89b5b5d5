"""argparse ``type=`` parsers shared by the subcommands: a bad value is one line naming the flag (argparse adds it)."""

from __future__ import annotations

import argparse
import math
from typing import Callable

__all__ = ["whole_number", "positive_number"]


def whole_number(unit: str = "") -> Callable[[str], int]:
    """A parser of whole numbers >= 1 (``unit``, e.g. ``"epochs"``, is named in the error)."""
    what = f"a whole number{' of ' + unit if unit else ''} >= 1"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


def positive_number(unit: str = "") -> Callable[[str], float]:
    """A parser of finite numbers > 0 (``unit``, e.g. ``"seconds"``, is named in the error)."""
    what = f"a number{' of ' + unit if unit else ''} > 0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse
