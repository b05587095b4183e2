"""The fidelity <-> realism dial: blending arithmetic on real (tiny and bundled) networks,
refused endpoints, `tadsr upscale --fidelity` exit statuses and PNG text, the Python API,
`auto`, photo_val's method specs, and the exported ONNX graph of a blend."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _upscale_helpers import save_tiny_model, tiny_student
from tadsr import Upscaler
from tadsr.checkpoints import CheckpointError
from tadsr.cli import main
from tadsr.inference.fidelity import estimate_fidelity
from tadsr.models import registry
from tadsr.models.fidelity import fidelity_plan, parse_fidelity
from tadsr.pipeline import SRPipeline

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[str, str]:
    """(a tiny student, a tiny teacher of the same architecture with other weights)."""
    d = tmp_path_factory.mktemp("pair")
    student = save_tiny_model(d / "student.safetensors", seed=0)
    teacher = save_tiny_model(d / "teacher.safetensors", seed=1, kind="teacher")
    return str(student), str(teacher)


def _lq(h=12, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g) * 2 - 1, torch.randn(1, 48, h, w, generator=g)


def _params(pipe) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in pipe.net.named_parameters()}


# ------------------------------------------------------------------------- arithmetic
def test_blend_weights_and_outputs_between_the_endpoints(pair):
    student, teacher = pair
    lq, noise = _lq()
    plain = SRPipeline.from_pretrained(student)
    one_step_teacher = SRPipeline.from_pretrained(teacher)
    blends = {f: SRPipeline.from_pretrained(student, fidelity=f, fidelity_endpoint=teacher)
              for f in (0.0, 0.5, 1.0)}  # fmt: skip
    a, b = _params(plain), _params(one_step_teacher)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    for f, pipe in blends.items():
        assert pipe.kind == "student" and pipe.fidelity == f
        w = _params(pipe)
        for k in a:
            torch.testing.assert_close(w[k], (1 - f) * a[k] + f * b[k], rtol=0, atol=1e-7)
    for k in a:  # the ends are exact
        assert torch.equal(_params(blends[0.0])[k], a[k])
        assert torch.equal(_params(blends[1.0])[k], b[k])
    out = {f: p(lq, noise=noise) for f, p in blends.items()}
    assert torch.equal(out[0.0], plain(lq, noise=noise))
    torch.testing.assert_close(out[1.0], one_step_teacher(lq, noise=noise, steps=1), rtol=0,
                               atol=1e-6)  # fmt: skip
    d_ends = (out[0.0] - out[1.0]).abs().mean()
    assert d_ends > 0.01
    assert 0 < (out[0.5] - out[0.0]).abs().mean() < d_ends
    assert 0 < (out[0.5] - out[1.0]).abs().mean() < d_ends


def test_dial_reblends_in_place_and_auto_starts_at_the_student(pair):
    student, teacher = pair
    pipe = SRPipeline.from_pretrained(student, fidelity="auto", fidelity_endpoint=teacher)
    fixed = SRPipeline.from_pretrained(student, fidelity=0.3, fidelity_endpoint=teacher)
    assert pipe.fidelity == "auto" and pipe.dial.value == 0.0
    pipe.dial.set(0.3)
    for k, v in _params(fixed).items():
        assert torch.equal(_params(pipe)[k], v)
    with pytest.raises(ValueError):
        pipe.dial.set(1.5)


def test_the_bundled_dial_runs_from_the_student_to_its_faithful_endpoint(photo):
    """F = 1 is the bundled faithful endpoint (named in the registry) run in one step; F = 0
    is the plain student."""
    endpoint = registry()["tadsr-small"]["fidelity_endpoint"]
    img = np.ascontiguousarray(photo[120:152, 210:250])
    blend = Upscaler.from_pretrained(fidelity=1, dtype="fp32", tile=0)
    faithful = Upscaler.from_pretrained(endpoint, steps=1, dtype="fp32", tile=0)
    student = Upscaler.from_pretrained(fidelity=0, dtype="fp32", tile=0)
    out = blend(img).astype(int)
    assert np.abs(out - faithful(img).astype(int)).max() <= 1
    assert np.abs(out - student(img).astype(int)).max() > 8  # the endpoints differ
    assert blend.last_fidelity == 1.0


# ------------------------------------------------------------------------- refusals
def _save_other(path, *, kappa=None, channels=None):
    """The tiny student with another schedule (kappa) or another width (channels)."""
    import dataclasses

    from tadsr.checkpoints.io import save_model
    from tadsr.diffusion import SCHEDULE_PRESETS
    from tadsr.nets.unet import SwinUNet

    pipe = tiny_student(2)
    net, schedule = pipe.net, SCHEDULE_PRESETS["sr"]
    if channels is not None:
        net = SwinUNet(dataclasses.replace(net.cfg, model_channels=channels))
    if kappa is not None:
        schedule = dataclasses.replace(schedule, kappa=kappa)
    return str(save_model(path, unet=net, codec=pipe.codec, schedule=schedule,
                          kind="sr_student", steps=1, dtype=None))  # fmt: skip


def test_an_endpoint_of_another_kind_is_refused_in_one_line(pair, tmp_path):
    student, _ = pair
    wide = _save_other(tmp_path / "wide.safetensors", channels=16)
    other = _save_other(tmp_path / "kappa.safetensors", kappa=1.0)
    for endpoint, words in ((wide, "tensor "), (other, "their schedule differs (kappa: ")):
        with pytest.raises(CheckpointError) as err:
            SRPipeline.from_pretrained(student, fidelity=0.5, fidelity_endpoint=endpoint)
        msg = str(err.value)
        assert "\n" not in msg and student in msg and endpoint in msg and words in msg, msg


def test_values_and_plans():
    assert parse_fidelity("0.25") == 0.25 and parse_fidelity(1) == 1.0
    assert parse_fidelity(" AUTO ") == "auto" and parse_fidelity(None) is None
    for bad in ("1.01", -0.1, "nan", "inf", float("nan"), "half", ""):
        with pytest.raises(ValueError, match="fidelity"):
            parse_fidelity(bad)
    # the registry names the bundled student's endpoint and its default (0: the plain model)
    assert fidelity_plan("tadsr-small", 0.5) == (0.5, "tadsr-small-faithful")
    assert fidelity_plan(None, "auto") == ("auto", "tadsr-small-faithful")
    default = parse_fidelity(registry()["tadsr-small"].get("default_fidelity"))
    endpoint = registry()["tadsr-small"]["fidelity_endpoint"]
    assert fidelity_plan("tadsr-small") == ((None, None) if not default else (default, endpoint))
    with pytest.raises(ValueError, match="no faithful endpoint"):
        fidelity_plan("tadsr-small-teacher", 0.5)
    # F = 0 is the model itself, so a model with no endpoint runs as it is
    assert fidelity_plan("tadsr-small-teacher", 0) == (None, None)
    assert fidelity_plan("own.safetensors", "0") == (None, None)
    assert fidelity_plan("tadsr-small", 0) == (0.0, "tadsr-small-faithful")
    with pytest.raises(ValueError, match="needs a fidelity"):
        fidelity_plan("own.safetensors", None, "other.safetensors")


# ------------------------------------------------------------------------- CLI
def _cli(capsys, *argv):
    code = main(["upscale", *map(str, argv)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.fixture(scope="module")
def lr_png(tmp_path_factory, photo) -> Path:
    path = tmp_path_factory.mktemp("lr") / "a.png"
    Image.fromarray(np.ascontiguousarray(photo[100:116, 200:220])).save(path)
    return path


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "inf", "half"])
def test_cli_bad_values_are_usage_errors(capsys, tmp_path, lr_png, value):
    code, err = _cli(capsys, lr_png, "-o", tmp_path, f"--fidelity={value}")
    assert code == 2 and err.count("\n") == 1 and "fidelity" in err, err
    assert not (tmp_path / "a.png").exists()


def test_cli_refusals(capsys, tmp_path, lr_png, pair):
    student, teacher = pair
    wrong = _save_other(tmp_path / "wide.safetensors", channels=16)
    cases = [  # (arguments, exit status, words of the one line)
        (["--model", student, "--fidelity", "0.5"], 2, "no faithful endpoint"),
        (["--model", "tadsr-small-teacher", "--fidelity", "0.5"], 2, "no faithful endpoint"),
        (["--model", teacher, "--fidelity", "0.5", "--fidelity-endpoint", student, "--steps",
          "4"], 2, "--steps 4"),
        (["--model", student, "--fidelity", "auto", "--fidelity-endpoint", teacher,
          "--backend", "onnxruntime"], 2, "auto"),
        (["--model", student, "--fidelity", "0.5", "--fidelity-endpoint", wrong], 1,
         "cannot be blended"),
    ]  # fmt: skip
    for argv, status, words in cases:
        code, err = _cli(capsys, lr_png, "-o", tmp_path / "o", "-q", *argv)
        assert code == status and err.count("\n") == 1 and words in err, (argv, err)


def test_cli_records_the_fidelity_and_default_output_is_unchanged(capsys, tmp_path, lr_png,
                                                                  pair):  # fmt: skip
    student, teacher = pair
    dial = ["--fidelity-endpoint", teacher, "--fidelity"]
    runs = {"plain": [], "0": [*dial, "0"], "0.5": [*dial, "0.5"], "alone": ["--fidelity", "0"]}
    for name, extra in runs.items():
        code, err = _cli(capsys, lr_png, "-o", tmp_path / name, "-q", "--model", student, *extra)
        assert code == 0, err
    images = {n: Image.open(tmp_path / n / "a.png") for n in runs}
    assert "tadsr:fidelity" not in images["plain"].info
    assert images["0"].info["tadsr:fidelity"] == "0"
    assert images["0.5"].info["tadsr:fidelity"] == "0.5"
    px = {n: np.asarray(im).astype(int) for n, im in images.items()}
    assert np.array_equal(px["plain"], px["0"]) and np.array_equal(px["plain"], px["alone"])
    assert np.abs(px["0.5"] - px["0"]).max() > 0
    # the bundled default is the registry's default_fidelity: the picture of asking for it
    default = str(registry()["tadsr-small"]["default_fidelity"])
    for name, extra in (("bundled", []), ("asked", ["--fidelity", default])):
        code, err = _cli(capsys, lr_png, "-o", tmp_path / name, "-q", "--dtype", "fp32", *extra)
        assert code == 0, err
    got, asked = (Image.open(tmp_path / n / "a.png") for n in ("bundled", "asked"))
    assert np.array_equal(np.asarray(got), np.asarray(asked))
    assert got.info.get("tadsr:fidelity") == asked.info.get("tadsr:fidelity")


def test_cli_auto_says_the_chosen_fidelity_per_image(capsys, tmp_path, pair, photo):
    student, teacher = pair
    clean = np.ascontiguousarray(photo[100:164, 200:264])
    noisy = np.clip(clean + RNG.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    Image.fromarray(clean).save(tmp_path / "clean.png")
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    code, err = _cli(capsys, tmp_path / "clean.png", tmp_path / "noisy.png", "-o",
                     tmp_path / "o", "--model", student, "--fidelity", "auto",
                     "--fidelity-endpoint", teacher)  # fmt: skip
    assert code == 0, err
    assert "noisy.png: fidelity auto -> 1\n" in err
    f_clean = estimate_fidelity(clean)
    assert f_clean < 0.5 and f"clean.png: fidelity auto -> {f_clean:g}\n" in err
    assert Image.open(tmp_path / "o" / "noisy.png").info["tadsr:fidelity"] == "1 (auto)"


# ------------------------------------------------------------------------- API and auto
def test_api_fidelity_result_info_and_errors(pair):
    student, teacher = pair
    img = Image.fromarray(RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8))
    up = Upscaler.from_pretrained(student, fidelity=0.5, fidelity_endpoint=teacher)
    out = up(img)
    assert out.size == (44, 36) and up.last_fidelity == 0.5
    assert out.info["tadsr:fidelity"] == "0.5"
    assert Upscaler.from_pretrained(student).last_fidelity is None
    with pytest.raises(ValueError, match="fidelity"):
        Upscaler.from_pretrained(student, fidelity=2, fidelity_endpoint=teacher)
    with pytest.raises(ValueError, match="no faithful endpoint"):
        Upscaler.from_pretrained(student, fidelity=0.5)
    with pytest.raises(ValueError, match="without a fidelity dial"):
        Upscaler(SRPipeline.from_pretrained(student), fidelity=0.5)


def test_auto_maps_noise_and_jpeg_blocks_to_a_higher_fidelity(photo):
    clean = np.ascontiguousarray(photo[:128, 128:256])
    noisy = np.clip(clean + RNG.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(clean).save(buf, format="JPEG", quality=15)
    blocky = np.asarray(Image.open(buf))
    f = [estimate_fidelity(x) for x in (clean, noisy, blocky)]
    assert 0.1 <= f[0] <= 0.25 and f[1] == 1.0 and f[2] >= 0.6, f  # never below the floor
    assert all(round(v / 0.05, 6).is_integer() for v in f)
    # 16-bit input reads as the same picture
    assert estimate_fidelity(clean.astype(np.uint16) * 257, 65535.0) == f[0]


def test_auto_reblends_per_image_as_the_fixed_value_would(pair, photo):
    student, teacher = pair
    noisy = np.clip(photo[:40, :40] + RNG.normal(0, 15, (40, 40, 3)), 0, 255).astype(np.uint8)
    flat = np.full((40, 40, 3), 120, np.uint8)
    auto = Upscaler.from_pretrained(student, fidelity="auto", fidelity_endpoint=teacher)
    got = [auto(x) for x in (noisy, flat, noisy)]
    assert auto.last_fidelity == 1.0
    one = Upscaler.from_pretrained(student, fidelity=1.0, fidelity_endpoint=teacher)
    from tadsr.inference.fidelity import AUTO_FLOOR

    low = Upscaler.from_pretrained(student, fidelity=AUTO_FLOOR, fidelity_endpoint=teacher)
    assert np.array_equal(got[0], one(noisy)) and np.array_equal(got[2], got[0])
    assert np.array_equal(got[1], low(flat))  # a clean input: auto's floor


def test_photo_val_method_spec_takes_a_fidelity():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from photo_val import parse_spec
    finally:
        sys.path.pop(0)
    assert parse_spec("tadsr-small~0.5") == {"name_or_path": "tadsr-small", "steps": None,
                                             "dtype": "fp32", "fidelity": "0.5"}  # fmt: skip
    assert parse_spec("m.safetensors@1!bf16~auto") == {
        "name_or_path": "m.safetensors",
        "steps": 1,
        "dtype": "bf16",
        "fidelity": "auto",
    }
    assert parse_spec("tadsr-small-teacher@4")["fidelity"] is None


# ------------------------------------------------------------------------- ONNX
def test_exported_blend_matches_torch_and_the_cache_is_keyed_by_f(pair, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="onnx not installed (pip install 'tadsr[onnx]')")
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    from tadsr.inference.onnx_backend import OnnxStudent, cached_onnx

    student, teacher = pair
    monkeypatch.setenv("TADSR_CACHE", str(tmp_path / "cache"))
    paths = {f: cached_onnx(student, f, teacher) for f in (0.25, 0.75)}
    assert paths[0.25] != paths[0.75] and all(p.is_file() for p in paths.values())
    assert cached_onnx(student, 0.25, teacher) == paths[0.25]
    lq, noise = _lq(20, 24, seed=3)
    outs = []
    for f, path in paths.items():
        onnx_student = OnnxStudent(path, threads=1)
        assert onnx_student.fidelity == f"{f:g}"
        pipe = SRPipeline.from_pretrained(student, fidelity=f, fidelity_endpoint=teacher)
        ref = ((pipe(lq, noise=noise) + 1) / 2).numpy()
        out = onnx_student.run(((lq + 1) / 2).numpy(), noise.numpy())
        assert np.abs(out - ref).max() < 1e-3
        outs.append(out)
    assert np.abs(outs[0] - outs[1]).max() > 1e-2
    code = main(["export", student, "-o", str(tmp_path / "x.onnx"), "--fidelity", "auto",
                 "--fidelity-endpoint", teacher])  # fmt: skip
    assert code == 2 and not (tmp_path / "x.onnx").exists()


def test_a_registry_default_of_auto_is_taken_as_auto(monkeypatch):
    import tadsr.models as models
    from tadsr.commands.serve import _dials

    entries = models.registry()
    entries["tadsr-small"] = {**entries["tadsr-small"], "default_fidelity": "auto"}
    monkeypatch.setattr(models, "registry", lambda: entries)
    endpoint = entries["tadsr-small"]["fidelity_endpoint"]
    assert fidelity_plan("tadsr-small") == ("auto", endpoint)
    assert fidelity_plan("tadsr-small", 0.25) == (0.25, endpoint)  # an asked F wins
    assert _dials({"tadsr-small": "tadsr-small"}) == {"tadsr-small": "auto"}
