"""`load(path_or_name)`: one road from any model file to a ready model (cf. spandrel's model
descriptor). It reads

- a bundled model name or our `.safetensors` (config in its metadata; a file without an
  embedded VQ codec takes `autoencoder`),
- an official ResShift / SinSR / TAD-SR UNet `.pth` (with its official VQ `autoencoder`),
- a training checkpoint (`RUN/checkpoints/last.pt`): its EMA weights, with the codec and
  schedule its recorded config names (a distillation run's student takes its teacher's),

and returns a `LoadedModel`: network, codec, process, scale, kind, config and a report in
words. Everything above this layer (pipeline, Upscaler, distillation, `train export`,
`tadsr bench`) loads through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from tadsr.checkpoints.errors import CheckpointError
from tadsr.checkpoints.kinds import (
    OFFICIAL_NOTE,
    TEACHER,
    kind_from_metadata,
    kind_from_training_config,
)
from tadsr.checkpoints.official import _read_raw, load_official
from tadsr.diffusion import SCHEDULE_PRESETS, Process, ScheduleConfig
from tadsr.nets.codec import Codec, VQCodec, build_codec

__all__ = ["LoadedModel", "codec_from_config", "from_training_state", "is_training_state", "load"]

@dataclass
class LoadedModel:
    """A super-resolution model as read from a file: float32 modules on the CPU, eval mode."""

    net: nn.Module  # the x0-predicting Swin-UNet
    codec: Codec  # image <-> latent
    process: Process  # the residual-shifting schedule the net was trained with
    scale: int  # LR -> output scale
    kind: str  # "student" (one step) | "teacher" (multi-step): see checkpoints/kinds.py
    config: dict[str, Any]  # the file's metadata, or the training run's resolved config
    source: str = ""  # the name or path it was loaded from
    report: list[str] = field(default_factory=list)  # what loading did, in words


def codec_from_config(cfg: dict[str, Any]) -> Codec:
    """The frozen codec a config names: weight-free pixel-unshuffle, or a VQ autoencoder by
    its official file (`{"kind": "vq", "path": ...}`) or by config (`to_dict()` form)."""
    if cfg.get("kind") == "vq" and "path" in cfg:
        codec: Codec = VQCodec(load_official(Path(cfg["path"]), expect="vq").autoencoder)
    else:
        codec = build_codec(cfg)
    return codec.eval().requires_grad_(False)


def is_training_state(obj: Any) -> bool:
    return isinstance(obj, dict) and {"step", "config", "ema"} <= set(obj)


def load(path_or_name: str | Path | None = None, autoencoder: str | Path | None = None):
    """Read a model file (see the module docstring); CheckpointError naming the file else."""
    from tadsr.models import resolve_model

    path = resolve_model(None if path_or_name is None else str(path_or_name))
    if path.suffix == ".safetensors":
        model = _load_ours(path, autoencoder)
    else:
        raw = _read_raw(path)  # a CheckpointError that says what the file is, if it is none
        if is_training_state(raw) and autoencoder is None:
            model = from_training_state(path, raw)
        else:
            model = _load_official(path, raw, autoencoder)
    model.source = str(path_or_name or path.stem)
    return model


def _load_ours(path: Path, autoencoder) -> LoadedModel:
    from tadsr.checkpoints.io import load_model_file

    meta, unet, codec = load_model_file(path)
    if unet is None:
        raise CheckpointError(f"{path}: holds a {meta.get('kind')!r}, not a super-resolution model")
    if codec is not None and autoencoder is not None:
        raise CheckpointError(
            f"{path}: carries its own codec; --autoencoder {autoencoder} does not apply"
        )
    report = [f"{path}: tadsr weights, {meta.get('kind')}"]
    if codec is None:
        if autoencoder is None:
            raise CheckpointError(f"{path}: has no codec inside; pass --autoencoder")
        codec = VQCodec(load_official(Path(autoencoder), expect="vq").autoencoder)
        report.append(f"  codec from {autoencoder}")
    return LoadedModel(
        net=unet,
        codec=codec,
        process=Process(ScheduleConfig.from_dict(meta["schedule"])),
        scale=int(meta.get("scale", 4)),
        kind=kind_from_metadata(meta),
        config=meta,
        report=report,
    )


def _load_official(path: Path, raw: Any, autoencoder) -> LoadedModel:
    if autoencoder is None:
        # say first what the file holds when it is no UNet at all (a list, an autoencoder)
        load_official(path, expect="unet", materialize=False, raw=raw)
        raise CheckpointError(
            f"{path}: an official UNet checkpoint needs its autoencoder "
            "(--autoencoder autoencoder_vq_f4.pth)"
        )
    unet = load_official(path, expect="unet", raw=raw)
    if unet.config.lq_size != unet.config.image_size:
        raise CheckpointError(f"{path}: a face-restoration UNet, not an x4 SR model")
    vq = load_official(Path(autoencoder), expect="vq")
    return LoadedModel(
        net=unet.module,
        codec=VQCodec(vq.autoencoder),
        process=Process(SCHEDULE_PRESETS["sr"]),
        scale=4,
        kind=TEACHER,  # the weights cannot say (checkpoints/kinds.py); the caller may
        config={"source": str(path), "autoencoder": str(autoencoder)},
        report=unet.report.lines() + vq.report.lines() + [f"  {OFFICIAL_NOTE}"],
    )


def from_training_state(path: Path, payload: dict) -> LoadedModel:
    """A run's EMA weights. A distillation run's student has its teacher's layout, codec,
    schedule and scale; a teacher run records its own."""
    from tadsr.nets.unet import SwinUNet, UNetConfig

    cfg = payload["config"]
    kind = kind_from_training_config(cfg)
    if kind != TEACHER:
        unet_cfg, codec, process, scale = _teacher_layout(cfg)
        net = SwinUNet(unet_cfg)
    else:
        try:
            net = SwinUNet(UNetConfig.from_dict(cfg["unet"]))
            codec = codec_from_config(cfg["codec"])
            process = Process(ScheduleConfig.from_dict(cfg["schedule"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad recorded config ({exc})") from None
        scale = int(cfg.get("scale", 4))
    try:
        net.load_state_dict(payload["ema"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise CheckpointError(f"{path}: its EMA weights do not fit its config ({first})") from None
    report = [f"{path}: training checkpoint at step {int(payload['step'])}, EMA weights"]
    return LoadedModel(net.eval(), codec, process, scale, kind, cfg, report=report)


def _teacher_layout(cfg: dict) -> tuple[Any, Codec, Process, int]:
    """(UNetConfig, codec, process, scale) that a distillation run's student shares with its
    teacher; from our weights file without reading the teacher's network weights."""
    from tadsr.checkpoints.io import load_model_file
    from tadsr.models import resolve_model
    from tadsr.nets.unet import UNetConfig

    path = resolve_model(cfg["teacher"])
    if path.suffix == ".safetensors" and not cfg.get("autoencoder"):
        meta, _, codec = load_model_file(path, unet=False)
        if codec is not None and "unet" in meta:
            process = Process(ScheduleConfig.from_dict(meta["schedule"]))
            return UNetConfig.from_dict(meta["unet"]), codec, process, int(meta.get("scale", 4))
    teacher = load(cfg["teacher"], cfg.get("autoencoder") or None)
    return teacher.net.cfg, teacher.codec, teacher.process, teacher.scale
