"""Sub-commands of `tadsr` for inference (filled in by its issue)."""

from __future__ import annotations


def register(subparsers) -> None:
    pass
