"""Small real models for the upscale / tiling tests (not tests themselves).

`tiny_student()` is the real SRPipeline with a tiny random-weight Swin-UNet student on the
pixel-unshuffle codec. `LocalPipeline` follows the same contract with a purely local model
(three 3x3 convs + pixel shuffle x4, receptive radius 3 LR pixels), for which tiling with
enough context must give exactly the untiled result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def tiny_student(seed: int = 0, kind: str = "student"):
    """The real SRPipeline around a ~20k-parameter SwinUNet with random (non-zero) weights."""
    from tadsr.diffusion import SCHEDULE_PRESETS, Process
    from tadsr.nets.codec import PixelUnshuffleCodec
    from tadsr.nets.unet import SwinUNet, UNetConfig
    from tadsr.pipeline import SRPipeline

    cfg = UNetConfig(
        image_size=8, in_channels=48, out_channels=48, model_channels=8, num_res_blocks=(1,),
        attention_resolutions=(8,), channel_mult=(1,), num_head_channels=8, swin_depth=1,
        swin_embed_dim=8, window_size=4, lq_size=8, norm_groups=4,
    )  # fmt: skip
    net = SwinUNet(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the output conv starts at zero; give every weight a value
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return SRPipeline(net, PixelUnshuffleCodec(4), Process(SCHEDULE_PRESETS["sr"]), kind=kind)


class LocalPipeline:
    """SRPipeline contract over a local conv model; output(p) depends on lq and noise near p."""

    scale = 4
    kind = "student"
    default_steps = 1

    def __init__(self, seed: int = 0, width: int = 8) -> None:
        torch.manual_seed(seed)
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.net = nn.Sequential(
            nn.Conv2d(6, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 3 * 16, 3, padding=1),
        ).eval()  # fmt: skip
        self.calls: list[tuple[int, int]] = []

    def noise_shape(self, h: int, w: int, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, 3, h, w)

    def receptive_halo(self) -> int:
        return 3

    @torch.no_grad()
    def __call__(self, lq: Tensor, *, noise: Tensor | None = None, generator=None,
                 steps: int | None = None, step_noise=None, callback=None) -> Tensor:  # fmt: skip
        b, _, h, w = lq.shape
        if noise is None:
            noise = torch.randn(self.noise_shape(h, w, b), generator=generator)
        assert tuple(noise.shape) == self.noise_shape(h, w, b)
        self.calls.append((h, w))
        x = torch.cat([lq.float(), 0.3 * noise.float()], dim=1)
        up = F.interpolate(lq.float(), scale_factor=4, mode="nearest")
        out = (up + 0.5 * torch.tanh(F.pixel_shuffle(self.net(x), 4))).clamp(-1, 1)
        if callback is not None:  # its one step, over the image (it has no latent)
            callback(0, out, out)
        return out


def save_tiny_model(path, seed: int = 0, kind: str = "student"):
    """Write the tiny random-weight model as our .safetensors (fp32); returns the path."""
    from tadsr.checkpoints.io import save_model
    from tadsr.diffusion import SCHEDULE_PRESETS

    pipe = tiny_student(seed, kind)
    return save_model(path, unet=pipe.net, codec=pipe.codec, schedule=SCHEDULE_PRESETS["sr"],
                      kind=f"sr_{kind}", steps=1 if kind == "student" else 15,
                      dtype=None)  # fmt: skip
