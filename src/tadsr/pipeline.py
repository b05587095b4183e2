"""SRPipeline: LR image -> bicubic x4 -> codec latent y -> sampler -> decode -> SR image.

A model ready to run, one layer below its two users: inference (files, tiling, `tadsr
upscale`) and training's validation. The pipeline owns padding: the LR image is reflect-padded
so that the latent is a multiple of the network's size multiple, and the result is cropped
back. Samplers are the pure functions of tadsr.diffusion.samplers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from tadsr.checkpoints.kinds import check_kind
from tadsr.diffusion import (
    Callback,
    Denoiser,
    Process,
    StepNoise,
    sample_ancestral,
    sample_deterministic,
    sample_one_step,
)

if TYPE_CHECKING:
    from tadsr.checkpoints.blend import FidelityDial

SAMPLERS = ("ancestral", "deterministic")


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad right and bottom to a multiple: reflection where the image allows, else edge copy."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (0, 0)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (ph, pw)


class SRPipeline:
    """A super-resolution model ready to run: network, codec, process and sampler."""

    def __init__(
        self,
        net: torch.nn.Module,
        codec,
        process: Process,
        *,
        scale: int = 4,
        kind: str = "student",
        default_steps: int | None = None,
        sampler: str = "ancestral",
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        meta: dict | None = None,
    ):
        check_kind(kind)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.net = net.to(self.device).eval().requires_grad_(False)
        self.codec = codec
        if isinstance(codec, torch.nn.Module):
            codec.to(self.device).eval().requires_grad_(False)
        self.process = process
        self.scale = int(scale)
        self.kind = kind
        self.default_steps = default_steps or (1 if kind == "student" else process.num_steps)
        self.sampler = sampler
        self.meta = meta or {}
        self.channels_last = False
        self.dial: FidelityDial | None = None  # when the net is a blend (`from_pretrained`)
        self.fidelity: float | str | None = None  # its F, or "auto"
        self.fidelity_endpoint: str | None = None  # the blend's faithful endpoint
        self.source: str | None = None  # the name or path it was loaded from (`from_loaded`)
        # LR pixels per latent pixel is factor/scale; the latent must be a multiple of
        # the net's size multiple.
        latent_multiple = int(getattr(net, "size_multiple", 1))
        self.lr_multiple = max(1, latent_multiple * codec.factor // self.scale)

    # -- shapes ---------------------------------------------------------------------
    def latent_size(self, h: int, w: int) -> tuple[int, int]:
        f = self.codec.factor
        return math.ceil(h * self.scale / f), math.ceil(w * self.scale / f)

    def steps_for(self, steps: int | None) -> int:
        """The sampling steps a call runs: ``steps``, else the model's default (1 for a
        student, the trained T for a teacher)."""
        return steps or self.default_steps

    def noise_shape(self, h: int, w: int, batch: int = 1) -> tuple[int, int, int, int]:
        lh, lw = self.latent_size(h, w)
        return (batch, self.codec.channels, lh, lw)

    def receptive_halo(self) -> int:
        """LR pixels of context a tile needs so that tiled ~= untiled (Swin windows + convs)."""
        return max(16, self.lr_multiple)

    # -- running --------------------------------------------------------------------
    def _autocast(self):
        if self.dtype == torch.float32:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.dtype)

    @torch.no_grad()
    def __call__(
        self,
        lq: Tensor,
        *,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        step_noise: StepNoise | None = None,
        callback: Callback | None = None,
    ) -> Tensor:
        """Super-resolve a batch in [-1, 1]. `noise`: the prior noise (else drawn from
        `generator`); `step_noise(i, shape)`: an ancestral teacher's noise of step i, of the
        prior noise's shape (else drawn from `generator` as it goes); `callback(i, x, x0_hat)`
        after each sampling step, over the latents (see `tadsr.diffusion.samplers`)."""
        if lq.ndim != 4 or lq.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) image batch, got {tuple(lq.shape)}")
        b, _, h, w = lq.shape
        lq = lq.to(self.device, torch.float32)
        if noise is None:
            noise = torch.randn(self.noise_shape(h, w, b), generator=generator)
        elif tuple(noise.shape) != self.noise_shape(h, w, b):
            raise ValueError(
                f"noise must have shape {self.noise_shape(h, w, b)}, got {tuple(noise.shape)}"
            )
        lq_pad, _ = pad_to_multiple(lq, self.lr_multiple)
        lh, lw = self.latent_size(*lq_pad.shape[-2:])
        noise = _pad_to(noise.to(self.device, torch.float32), lh, lw)
        shape = self.noise_shape(h, w, b)
        padded = None
        if step_noise is not None:
            ask = step_noise

            def padded(i: int, _shape) -> Tensor:
                n = torch.as_tensor(ask(i, shape)).to(self.device, torch.float32)
                return _pad_to(n, lh, lw)

        with self._autocast():
            up = F.interpolate(lq_pad, scale_factor=self.scale, mode="bicubic", align_corners=False)
            y = self.codec.encode(up).float()
            latent = self._sample(y, lq_pad, noise, generator, steps, padded, callback)
            img = self.codec.decode(latent.to(y.dtype)).float()
        img = img[..., : h * self.scale, : w * self.scale]
        return img.clamp(-1, 1).cpu()

    @property
    def max_steps(self) -> int:
        """The number of steps the model was trained with (the most a teacher can run)."""
        return self.process.num_steps

    def _sample(self, y, lq, noise, generator, steps, step_noise=None, callback=None):
        steps = self.steps_for(steps)  # a teacher's; `UpscaleOptions.validate` checks it
        if self.kind == "student":
            denoiser = Denoiser(self._net_fp32_out, self.process)
            return sample_one_step(denoiser, y, lq, noise=noise, callback=callback)
        process = self.process if steps == self.max_steps else self.process.respaced(steps)
        denoiser = Denoiser(self._net_fp32_out, process)
        if self.sampler == "deterministic":
            return sample_deterministic(denoiser, y, lq, noise=noise, callback=callback)
        return sample_ancestral(
            denoiser, y, lq, noise=noise, generator=generator, step_noise=step_noise,
            callback=callback,
        )  # fmt: skip

    def _net_fp32_out(self, x, t, lq):
        return self.net(x, t, lq).float()

    # -- loading --------------------------------------------------------------------
    @classmethod
    def from_loaded(cls, model, *, kind: str | None = None, **kwargs) -> SRPipeline:
        """A pipeline around a `checkpoints.LoadedModel` (`kind` overrides the file's)."""
        pipe = cls(
            model.net,
            model.codec,
            model.process,
            scale=model.scale,
            kind=kind or model.kind,
            meta=model.config,
            **kwargs,
        )
        pipe.source = model.source
        return pipe

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | None = None,
        *,
        autoencoder: str | None = None,
        kind: str | None = None,
        fidelity: float | str | None = None,
        fidelity_endpoint: str | None = None,
        **kwargs,
    ) -> SRPipeline:
        """Load a bundled model name, our .safetensors, an official .pth (+ autoencoder) or a
        training checkpoint (`tadsr.checkpoints.load`); `kwargs`: sampler, device, dtype.

        `fidelity` (0 realistic .. 1 faithful, or "auto"; None: the registry's default)
        blends the model with its faithful endpoint (`fidelity_endpoint`, else the one the
        registry names) and runs the blend as a one-step student; `pipe.dial` then re-blends
        (see `tadsr.inference.fidelity`). ValueError for a bad value or no endpoint known,
        CheckpointError for an endpoint that cannot be blended with the model."""
        from tadsr.checkpoints import load
        from tadsr.models.fidelity import fidelity_plan

        f, endpoint = fidelity_plan(name_or_path, fidelity, fidelity_endpoint)
        model = load(name_or_path, autoencoder)
        if f is None or endpoint is None:  # fidelity_plan gives both or neither
            pipe = cls.from_loaded(model, kind=kind, **kwargs)
        else:
            pipe = cls._blended(model, f, endpoint, autoencoder, **kwargs)
        if pipe.device.type == "cpu":
            pipe.use_channels_last()
        return pipe

    @classmethod
    def _blended(cls, model, f, endpoint: str, autoencoder, **kwargs) -> SRPipeline:
        """The model blended with `endpoint` at F (`f` "auto": set per image by the caller;
        until then the model's own weights)."""
        from tadsr.checkpoints import CheckpointError, load
        from tadsr.checkpoints.blend import FidelityDial, check_blendable

        own_codec = str(endpoint).endswith(".safetensors") or endpoint in _registry_names()
        try:
            faithful = load(endpoint, None if own_codec else autoencoder)
        except CheckpointError as exc:
            raise CheckpointError(f"fidelity endpoint {exc}") from None
        check_blendable(model, faithful)
        realistic = model.net.state_dict()  # copied by the dial before it blends
        pipe = cls.from_loaded(model, kind="student", **kwargs)
        pipe.dial = FidelityDial(pipe.net, realistic, faithful.net.state_dict())
        pipe.dial.set(0.0 if f == "auto" else f)
        pipe.fidelity = f
        pipe.fidelity_endpoint = faithful.source
        return pipe

    def use_channels_last(self, enabled: bool = True) -> SRPipeline:
        """Keep the network's 4-D weights channels-last (NHWC). On the CPU oneDNN runs the
        convolutions and GroupNorms of the Swin-UNet faster that way (bundled student, 2
        threads: about 10% less network time, see benchmarks/README.md), with the same
        arithmetic up to float32 rounding order. `from_pretrained` turns it on for the CPU."""
        fmt = torch.channels_last if enabled else torch.contiguous_format
        # Module.to takes memory_format (torch documents it); its stub's overloads omit it
        self.net.to(memory_format=fmt)  # type: ignore[call-overload]
        self.channels_last = enabled
        return self


def _registry_names() -> set[str]:
    from tadsr.models import registry

    return set(registry())


def _pad_to(x: Tensor, h: int, w: int) -> Tensor:
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)
