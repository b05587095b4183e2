"""The full official pipelines (ResShift 15-step sampling, SinSR one-step) reproduced from the
fixture files alone: networks loaded by inference from official-layout .pth files."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch.testing import assert_close

from tadsr.checkpoints.official import load_official
from tadsr.diffusion import SCHEDULE_PRESETS, Denoiser, Process, sample_ancestral
from tadsr.nets.codec import VQCodec
from tadsr.pipeline import SRPipeline


@pytest.fixture(scope="module")
def official_files(conformance_dir, tmp_path_factory):
    """The fixture weights written as official .pth files (plain torch.save of a state dict)."""
    d = tmp_path_factory.mktemp("official")
    for name in ("unet_sr_small", "vq_f4_small"):
        sd = load_file(conformance_dir / f"{name}.safetensors")
        torch.save({"state_dict": sd}, d / f"{name}.pth")
    return d / "unet_sr_small.pth", d / "vq_f4_small.pth"


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_resshift_15_step_sampling(conformance_dir, official_files):
    r = load_file(conformance_dir / "pipeline_resshift_sr.io.safetensors")
    unet = load_official(official_files[0], expect="unet").module.eval()
    codec = VQCodec(load_official(official_files[1], expect="vq").module)
    with torch.no_grad():
        up = F.interpolate(r["y0"], scale_factor=4, mode="bicubic", align_corners=False)
        z_y = codec.encode(up)
        assert_close(z_y, r["z_y"], atol=1e-4, rtol=1e-4)
        process = Process(SCHEDULE_PRESETS["sr"])
        steps = list(r["step_noise"])
        latent = sample_ancestral(
            Denoiser(unet, process), r["z_y"], r["y0"], noise=r["prior_noise"],
            step_noise=lambda i, _shape: steps[i],
        )
        assert_close(latent, r["final_latent"], atol=1e-4, rtol=1e-4)
        _, idx = codec.autoencoder.quantize(latent)
        assert torch.equal(idx.flatten(), r["final_indices"].flatten())
        assert_close(codec.decode(latent), r["image"], atol=1e-4, rtol=1e-4)


def test_sinsr_one_step_pipeline(conformance_dir, official_files):
    r = load_file(conformance_dir / "pipeline_sinsr_onestep.io.safetensors")
    pipe = SRPipeline.from_pretrained(
        str(official_files[0]), autoencoder=str(official_files[1]), kind="student"
    )
    assert pipe.kind == "student" and pipe.default_steps == 1
    out = pipe(r["y0"], noise=r["noise"])
    assert_close(out, r["image"].clamp(-1, 1), atol=1e-4, rtol=1e-4)


def test_pipeline_pads_odd_sizes(official_files):
    pipe = SRPipeline.from_pretrained(
        str(official_files[0]), autoencoder=str(official_files[1]), kind="student"
    )
    lq = torch.rand(1, 3, 37, 50) * 2 - 1
    out = pipe(lq, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 3, 148, 200)
    assert out.min() >= -1 and out.max() <= 1


def test_model_kind_comes_from_the_contents_never_the_name(official_files, tmp_path):
    """Two names of one official UNet (ResShift's and SinSR's have the same keys) load as the
    same kind, a teacher, saying why; the caller's kind="student" makes the one-step model.
    Our files say their kind in their metadata."""
    import shutil

    from tadsr.checkpoints import load
    from tadsr.checkpoints.kinds import OFFICIAL_NOTE, kind_from_metadata

    unet, vq = official_files
    kinds = set()
    for name in ("resshift_realsrx4_s15_v1.pth", "SinSR_v1.pth"):
        shutil.copy(unet, tmp_path / name)
        model = load(tmp_path / name, vq)
        kinds.add(model.kind)
        assert f"  {OFFICIAL_NOTE}" in model.report
    assert kinds == {"teacher"}
    pipe = SRPipeline.from_pretrained(str(tmp_path / "SinSR_v1.pth"), autoencoder=str(vq))
    assert pipe.kind == "teacher" and pipe.steps_for(None) == 15 and pipe.steps_for(4) == 4
    assert load("tadsr-small").kind == "student" and load("tadsr-small-teacher").kind == "teacher"
    assert kind_from_metadata({"steps": "1"}) == "student"  # no kind recorded: its steps
    assert kind_from_metadata({"kind": "unet", "steps": "15"}) == "teacher"
