"""Codecs: the map between images in [-1, 1] and the latent space the diffusion process runs in.

`VQCodec` wraps a frozen VQ autoencoder (encode continuous, decode quantises, as in the ResShift
paper's latent space);
`PixelUnshuffleCodec` is a lossless, weight-free space-to-depth "latent" (f4 -> 48 channels).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tadsr.nets.autoencoder import VQAutoencoder, VQConfig

__all__ = ["Codec", "VQCodec", "PixelUnshuffleCodec", "build_codec"]


class Codec(nn.Module):
    """Base class: `encode(img) -> latent`, `decode(latent) -> img`, `factor`, `channels`."""

    factor: int
    channels: int

    def encode(self, img: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode(self, latent: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, img: Tensor) -> Tensor:
        """Round trip decode(encode(img))."""
        return self.decode(self.encode(img))


class VQCodec(Codec):
    """A frozen VQAutoencoder: encode = encoder + quant_conv; decode = quantise + decoder."""

    def __init__(self, autoencoder: VQAutoencoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.autoencoder.requires_grad_(False)
        self.autoencoder.eval()
        self.factor = autoencoder.cfg.factor
        self.channels = autoencoder.cfg.embed_dim

    @property
    def config(self) -> VQConfig:
        return self.autoencoder.cfg

    def train(self, mode: bool = True) -> VQCodec:
        """The autoencoder stays in eval mode whatever the caller asks (it is frozen)."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    def encode(self, img: Tensor) -> Tensor:
        return self.autoencoder.encode(img)

    def decode(self, latent: Tensor) -> Tensor:
        return self.autoencoder.decode(latent)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "vq", "config": self.autoencoder.cfg.to_dict()}


class PixelUnshuffleCodec(Codec):
    """Lossless space-to-depth: (B, C, H, W) <-> (B, C*f*f, H/f, W/f)."""

    def __init__(self, factor: int = 4, in_channels: int = 3) -> None:
        super().__init__()
        if factor < 1 or in_channels < 1:
            raise ValueError(f"bad pixel-unshuffle codec: factor {factor}, channels {in_channels}")
        self.factor = int(factor)
        self.in_channels = int(in_channels)
        self.channels = self.in_channels * self.factor**2

    def encode(self, img: Tensor) -> Tensor:
        h, w = img.shape[-2:]
        if h % self.factor or w % self.factor:
            raise ValueError(f"image size {h}x{w} is not a multiple of {self.factor}")
        return F.pixel_unshuffle(img, self.factor)

    def decode(self, latent: Tensor) -> Tensor:
        return F.pixel_shuffle(latent, self.factor)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": "pixel_unshuffle", "factor": self.factor}
        if self.in_channels != 3:
            d["in_channels"] = self.in_channels
        return d


def build_codec(d: dict[str, Any], state_dict: dict[str, Tensor] | None = None) -> Codec:
    """Build a codec from its `to_dict()` form; a VQ codec loads `state_dict` strictly."""
    kind = d.get("kind")
    match kind:
        case "pixel_unshuffle":
            if state_dict:
                raise ValueError("a pixel_unshuffle codec has no weights, but some were given")
            return PixelUnshuffleCodec(int(d.get("factor", 4)), int(d.get("in_channels", 3)))
        case "vq":
            ae = VQAutoencoder(VQConfig.from_dict(d["config"]))
            if state_dict is not None:
                ae.load_state_dict(
                    {
                        k: v.to(torch.float32) if v.is_floating_point() else v
                        for k, v in state_dict.items()
                    },
                    strict=True,
                )
            return VQCodec(ae)
        case _:
            raise ValueError(f"unknown codec kind {kind!r} (known: 'vq', 'pixel_unshuffle')")
