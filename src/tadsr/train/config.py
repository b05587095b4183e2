"""Typed training configurations with named presets; YAML files and --set only override.

The resolved configuration is written into the run folder and into every checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

import yaml

from tadsr.diffusion.schedule import SCHEDULE_PRESETS, ScheduleConfig
from tadsr.nets.unet import UNET_PRESETS, UNetConfig
from tadsr.utils.config import from_dict, to_dict

PIXEL_F4 = {"kind": "pixel_unshuffle", "factor": 4}
VQ_F4 = {"kind": "vq", "path": "autoencoder_vq_f4.pth"}

# The CPU-sized model bundled with the package: lossless pixel-unshuffle f4 "latent"
# (48 channels), three UNet levels with Swin layers at each.
SMALL_UNET = UNetConfig(
    image_size=32,
    in_channels=48,
    model_channels=32,
    out_channels=48,
    num_res_blocks=(1, 1, 1),
    attention_resolutions=(32, 16, 8),
    channel_mult=(1, 2, 2),
    num_head_channels=32,
    swin_depth=2,
    swin_embed_dim=32,
    window_size=8,
    mlp_ratio=2.0,
    lq_size=32,
    # One norm group: with 32 groups over 32 channels every GroupNorm is an instance norm that
    # erases each channel's mean and scale, and a model this narrow then cannot reproduce an
    # image's colours (docs/MODEL_CARD.md, "Choices of the small preset, measured").
    norm_groups=1,
    # A fixed blurred-bicubic estimate added to the x0 output: the one-group GroupNorm at the
    # output head still cannot carry absolute colour, and flat crops lost colour without it;
    # blur sigma 1 LR pixel (same section of the model card)
    lq_skip=True,
    lq_skip_sigma=1.0,
)
TINY_UNET = UNetConfig(  # for tests: a few seconds per step
    image_size=16,
    in_channels=48,
    model_channels=32,
    out_channels=48,
    num_res_blocks=(1, 1),
    attention_resolutions=(16, 8),
    channel_mult=(1, 1),
    num_head_channels=32,
    swin_depth=1,
    swin_embed_dim=32,
    window_size=8,
    mlp_ratio=1.0,
    lq_size=16,
    norm_groups=1,
)


@dataclass
class DataConfig:
    root: str = "data/photos"
    crop_size: int = 256
    degradation: str = "realesrgan"
    val_pairs: str = "data/val_pairs"
    val_count: int = 8
    texture_candidates: int = 1  # >1: keep the most textured of K random crops
    workers: int = 0  # DataLoader worker processes per training process (0: in the process)
    prefetch: int = 2  # micro-batches each worker makes ahead
    # where the degradation runs: cpu (in the workers; the exact reference) | device (batched
    # on the training device, e.g. the GPU, after the workers read the crops)
    degrade_on: str = "cpu"


@dataclass
class OptimConfig:
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup: int = 5000
    decay_from: int = 0  # > 0: cosine decay of the lr from this step to 0 at run.iterations
    grad_clip: float = 1.0  # max gradient norm; 0 = no clipping (the distillation's default)
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class RunConfig:
    iterations: int = 300_000
    batch_size: int = 64  # global, over all processes and accumulation steps
    grad_accum: int = 1
    mixed_precision: str = "no"  # no | bf16 | fp16 | auto (bf16 where the hardware has it)
    ema: float = 0.999
    seed: int = 0
    log_every: int = 10
    val_every: int = 5000
    save_every: int = 1000
    threads: int = 0  # torch threads per process; 0 = torch default
    init_from: str = ""  # a model file whose UNet weights start a new run (not a resume)


@dataclass
class TeacherConfig:
    name: str = "sr"
    unet: UNetConfig = field(default_factory=lambda: UNET_PRESETS["sr"])
    codec: dict = field(default_factory=lambda: dict(VQ_F4))
    schedule: ScheduleConfig = field(default_factory=lambda: SCHEDULE_PRESETS["sr"])
    scale: int = 4
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


@dataclass
class DistillConfig:
    name: str = "sr"
    teacher: str = ""  # path to the teacher (our safetensors or an official .pth)
    autoencoder: str = ""  # official VQ .pth when the teacher is an official file
    w_reg: float = 1.0
    w_hfsd: float = 1.0
    w_gan: float = 0.02
    # regression target: teacher (the teacher's deterministic sample, the paper) | hr (the
    # ground-truth latent: a faithful one-step model, the dial's F = 1 end)
    reg_target: str = "teacher"
    # < 1: the regression weighs the high frequencies of the decoded images' difference by
    # this, the low ones by 1 (a Gaussian split of sigma reg_hf_sigma HR pixels; at 1.5 the
    # split is at the x4 LR's Nyquist frequency): the discriminator alone then says what the
    # detail the LR cannot carry looks like (Fritsche et al. 2019); 1 = the paper's loss
    reg_hf_weight: float = 1.0
    reg_hf_sigma: float = 1.5
    # l2 (the paper's squared error) | l1 (mean absolute error, as PSNR-oriented SR trains)
    reg_norm: str = "l2"
    # > 0: the flat-area loss (`tadsr.losses.flat`): the decoded student's high-pass against
    # the HR's, weighted by how smooth the HR is (exp(-(local RMS detail / flat_tau)^2)), so
    # that grain on walls, sky and soft backgrounds costs and texture does not; 0 = off
    w_flat: float = 0.0
    flat_tau: float = 0.02
    # HFSD reference: teacher (TAD-SR) | hr (the official code's score_distill_target option)
    # | noise (plain score distillation)
    hfsd_reference: str = "teacher"
    hfsd_noise: str = "gaussian"  # gaussian | uniform (the official code's mistake)
    hfsd_max_t: int = 3  # t_h uniform in {0 .. hfsd_max_t - 1}
    # what the teacher samples from for the regression target: lq (the student's own LR input,
    # the paper) | clean (the bicubic /scale of the same HR crop: on a noisy or JPEG input the
    # student learns the teacher's picture of the clean photo, not the teacher's noise)
    teacher_input: str = "lq"
    # steps of the teacher's deterministic sampling that makes the regression target:
    # 0 = all T (the paper); n < T = respaced to n steps, a target with less sampled texture
    teacher_steps: int = 0
    disc_lr: float = 5e-5
    disc_grad_clip: float = 0.0  # the discriminator's gradient-norm clip (0: none)
    # the discriminator: encoder (the paper's heads over the frozen teacher encoder) | pixel
    # (a time-aware patch discriminator on the decoded x_t at full resolution)
    disc_kind: str = "encoder"
    disc_t_max: int = 0  # t_d uniform in {0 .. disc_t_max - 1}; 0 = the paper's {0 .. T-2}
    # the noise of q(x_t | x0) that D sees: gaussian | uniform (the official code's U[0, 1),
    # about 3.5x less spread) | none (x_t without noise: with disc_t_max 1, D judges x0 itself)
    disc_noise: str = "gaussian"
    # pixel D only: > 0 adds the log local high-pass energy over this window as an input
    # (what the fixed Laplacian-energy detector reads); 0 = image and high-pass only
    disc_energy: int = 0
    disc_steps: int = 1  # discriminator updates per micro-batch
    disc_pretrain: int = 0  # discriminator-only updates before the student's first step
    disc_probe: int = 32  # held-out crops for the discriminator's AUC at each validation
    teacher_cache: int = 0  # >0: precompute this many (crop, noise, teacher target) samples
    teacher_cache_file: str = ""  # reuse another run's cache (same teacher, seed and data)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=lambda: _student_optim())
    run: RunConfig = field(default_factory=lambda: RunConfig(iterations=30_000))


def _student_optim(**kw: Any) -> OptimConfig:
    """The official distillation clips no gradient (TAD-SR's official training settings)."""
    return OptimConfig(grad_clip=0.0, **kw)


def _small_teacher() -> TeacherConfig:
    return TeacherConfig(
        name="small",
        unet=SMALL_UNET,
        codec=dict(PIXEL_F4),
        # clean, mild and heavy LR: trained on heavy degradation alone, the model learnt that
        # all fine structure is noise and wiped out the real detail of clean photos
        data=DataConfig(crop_size=128, val_count=28, degradation="mixed"),
        # constant after warm-up, then a cosine decay over the last 1000 steps
        optim=OptimConfig(lr=5e-4, warmup=100, decay_from=4000),
        run=RunConfig(
            iterations=5000,
            batch_size=8,
            ema=0.995,
            # in-run validation (15-step sampling of crops) is off: the bundle is chosen on
            # whole photos with benchmarks/photo_val.py
            val_every=0,
            save_every=50,
            log_every=10,
            threads=2,
            mixed_precision="auto",
        ),
    )


def _tiny_teacher() -> TeacherConfig:
    return TeacherConfig(
        name="tiny",
        unet=TINY_UNET,
        codec=dict(PIXEL_F4),
        data=DataConfig(crop_size=64, val_count=2),
        optim=OptimConfig(lr=1e-3, warmup=2),
        run=RunConfig(iterations=4, batch_size=4, ema=0.9, val_every=0, save_every=2, log_every=1),
    )


def _face_teacher() -> TeacherConfig:
    """Blind face restoration (ResShift faceir_gfpgan512): VQ-f8 latent, T = 4, x1."""
    return TeacherConfig(
        name="face",
        unet=UNET_PRESETS["face"],
        codec={"kind": "vq", "path": "ffhq512_vq_f8_dim8_face.pth"},
        schedule=SCHEDULE_PRESETS["face"],
        scale=1,
        data=DataConfig(
            root="data/ffhq512", crop_size=512, degradation="face", val_pairs="data/face_val"
        ),
    )


TEACHER_PRESETS = {
    "sr": TeacherConfig,
    "face": _face_teacher,
    "small": _small_teacher,
    "tiny": _tiny_teacher,
}
DISTILL_PRESETS = {
    "sr": DistillConfig,
    # the face student distils on the face teacher's data: FFHQ-style 512-px faces with the
    # GFPGAN-style degradation, not the SR photo corpus
    "face": lambda: DistillConfig(
        name="face", w_hfsd=0.1, w_gan=0.2, data=dataclasses.replace(_face_teacher().data)
    ),
    "small": lambda: DistillConfig(
        name="small",
        # HFSD at a tenth of the paper's weight (the face preset's): at 1 its gradient, nearly
        # the regression's, held the student back from the texture the GAN asks for, and the
        # full method beat regression only by 0.03-0.19 NIQE; at 0.1 by 0.20-0.33 on every LR
        # kind and seed, for 0.08-0.13 dB (MODEL_CARD.md, "The ablation")
        w_hfsd=0.1,
        # the discriminator that learns at this size (MODEL_CARD.md, "The realism losses"):
        # a pixel patch discriminator with a high-pass input judging x0 itself (t_d 0, no
        # noise), pre-trained for 100 updates; at the paper's 0.02 the student painted a
        # 4-pixel grid within 100 steps, at 0.003 it gained NIQE (model card)
        w_gan=0.003,
        disc_kind="pixel",
        disc_t_max=1,
        disc_noise="none",
        disc_pretrain=100,
        teacher_cache=1024,
        disc_lr=2e-4,
        # the target is the teacher's deterministic sampling respaced to 4 steps: at this
        # size the full 15 steps add grain, not detail (MODEL_CARD.md: PSNR-Y lost on whole
        # photos for no better NIQE)
        teacher_steps=4,
        # the teacher samples the clean bicubic LR of each crop: on noisy or JPEG inputs the
        # student then learns the teacher's clean picture, not its noise (MODEL_CARD.md,
        # "Realism stages 5 and 6": +0.1-0.4 dB and 0.2-0.3 lower NIQE against the same run
        # with the teacher on the student's LR)
        teacher_input="clean",
        data=DataConfig(crop_size=128, val_count=28, degradation="mixed"),
        optim=_student_optim(lr=2e-4, warmup=50),
        run=RunConfig(
            iterations=800,
            batch_size=8,
            ema=0.99,
            val_every=200,
            save_every=50,
            log_every=10,
            threads=1,
        ),
    ),
    "tiny": lambda: DistillConfig(
        name="tiny",
        teacher_cache=4,
        data=DataConfig(crop_size=64, val_count=2),
        optim=_student_optim(lr=1e-4, warmup=1),
        run=RunConfig(iterations=4, batch_size=2, ema=0.9, val_every=0, save_every=2, log_every=1),
    ),
}


def _parse_value(text: str) -> Any:
    # YAML 1.1 reads yes/no/on/off as booleans; `--set run.mixed_precision=no` means the string
    if text.strip().lower() in ("yes", "no", "on", "off", "y", "n"):
        return text.strip()
    value = yaml.safe_load(text)
    if isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _set_path(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    cur = d
    for k in keys[:-1]:
        if k not in cur or not isinstance(cur[k], dict):
            raise ValueError(f"--set {dotted}: {k!r} is not a settings group")
        cur = cur[k]
    if keys[-1] not in cur:
        raise ValueError(f"--set {dotted}: unknown setting {keys[-1]!r}")
    if isinstance(cur[keys[-1]], dict) and not isinstance(value, dict) and keys[-1] != "codec":
        some = ", ".join(f"{dotted}.{k}" for k in list(cur[keys[-1]])[:2])
        raise ValueError(f"--set {dotted}: {dotted!r} is a group of settings; set one, e.g. {some}")
    cur[keys[-1]] = value


def _deep_update(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict) and k != "codec":
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


@overload
def resolve(
    kind: Literal["teacher"], name_or_yaml: str, sets: list[str] | None = None
) -> TeacherConfig: ...
@overload
def resolve(
    kind: Literal["distill"], name_or_yaml: str, sets: list[str] | None = None
) -> DistillConfig: ...
@overload
def resolve(
    kind: str, name_or_yaml: str, sets: list[str] | None = None
) -> TeacherConfig | DistillConfig: ...
def resolve(
    kind: str, name_or_yaml: str, sets: list[str] | None = None
) -> TeacherConfig | DistillConfig:
    """Preset name or YAML file (with optional `preset:` key) + `key=value` overrides."""
    presets, cls = (
        (TEACHER_PRESETS, TeacherConfig) if kind == "teacher" else (DISTILL_PRESETS, DistillConfig)
    )
    over: dict = {}
    name = name_or_yaml
    if name_or_yaml.endswith((".yaml", ".yml", ".json")):
        path = Path(name_or_yaml)
        if not path.is_file():
            raise ValueError(f"{path}: no such config file")
        try:
            over = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}" if where is not None else ""
            raise ValueError(f"{path}: not valid YAML{at}") from None
        if not isinstance(over, dict):
            raise ValueError(f"{path}: must be a mapping of settings, not a {type(over).__name__}")
        if "preset" not in over:
            raise ValueError(
                f"{path}: say which preset it changes, e.g. 'preset: small' "
                f"(one of {', '.join(sorted(presets))})"
            )
        name = over.pop("preset")
    if name not in presets:
        raise ValueError(f"unknown {kind} preset {name!r}; choose from {sorted(presets)}")
    d = to_dict(presets[name]())
    _deep_update(d, over)
    for item in sets or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        _set_path(d, key.strip(), _parse_value(value))
    cfg = from_dict(cls, d)
    check(cfg)
    return cfg


def check(cfg: Any) -> None:
    """Settings that parse but cannot train: a one-line ValueError naming the setting."""
    run = cfg.run
    for name in ("iterations", "batch_size", "grad_accum"):
        if getattr(run, name) < 1:
            raise ValueError(f"run.{name} must be at least 1, got {getattr(run, name)}")
    if cfg.data.crop_size < 1:
        raise ValueError(f"data.crop_size must be positive, got {cfg.data.crop_size}")
    if cfg.data.workers < 0 or cfg.data.prefetch < 1:
        raise ValueError(
            f"data.workers must be 0 or more and data.prefetch at least 1, got "
            f"{cfg.data.workers} and {cfg.data.prefetch}"
        )
    if cfg.data.degrade_on not in ("cpu", "device"):
        raise ValueError(f"data.degrade_on must be cpu or device, got {cfg.data.degrade_on!r}")
    if not cfg.optim.lr >= 0:  # (nan too)
        raise ValueError(f"optim.lr must not be negative, got {cfg.optim.lr}")
    if not 0 <= run.ema < 1:
        raise ValueError(f"run.ema must be in [0, 1), got {run.ema}")
    if isinstance(cfg, DistillConfig):
        _check_distill(cfg)


CHOICES = {
    "reg_target": ("teacher", "hr"),
    "reg_norm": ("l2", "l1"),
    "teacher_input": ("lq", "clean"),
    "hfsd_reference": ("teacher", "hr", "noise"),
    "hfsd_noise": ("gaussian", "uniform"),
    "disc_kind": ("encoder", "pixel"),
    "disc_noise": ("gaussian", "uniform", "none"),
}


def _check_distill(cfg: DistillConfig) -> None:
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(
                f"{name} must be one of {', '.join(allowed)}, got {getattr(cfg, name)!r}"
            )
    for name in ("disc_t_max", "disc_probe", "disc_pretrain", "disc_energy"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must be 0 or more, got {getattr(cfg, name)}")
    if not cfg.reg_hf_weight >= 0 or not cfg.reg_hf_sigma > 0:
        raise ValueError(
            f"reg_hf_weight must be 0 or more and reg_hf_sigma positive, got "
            f"{cfg.reg_hf_weight} and {cfg.reg_hf_sigma}"
        )
    if cfg.reg_norm != "l2" and cfg.reg_hf_weight != 1:
        raise ValueError("reg_hf_weight < 1 splits a squared error; it needs reg_norm l2")
    if not cfg.w_flat >= 0 or not cfg.flat_tau > 0:
        raise ValueError(
            f"w_flat must be 0 or more and flat_tau positive, got {cfg.w_flat} and {cfg.flat_tau}"
        )
    if cfg.disc_steps < 1:
        raise ValueError(f"disc_steps must be at least 1, got {cfg.disc_steps}")


def dump(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2)
