"""Error types that several layers raise (a leaf module without imports, so that every layer
may import it at the top without pulling in torch or the loaders)."""

from __future__ import annotations

__all__ = ["CheckpointError"]


class CheckpointError(Exception):
    """A checkpoint file that cannot be used; the message is one line naming the file."""
