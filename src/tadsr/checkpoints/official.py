"""Official ResShift / SinSR / TAD-SR checkpoints (.pth) -> our modules.

One road for every outside file (DESIGN "Worth adopting" 6): load with weights_only=True,
canonicalise (unwrap `state_dict` / `model` / `params_ema`, strip `module.` / `_orig_mod.`),
detect the architecture, infer its hyperparameters from shapes, load strictly, report in words.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from tadsr.checkpoints.errors import CheckpointError
from tadsr.checkpoints.header import sniff as _sniff
from tadsr.utils.files import one_line

if TYPE_CHECKING:
    from tadsr.nets.autoencoder import VQAutoencoder

__all__ = [
    "CheckpointError",
    "LoadReport",
    "LoadedCheckpoint",
    "load_state_dict_file",
    "canonicalize",
    "detect_kind",
    "infer_config",
    "build_module",
    "load_official",
]

Kind = Literal["unet", "vq"]

_WRAPPERS = ("state_dict", "params_ema", "params", "model")
_PREFIXES = ("module.", "_orig_mod.")


# ----------------------------------------------------------------------------------------------
# Reading files.


def _read_raw(path: Path) -> Any:
    """Load a file's top-level object (torch pickle with weights_only, or safetensors)."""
    from tadsr.utils.files import file_problem

    problem = file_problem(path)  # stat only: a FIFO or a device is never opened
    if problem == "is a folder, not a file":
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    with path.open("rb") as f:
        head = f.read(64)
    what = _sniff(head)
    if what == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"{path}: corrupt or truncated safetensors file ({exc})"
            ) from None
    if what not in ("zip", "pickle"):
        if what == "unknown":
            raise CheckpointError(
                f"{path}: unrecognised content, not a PyTorch or safetensors checkpoint"
            )
        desc = "a text file" if what == "text" else what
        raise CheckpointError(f"{path}: is {desc}, not a checkpoint")
    from safetensors import SafetensorError

    try:
        # an open file, not the name: torch.load reads a *.safetensors name as safetensors
        with path.open("rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on the pickle protocol
            return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise CheckpointError(
                f"{path}: holds Python objects other than tensors; refusing to unpickle it "
                "(weights_only=True). Re-save it as a plain state dict"
            ) from None
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint ({one_line(exc)[:160]})"
        ) from None
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        KeyError,
        SafetensorError,
    ) as exc:
        raise CheckpointError(
            f"{path}: corrupt or truncated checkpoint ({one_line(exc)[:160]})"
        ) from None


def read_training_state(path: Path) -> dict:
    """A training checkpoint (``checkpoints/last.pt``) as a dict; CheckpointError, naming the
    file, for anything that is not one (random bytes, a pickle of objects, a truncated file)."""
    payload = _read_raw(Path(path))
    if not isinstance(payload, dict) or not {"step", "config", "ema"} <= set(payload):
        raise CheckpointError(f"{path}: not a tadsr training checkpoint (no step, config, ema)")
    return payload


def _canonicalize(obj: Any) -> tuple[dict[str, Tensor], list[str]]:
    notes: list[str] = []
    for _ in range(4):
        if not isinstance(obj, Mapping):
            break
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            break
        inner = next((w for w in _WRAPPERS if isinstance(obj.get(w), Mapping)), None)
        if inner is None:
            break
        notes.append(f"unwrapped the '{inner}' entry")
        obj = obj[inner]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"holds a {type(obj).__name__}, not a state dict")
    if not obj:
        raise CheckpointError("holds an empty state dict")
    out: dict[str, Tensor] = {}
    stripped: set[str] = set()
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise CheckpointError(
                f"is not a state dict of tensors (entry {key!r} is a {type(value).__name__})"
            )
        new = key
        while new.startswith(_PREFIXES):
            p = next(p for p in _PREFIXES if new.startswith(p))
            stripped.add(p)
            new = new[len(p) :]
        if new in out:
            raise CheckpointError(f"has the key {new!r} twice once prefixes are stripped")
        out[new] = value
    notes.extend(f"stripped the '{p}' prefix" for p in sorted(stripped))
    return out, notes


