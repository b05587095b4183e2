"""The one error type of the checkpoints layer (a module of its own, so that every layer can
import it at the top without pulling in torch or the loaders)."""

from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint file that cannot be used; the message is one line naming the file."""
