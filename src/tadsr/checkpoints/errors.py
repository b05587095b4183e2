"""The one error type of the checkpoints layer. It is defined in `tadsr.utils.errors`, below
`tadsr.models` (the registry raises it when a bundled name has no file), so that `models`
need not import `checkpoints`, which resolves names through it."""

from __future__ import annotations

from tadsr.utils.errors import CheckpointError

__all__ = ["CheckpointError"]
