"""The bundled models: small safetensors files shipped inside the package (see MODEL_CARD.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tadsr.utils.errors import CheckpointError

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = "tadsr-small"


def registry() -> dict[str, dict]:
    """name -> entry (file, kind, description, measured figures) from registry.json."""
    f = HERE / "registry.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def resolve_model(name_or_path: str | None) -> Path:
    """A bundled model name or a file path -> an existing file (clear error otherwise)."""
    name = name_or_path or DEFAULT_MODEL
    entries = registry()
    if name in entries:
        path = HERE / entries[name]["file"]
        if not path.is_file():
            raise CheckpointError(
                f"bundled model {name!r} is missing its file {path.name}; reinstall tadsr"
            )
        return path
    from tadsr.utils.files import file_problem

    path = Path(name).expanduser()
    problem = file_problem(path)  # stat only: a FIFO or a device is never opened
    if problem == "no such file":
        known = ", ".join(sorted(entries)) or "none bundled"
        raise CheckpointError(f"{name}: no such file, and not a bundled model ({known})")
    if problem == "is a folder, not a file":
        raise CheckpointError(f"{name}: is a folder, not a checkpoint file")
    if problem:
        raise CheckpointError(f"{name}: {problem}")
    return path
