"""What torchrun and the user set in the environment, read without importing torch."""

from __future__ import annotations

import os

__all__ = ["DeviceError", "dist_rank_world"]


class DeviceError(ValueError):
    """The requested device or dtype cannot be used on this machine."""


def dist_rank_world() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) from the environment torchrun sets; (0, 1) when absent."""
    try:
        world = int(os.environ.get("WORLD_SIZE") or 1)
        rank = int(os.environ.get("RANK") or 0)
    except ValueError as exc:
        raise DeviceError(f"bad RANK / WORLD_SIZE in the environment: {exc}") from None
    if world < 1 or not 0 <= rank < world:
        raise DeviceError(f"bad RANK={rank} / WORLD_SIZE={world} in the environment")
    return rank, world
