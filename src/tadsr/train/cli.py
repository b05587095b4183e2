"""Sub-commands of `tadsr` for train (filled in by its issue)."""

from __future__ import annotations


def register(subparsers) -> None:
    pass
