"""JPEG of a batch on its own device (the GPU in training): kornia's differentiable JPEG.

The reference (`tadsr.data.jpeg`) encodes each image with libjpeg on the CPU; a GPU batch
would go to the host and back for it. kornia models the same codec (4:2:0 chroma, the
standard tables scaled by libjpeg's quality formula) in tensor operations, as Real-ESRGAN's
training does with its DiffJPEG. Input and output are put on the 8-bit grid, as the
reference's uint8 encode and decode are. Measured against libjpeg on real photo crops: 37-43
dB PSNR at qualities 30-95 (tests/test_data_device_degradation.py), where JPEG itself
changes the image by 30-38 dB.
"""

from __future__ import annotations

import torch


def _codec():
    try:
        from kornia.enhance import jpeg_codec_differentiable
    except ImportError:
        raise ValueError(
            "data.degrade_on: device needs kornia (pip install 'tadsr[gpu-degrade]')"
        ) from None
    return jpeg_codec_differentiable


def jpeg_on_device(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG-compress each image of ``x`` (B,3,H,W in [0,1]) at its quality (rounded to an
    integer 1-100, as libjpeg takes it), on ``x``'s device."""
    q = quality.to(device=x.device, dtype=torch.float32).round().clamp(1, 100)
    x8 = (x.clamp(0, 1) * 255).round() / 255
    y = _codec()(x8.float(), q)
    return ((y * 255).round().clamp(0, 255) / 255).to(x.dtype)