def canonicalize(sd: Any) -> dict[str, Tensor]:
    """Unwrap {'state_dict' | 'params_ema' | 'params' | 'model': ...}; strip module./_orig_mod."""
    return _canonicalize(sd)[0]


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a .pth / .pt / .ckpt (torch.load, weights_only, on CPU) or .safetensors state dict.

    The result is canonical (see `canonicalize`). Raises CheckpointError naming the file.
    """
    path = Path(path)
    raw = _read_raw(path)
    try:
        return canonicalize(raw)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


# ----------------------------------------------------------------------------------------------
# Kinds, configs, modules.


def detect_kind(sd: Mapping[str, Tensor]) -> Kind:
    """'vq' for VQModelTorch state dicts, 'unet' for UNetModelSwin ones; CheckpointError else."""
    if "quantize.embedding.weight" in sd or (
        "encoder.conv_in.weight" in sd and "decoder.conv_in.weight" in sd
    ):
        return "vq"
    if "input_blocks.0.0.weight" in sd and "time_embed.0.weight" in sd:
        return "unet"
    if any(k.startswith(("unet.", "codec.")) for k in sd):
        raise CheckpointError(
            "is a tadsr weights file (unet.* / codec.* tensors), not an official checkpoint; "
            "read it with tadsr.checkpoints.io.load_model_file"
        )
    first = ", ".join(list(sd)[:3])
    raise CheckpointError(
        f"unknown kind of checkpoint ({len(sd)} tensors, first keys: {first}); "
        "expected a ResShift/SinSR/TAD-SR UNet or a VQ autoencoder"
    )


def infer_config(kind: Kind, sd: Mapping[str, Tensor]) -> Any:
    """UNetConfig or VQConfig read from the state dict's shapes (ValueError if they don't fit)."""
    if kind == "vq":
        from tadsr.nets.autoencoder import infer_vq_config

        return infer_vq_config(dict(sd))
    from tadsr.nets.unet import infer_unet_config

    return infer_unet_config(dict(sd))


def build_module(kind: Kind, config: Any) -> nn.Module:
    """A fresh module of `kind` built from `config` (on the current default device)."""
    if kind == "vq":
        from tadsr.nets.autoencoder import VQAutoencoder

        return VQAutoencoder(config)
    from tadsr.nets.unet import SwinUNet

    return SwinUNet(config)


@dataclass
class LoadReport:
    """What loading did, in words: wrappers and prefixes removed, keys ignored or rebuilt."""

    path: str
    kind: str
    num_tensors: int
    notes: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    rebuilt_buffers: list[str] = field(default_factory=list)
    stored_dtypes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.path}: {self.num_tensors} tensors, {self.kind}"]
        out += [f"  {n}" for n in self.notes]
        if self.unexpected:
            out.append(
                f"  ignored {len(self.unexpected)} key(s) the model does not use (the official "
                f"loader ignores them too): {_few(self.unexpected)}"
            )
        if self.rebuilt_buffers:
            out.append(
                f"  {len(self.rebuilt_buffers)} buffer(s) not in the file, rebuilt by the model: "
                f"{_few(self.rebuilt_buffers)}"
            )
        if not self.unexpected and not self.rebuilt_buffers:
            out.append("  every key matched")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _few(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


@dataclass
class LoadedCheckpoint:
    kind: Kind
    config: Any
    module: nn.Module
    report: LoadReport

    @property
    def autoencoder(self) -> VQAutoencoder:
        """`module` as the VQ autoencoder that a "vq" checkpoint builds."""
        from tadsr.nets.autoencoder import VQAutoencoder

        if not isinstance(self.module, VQAutoencoder):
            raise CheckpointError(f"{self.report.path}: holds a {self.kind}, not a VQ autoencoder")
        return self.module


def match_state_dict(
    module: nn.Module, sd: Mapping[str, Tensor], where: str
) -> tuple[dict[str, Tensor], list[str], list[str]]:
    """Check `sd` against `module`: (tensors to load, unexpected keys, missing buffer keys).

    Missing parameters and shape mismatches raise CheckpointError (naming a few keys).
    """
    expected = module.state_dict()
    params = {name for name, _ in module.named_parameters()}
    missing = [k for k in expected if k not in sd]
    missing_params = [k for k in missing if k in params]
    if missing_params:
        raise CheckpointError(
            f"{where}: {len(missing_params)} parameter(s) missing: {_few(missing_params)}"
        )
    bad = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and tuple(sd[k].shape) != tuple(v.shape)
    ]
    if bad:
        raise CheckpointError(f"{where}: {len(bad)} tensor(s) of the wrong shape: {_few(bad, 3)}")
    unexpected = [k for k in sd if k not in expected]
    use = {k: sd[k] for k in expected if k in sd}
    return use, unexpected, missing


def _recorded_unet_config(obj: Any):
    """The UNetConfig a tadsr training checkpoint records (settings such as norm_groups and
    lq_skip leave no trace in the weights, so they cannot be inferred); None otherwise."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("ema"), Mapping):
        return None
    cfg = obj.get("config")
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("unet"), Mapping):
        return None
    from tadsr.nets.unet import UNetConfig

    try:
        return UNetConfig.from_dict(dict(cfg["unet"]))
    except (TypeError, ValueError):
        return None


def load_official(
    path: str | Path, expect: Kind | None = None, *, materialize: bool = True, raw: Any = None
) -> LoadedCheckpoint:
    """Load an official checkpoint: infer its config, build the module, load it strictly.

    `materialize=False` builds the module on the meta device and only checks keys and shapes
    (what `tadsr info` needs). The module is float32 on CPU, in eval mode. `raw`: the file's
    content when the caller has read it already.
    """
    path = Path(path)
    sd_raw = _read_raw(path) if raw is None else raw
    recorded = _recorded_unet_config(sd_raw)
    if recorded is not None:  # a tadsr training checkpoint: its EMA weights, its own config
        sd_raw = sd_raw["ema"]
    try:
        sd, notes = _canonicalize(sd_raw)
        kind = detect_kind(sd)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if expect is not None and kind != expect:
        raise CheckpointError(f"{path}: holds a {kind} checkpoint, expected a {expect}")
    if recorded is not None and kind == "unet":
        config = recorded
        notes.append("a tadsr training checkpoint: its EMA weights and its recorded config")
    else:
        try:
            config = infer_config(kind, sd)
        except ValueError as exc:
            raise CheckpointError(f"{path}: cannot infer the {kind} configuration: {exc}") from None
    if materialize:
        module = build_module(kind, config)
    else:
        with torch.device("meta"):
            module = build_module(kind, config)
    use, unexpected, missing = match_state_dict(module, sd, str(path))
    if materialize:
        use = {k: v.float() if v.is_floating_point() else v for k, v in use.items()}
        result = module.load_state_dict(use, strict=not missing)
        if result.unexpected_keys or set(result.missing_keys) != set(missing):
            raise CheckpointError(f"{path}: state dict did not load cleanly ({result})")
    module.eval()
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in sd.values()})
    report = LoadReport(str(path), kind, len(sd), notes, unexpected, missing, dtypes)
    return LoadedCheckpoint(kind, config, module, report)
