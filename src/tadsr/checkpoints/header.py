"""Reading a safetensors file's header without torch (so `tadsr info` starts in a blink).

The format: 8 bytes little-endian header length N, then N bytes of JSON: per tensor
{"dtype", "shape", "data_offsets": [begin, end]} relative to the data that follows, plus an
optional "__metadata__" dict of strings. Our files keep their tadsr metadata as JSON under
the key "tadsr" (see `tadsr.checkpoints.io`).

Why not `safetensors.safe_open(path, framework="numpy")`, which reads the same without torch:
it is no faster to start (`tadsr info` on the bundled model, 10 interleaved runs each, 2 shared
CPUs: 198-265 ms by hand, 197-253 ms through safe_open; 0.58-0.63 ms per file to read the
metadata either way), and its errors are less clear: a cut file reads "incomplete metadata,
file not fully covered" (here: how many bytes the tensors need), a deeply nested header
"recursion limit exceeded", and a file with bytes after its tensors is refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tadsr.checkpoints.errors import CheckpointError

__all__ = ["CheckpointError", "FORMAT_VERSION", "META_KEY", "read_header", "read_metadata",
           "sniff", "tensor_dtypes", "tensor_shapes"]  # fmt: skip

FORMAT_VERSION = 1
META_KEY = "tadsr"
_MAX_HEADER = 100_000_000


def sniff(head: bytes) -> str:
    """Name what a file's first bytes look like: zip / pickle / safetensors / png / text / ..."""
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x80") and len(head) > 1 and head[1] in range(2, 6):
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < _MAX_HEADER:
        return "safetensors"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith(b"GIF8"):
        return "a GIF image"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown"
    return "text" if all(c.isprintable() or c in "\r\n\t" for c in text) else "unknown"


def read_header(path: str | Path) -> dict[str, Any]:
    """The parsed JSON header; CheckpointError when the file is not a whole safetensors file
    (bad length, bad JSON, tensors whose data lies past the end of the file)."""
    from tadsr.utils.files import file_problem

    path = Path(path)
    problem = file_problem(path)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n <= min(_MAX_HEADER, size - 8):
                raise ValueError(f"header length {n} does not fit a {size}-byte file")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        end = 0
        for name, info in header.items():
            if name == "__metadata__":
                continue
            begin, stop = info["data_offsets"]
            if math.prod(info["shape"]) < 0 or not 0 <= begin <= stop:
                raise ValueError(f"tensor {name!r} has bad offsets")
            end = max(end, stop)
        if 8 + n + end > size:
            raise ValueError(f"the file is cut: its tensors need {8 + n + end} bytes, not {size}")
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    except RecursionError:  # JSON nested deeper than Python's parser recurses
        raise CheckpointError(
            f"{path}: not a readable safetensors file (its header is nested too deeply)"
        ) from None
    return header


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The `tadsr` metadata dict of one of our weights files (CheckpointError if it has none)."""
    path = Path(path)
    raw = (read_header(path).get("__metadata__") or {}).get(META_KEY)
    if raw is None:
        raise CheckpointError(f"{path}: a safetensors file without tadsr metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: tadsr metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: unsupported tadsr format version {version!r}")
    return meta


def tensor_dtypes(path: str | Path) -> dict[str, str]:
    """Stored dtype of every tensor, from the header only."""
    return {k: v["dtype"] for k, v in read_header(path).items() if k != "__metadata__"}


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor, from the header only."""
    return {k: tuple(v["shape"]) for k, v in read_header(path).items() if k != "__metadata__"}
