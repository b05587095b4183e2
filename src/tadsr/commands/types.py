"""argparse `type=` factories for options with a range: the parser itself refuses a value
out of range, with the option's name, the range and the value given, in one line of error
and exit status 2 (`tadsr upscale: error: argument --quality: must be 1 to 100, got '500'`).

Checks that involve two options, or files, stay in the commands (as `UsageError`s).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["float_range", "int_range"]


def _describe(lo: float, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if not lo_open and not hi_open:
        return f"{lo:g} to {hi:g}"
    return f"{'>' if lo_open else '>='} {lo:g} and {'<' if hi_open else '<='} {hi:g}"


def int_range(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """A whole number from `lo` to `hi` (both included; no upper end without `hi`)."""
    allowed = _describe(lo, hi)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a whole number {allowed}, got {text!r}"
            ) from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    parse.__name__ = f"int_range({lo}, {hi})"
    return parse


def float_range(
    lo: float, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """A finite number from `lo` to `hi`; `lo_open` / `hi_open` leave that end out
    (`float_range(0, lo_open=True)`: above 0). nan and inf are always refused."""
    allowed = _describe(lo, hi, lo_open, hi_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number {allowed}, got {text!r}")
        below = value <= lo if lo_open else value < lo
        above = hi is not None and (value >= hi if hi_open else value > hi)
        if below or above:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    parse.__name__ = f"float_range({lo}, {hi})"
    return parse
