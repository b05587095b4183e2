"""Our slim inference weights: one .safetensors file, config JSON in its metadata.

Tensors are prefixed `unet.` and (when a VQ codec is embedded) `codec.`; metadata key `tadsr`
holds {"format_version": 1, "kind", "unet", "codec", "schedule", "scale", "steps",
"provenance", "dtype"} (docs/ARCHITECTURE.md "Our weights file"). Only parameters are stored
for the UNet: its buffers (Swin masks and index tables) are rebuilt by its constructor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tadsr.checkpoints.header import (  # torch-free; re-exported here
    FORMAT_VERSION,
    META_KEY,
    CheckpointError,
    read_metadata,
    tensor_dtypes,
)
from tadsr.nets.codec import Codec, VQCodec, build_codec
from tadsr.utils.files import atomic_write

__all__ = ["FORMAT_VERSION", "KINDS", "save_model", "read_metadata", "load_model_file",
           "tensor_dtypes", "META_KEY"]  # fmt: skip

KINDS = ("sr_student", "sr_teacher", "unet", "vq")


def _config_dict(obj: Any) -> Any:
    """A config object as a JSON-able dict (dataclasses with to_dict, or dicts as they are)."""
    if obj is None or isinstance(obj, dict):
        return obj
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot serialise {type(obj).__name__} as a config (no to_dict)")


def _unet_config_of(unet: nn.Module) -> Any:
    for name in ("cfg", "config"):
        cfg = getattr(unet, name, None)
        if cfg is not None and hasattr(cfg, "to_dict"):
            return cfg
    raise ValueError("save_model: pass unet_config (the UNet has no .cfg / .config)")


def _cast(t: Tensor, dtype: torch.dtype | None) -> Tensor:
    t = t.detach().to("cpu")
    if dtype is not None and t.is_floating_point():
        t = t.to(dtype)
    return t.contiguous().clone()


def save_model(
    path: str | Path,
    *,
    unet: nn.Module | None = None,
    unet_config: Any = None,
    codec: Codec | dict[str, Any] | None = None,
    schedule: Any = None,
    kind: str,
    steps: int,
    scale: int = 4,
    provenance: dict[str, Any] | None = None,
    dtype: torch.dtype | None = torch.float16,
    codec_dtype: torch.dtype | None = None,
) -> Path:
    """Write our weights file atomically; return its path.

    `dtype` applies to the UNet's float tensors (None keeps them); `codec_dtype` to an embedded
    VQ codec's (default: kept in float32, so nearest-code decisions match the original).
    A `codec` given as a dict (its `to_dict()` form) records the codec without weights.
    """
    from safetensors.torch import save_file

    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")
    path = Path(path)
    tensors: dict[str, Tensor] = {}
    meta: dict[str, Any] = {"format_version": FORMAT_VERSION, "kind": kind}
    if unet is not None:
        cfg = unet_config if unet_config is not None else _unet_config_of(unet)
        meta["unet"] = _config_dict(cfg)
        for name, p in unet.named_parameters():
            tensors[f"unet.{name}"] = _cast(p, dtype)
    elif unet_config is not None:
        meta["unet"] = _config_dict(unet_config)
    if codec is not None:
        meta["codec"] = dict(codec) if isinstance(codec, dict) else codec.to_dict()
        if isinstance(codec, VQCodec):
            for name, t in codec.autoencoder.state_dict().items():
                tensors[f"codec.{name}"] = _cast(t, codec_dtype)
    if schedule is not None:
        meta["schedule"] = _config_dict(schedule)
    meta.update(scale=int(scale), steps=int(steps), provenance=provenance or {})
    meta["dtype"] = str(dtype).removeprefix("torch.") if dtype is not None else "as trained"
    if not tensors:
        raise ValueError("save_model: nothing to save (no unet and no VQ codec weights)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:  # the usual file mode: safetensors makes it private
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    return path


def _load_strict(module: nn.Module, sd: dict[str, Tensor], where: str) -> None:
    """Load float32 copies of `sd`; every parameter must be there, extra keys are errors."""
    params = {name for name, _ in module.named_parameters()}
    expected = module.state_dict()
    missing = [k for k in params if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: {len(missing)} missing parameter(s) {missing[:3]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:3]}"
        )
    bad = [k for k, v in sd.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        raise CheckpointError(f"{where}: wrong shapes for {bad[:3]}")
    result = module.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False
    )
    left = [k for k in result.missing_keys if k in params]
    if left or result.unexpected_keys:
        raise CheckpointError(f"{where}: did not load cleanly ({result})")


def load_model_file(
    path: str | Path, *, unet: bool = True
) -> tuple[dict[str, Any], nn.Module | None, Codec | None]:
    """(metadata, SwinUNet or None, Codec or None), float32 modules in eval mode on CPU.

    The codec is None when the file records no codec, or a VQ codec without its weights.
    `unet=False` reads neither the network's tensors nor builds it (the codec alone).
    """
    from safetensors import safe_open

    path = Path(path)
    meta = read_metadata(path)
    with safe_open(str(path), framework="pt", device="cpu") as f:
        keys = [k for k in f.keys() if unet or not k.startswith("unet.")]
        tensors = {k: f.get_tensor(k) for k in keys}
    groups: dict[str, dict[str, Tensor]] = {"unet": {}, "codec": {}}
    for key, value in tensors.items():
        prefix, _, rest = key.partition(".")
        if prefix not in groups or not rest:
            raise CheckpointError(f"{path}: unexpected tensor {key!r} (not unet.* or codec.*)")
        groups[prefix][rest] = value
    net: nn.Module | None = None
    if groups["unet"]:
        if "unet" not in meta:
            raise CheckpointError(f"{path}: has UNet weights but no UNet config in its metadata")
        from tadsr.nets.unet import SwinUNet, UNetConfig

        try:
            cfg = UNetConfig.from_dict(meta["unet"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad UNet config in metadata ({exc})") from None
        net = SwinUNet(cfg)
        _load_strict(net, groups["unet"], f"{path} (unet)")
        net.eval()
    codec = None
    cdict = meta.get("codec")
    if cdict is not None and (cdict.get("kind") != "vq" or groups["codec"]):
        try:
            codec = build_codec(cdict)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad codec entry in metadata ({exc})") from None
        if isinstance(codec, VQCodec):
            _load_strict(codec.autoencoder, groups["codec"], f"{path} (codec)")
        elif groups["codec"]:
            raise CheckpointError(f"{path}: codec weights given for a weight-free codec")
        codec.eval()
    elif groups["codec"]:
        raise CheckpointError(f"{path}: has codec weights but no codec entry in its metadata")
    return meta, net, codec
