"""`tadsr export MODEL --format onnx -o FILE`: the one-step student as one LR-to-SR graph.

The graph (`StudentGraph`) is `SRPipeline.__call__` for a one-step student with the
pixel-unshuffle codec, from LR pixels to SR pixels:

    inputs   lr     float32 (1, 3, H, W), RGB in [0, 1]
             noise  float32 (1, C, H, W), standard normal (C = 48 for the pixel-unshuffle
                    codec, whose latent has the LR image's size)
    output   sr     float32 (1, 3, s*H, s*W), RGB in [0, 1] (clamped)

H and W are dynamic: the graph reflect-pads both inputs to the network's size multiple
and crops back, as the pipeline does. Reflection needs H and W above the padding, so inputs
smaller than the multiple (32) must be edge-padded by the caller (`onnx_backend` does). The
noise is an input so that a caller chooses the seed and can tile with one noise field over
the whole image, as `tadsr upscale` does. The file's metadata (`metadata_props`, keys
`tadsr.*`) records the scale, the noise channels, the network's size multiple, the
receptive halo for tiling and the source model; for a blend of the fidelity dial
(`tadsr export --fidelity F`) also `tadsr.fidelity` and `tadsr.fidelity_endpoint`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tadsr.nets.codec import PixelUnshuffleCodec
from tadsr.pipeline import SRPipeline
from tadsr.utils.files import atomic_write

__all__ = ["StudentGraph", "export_onnx", "is_tadsr_onnx", "max_difference", "output_problem",
           "OPSET"]  # fmt: skip

OPSET = 17


def _pad_amount(size: Tensor | int, multiple: int) -> Tensor | int:
    # (-size) % multiple written so that a traced size stays a graph value
    return (multiple - size % multiple) % multiple


class StudentGraph(nn.Module):
    """LR [0, 1] + noise -> SR [0, 1] through a one-step student pipeline (traceable)."""

    t: Tensor

    def __init__(self, pipe: SRPipeline) -> None:
        super().__init__()
        if pipe.kind != "student":
            raise ValueError("only a one-step student exports as one graph (this is a teacher)")
        if not isinstance(pipe.codec, PixelUnshuffleCodec):
            raise ValueError("ONNX export needs the pixel-unshuffle codec (a VQ codec is not one)")
        if pipe.codec.factor != pipe.scale:
            raise ValueError(
                f"ONNX export needs a latent at the LR size (codec factor {pipe.codec.factor} "
                f"= scale {pipe.scale})"
            )
        self.net = pipe.net
        self.codec = pipe.codec
        self.scale = pipe.scale
        self.multiple = pipe.lr_multiple
        t = pipe.process.last_t
        tt = torch.full((1,), t, dtype=torch.long)
        self.register_buffer("t", tt, persistent=False)
        proc = pipe.process
        self.noise_std = float(proc.kappa * proc.sqrt_etas[t])
        self.input_div = float(proc.input_denominator[t])

    def forward(self, lr: Tensor, noise: Tensor) -> Tensor:
        h, w = lr.shape[-2], lr.shape[-1]
        lq = lr * 2.0 - 1.0
        ph, pw = _pad_amount(h, self.multiple), _pad_amount(w, self.multiple)
        # reflection like the pipeline (the CLI's tiles are never smaller than the padding)
        # traced, the pads are 0-dim tensors, which F.pad takes (its stub says ints)
        lq = F.pad(lq, [0, pw, 0, ph], mode="reflect")  # type: ignore[list-item]
        noise = F.pad(noise, [0, pw, 0, ph], mode="reflect")  # type: ignore[list-item]
        up = F.interpolate(lq, scale_factor=float(self.scale), mode="bicubic", align_corners=False)
        y = self.codec.encode(up)
        x = (y + self.noise_std * noise) / self.input_div
        latent = self.net(x, self.t, lq)
        img = self.codec.decode(latent)[..., : h * self.scale, : w * self.scale]
        return (img.clamp(-1.0, 1.0) + 1.0) * 0.5


def is_tadsr_onnx(path: str | Path) -> bool:
    """Whether `path` is an ONNX file written by `tadsr export` (its tadsr.kind metadata)."""
    import onnx

    from tadsr.utils.files import file_problem

    if file_problem(path):
        return False
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not protobuf, cut, ...: not ours
        return False
    return any(p.key == "tadsr.kind" for p in proto.metadata_props)


def output_problem(model: str | None, output: str | Path, *, overwrite: bool = False) -> str | None:
    """Why `output` must not be written by an export of `model`, or None. Checked before
    anything is written: the output is never the input model (the same file, through a
    symbolic or a hard link too), its folder exists and takes files, and an existing file
    is replaced only when it is an export of ours, or with `overwrite`."""
    import os
    import tempfile

    from tadsr.models import resolve_model
    from tadsr.utils.files import file_problem

    out = Path(output)
    parent = out.parent
    why = file_problem(parent)
    if why == "no such file":
        return f"{out}: its folder {parent} does not exist"
    if why != "is a folder, not a file":
        what = "is a file" if why is None else why.replace(", not a file", "")
        return f"{out}: {parent} {what}, not a folder"
    why = file_problem(out)
    if why == "is a folder, not a file":
        return f"{out}: is a folder (give a file name, e.g. {out / 'model.onnx'})"
    if why is None or out.is_symlink():
        source = resolve_model(model)
        if why is None and os.path.samefile(out, source):
            return f"{out}: is the input model itself; refusing to replace it"
        if why is None and not overwrite and not is_tadsr_onnx(out):
            return (f"{out}: exists and is not an ONNX file written by tadsr export; "
                    "refusing to replace it (--overwrite to replace it)")  # fmt: skip
    elif why != "no such file":
        return f"{out}: {why}"
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        return f"{out}: cannot write in {parent}: {exc.strerror or exc}"
    return None


def export_onnx(
    model: str | None,
    output: str | Path,
    *,
    sample: tuple[int, int] = (64, 96),
    fidelity: float | None = None,
    fidelity_endpoint: str | None = None,
) -> tuple[Path, dict]:
    """Export a one-step student to ONNX at `output` (written atomically); returns
    (path, metadata). `sample` is the (H, W) the tracer runs at (any size works after).
    `fidelity`, `fidelity_endpoint`: export the blend (`SRPipeline.from_pretrained`)."""
    import onnx

    from tadsr.models.fidelity import AUTO, default_fidelity

    if fidelity is None and default_fidelity(model) == AUTO:
        fidelity = 0.0  # one fixed graph: a default of auto exports the plain student
    pipe = SRPipeline.from_pretrained(model, device="cpu", fidelity=fidelity,
                                      fidelity_endpoint=fidelity_endpoint)  # fmt: skip
    if pipe.fidelity == "auto":
        raise ValueError("fidelity 'auto' picks F per image; export a number from 0 to 1")
    graph = StudentGraph(pipe).eval()
    h, w = sample
    lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(pipe.noise_shape(h, w), generator=torch.Generator().manual_seed(1))
    meta = {
        "tadsr.format": "1",
        "tadsr.source": str(pipe.source if pipe.source is not None else model),
        "tadsr.kind": "student",
        "tadsr.scale": str(pipe.scale),
        "tadsr.noise_channels": str(pipe.codec.channels),
        "tadsr.size_multiple": str(pipe.lr_multiple),
        "tadsr.receptive_halo": str(int(pipe.receptive_halo())),
        "tadsr.inputs": "lr: float32 (1,3,H,W) RGB in [0,1]; noise: float32 (1,C,H,W) "
        "standard normal; H, W dynamic (edge-pad to size_multiple when smaller)",
        "tadsr.outputs": "sr: float32 (1,3,scale*H,scale*W) RGB in [0,1]",
    }
    if pipe.dial is not None:  # the weights are a blend: say which
        meta["tadsr.fidelity"] = f"{pipe.fidelity:g}"
        meta["tadsr.fidelity_endpoint"] = str(pipe.fidelity_endpoint)
    output = Path(output)
    import warnings

    with atomic_write(output) as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer warns about Python ints taken from shapes; the graph is checked at
            # several sizes by the tests instead
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (lr, noise),
                str(tmp),
                input_names=["lr", "noise"],
                output_names=["sr"],
                dynamic_axes={
                    "lr": {2: "height", 3: "width"},
                    "noise": {2: "latent_height", 3: "latent_width"},
                    "sr": {2: "out_height", 3: "out_width"},
                },
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        proto = onnx.load(str(tmp))
        proto.doc_string = "tadsr one-step student: " + json.dumps(meta)
        del proto.metadata_props[:]
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))
    return output, meta


def max_difference(
    model: str | None,
    onnx_path: str | Path,
    sizes=((64, 96), (75, 112), (20, 10)),
    **fidelity,
) -> float:
    """Largest |onnxruntime - torch| over the SR pixels ([0, 1]) of random LR inputs of the
    given (H, W) sizes, same noise (needs onnxruntime); `fidelity`: as `export_onnx`'s."""
    from tadsr.inference.onnx_session import OnnxStudent

    pipe = SRPipeline.from_pretrained(model, device="cpu", **fidelity)
    student = OnnxStudent(onnx_path)
    worst = 0.0
    for h, w in sizes:
        g = torch.Generator().manual_seed(h * 1000 + w)
        lr = torch.rand(1, 3, h, w, generator=g)
        noise = torch.randn(pipe.noise_shape(h, w), generator=g)
        ref = ((pipe(lr * 2 - 1, noise=noise) + 1) / 2).numpy()
        worst = max(worst, float(abs(student.run(lr.numpy(), noise.numpy()) - ref).max()))
    return worst
