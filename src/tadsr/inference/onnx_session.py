"""An exported student (`onnx_export`) in an onnxruntime session, without torch.

Its own module so that the backend (`onnx_backend`, which exports on demand) and the export
(`onnx_export`, which checks its graph against torch) both use it without importing each
other.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["OnnxStudent", "onnxruntime_available"]


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


class OnnxStudent:
    """An exported student in an onnxruntime session: `run(lr, noise) -> sr`, all float32
    numpy (1, 3, H, W) in [0, 1], (1, C, H, W) normal, (1, 3, sH, sW) in [0, 1]."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = ort.InferenceSession(
            str(self.path), opts, providers=["CPUExecutionProvider"]
        )
        props = self.session.get_modelmeta().custom_metadata_map
        if props.get("tadsr.kind") != "student":
            raise ValueError(f"{self.path}: not an ONNX file written by `tadsr export`")

        def number(key: str, lowest: int) -> int:
            raw = props.get(key)
            try:
                value = int(raw)
            except (TypeError, ValueError):
                value = None
            if value is None or value < lowest:
                got = "missing" if raw is None else repr(raw)[:40]
                raise ValueError(f"{self.path}: bad metadata {key} ({got}; a whole number >= "
                                 f"{lowest} is expected): re-export it with `tadsr export`")
            return value

        self.scale = number("tadsr.scale", 1)
        self.noise_channels = number("tadsr.noise_channels", 1)
        self.multiple = number("tadsr.size_multiple", 1)
        self.halo = number("tadsr.receptive_halo", 0)
        self.source = props.get("tadsr.source", self.path.name)
        self.fidelity = props.get("tadsr.fidelity")  # the blend's F, if it is one

    def run(self, lr: np.ndarray, noise: np.ndarray) -> np.ndarray:
        h, w = lr.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        if (ph or pw) and not (ph < h and pw < w):
            # too small to reflect: edge padding, as the torch pipeline does
            pad = ((0, 0), (0, 0), (0, ph), (0, pw))
            lr, noise = np.pad(lr, pad, mode="edge"), np.pad(noise, pad, mode="edge")
        feed = {
            "lr": np.ascontiguousarray(lr, np.float32),
            "noise": np.ascontiguousarray(noise, np.float32),
        }
        sr = self.session.run(["sr"], feed)[0]
        want = (1, 3, feed["lr"].shape[2] * self.scale, feed["lr"].shape[3] * self.scale)
        if sr.shape != want:  # a graph whose output does not match its tadsr.scale
            raise ValueError(f"{self.path}: the graph returned {tuple(sr.shape)} for an input of "
                             f"{tuple(feed['lr'].shape)}, not x{self.scale} {want}")
        return sr[..., : h * self.scale, : w * self.scale]
