"""The `tadsr` sub-commands: the one layer that parses command lines (argparse) and turns
them into calls of the library packages (`inference`, `checkpoints`, `data`, `train`,
`evaluation`, `web`), which import nothing from here.

Each module defines `register(subparsers)`, which adds its sub-command(s) and sets `func`
on the parser; `func(args) -> int` is the exit status. A module imports only what its
parser needs at the top (`tadsr --help` registers them all and must not import torch); the
work's imports are inside the functions.
"""

from __future__ import annotations

__all__ = ["COMMAND_MODULES", "UsageError"]

# in the order of `tadsr --help`
COMMAND_MODULES = (
    "tadsr.commands.upscale",  # upscale, export
    "tadsr.commands.info",  # info, export-official, models
    "tadsr.commands.data",  # data photos / pairs / shards / photo-val
    "tadsr.commands.train",  # train teacher / distill / export
    "tadsr.commands.eval",  # bench, eval
    "tadsr.commands.serve",  # serve
)


class UsageError(Exception):
    """A problem with how the command was called (exit status 2)."""
