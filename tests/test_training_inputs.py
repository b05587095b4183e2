"""Training inputs for quality: degradation mixtures, the mild preset, the whole-photo
validation set, starting a run from a model file, and config values YAML would misread."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tadsr.data.degradation import BicubicDegradation, MixedDegradation, build_degradation
from tadsr.evaluation.imresize import imresize


@pytest.fixture(scope="module")
def crops(photo) -> torch.Tensor:
    """Sixteen 64-px crops of a real photograph, in [0, 1]."""
    x = torch.from_numpy(photo.copy()).permute(2, 0, 1).float() / 255
    tops, lefts = [96 + 64 * (i // 4) for i in range(16)], [128 + 64 * (i % 4) for i in range(16)]
    return torch.stack([x[:, t : t + 64, s : s + 64] for t, s in zip(tops, lefts)])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_mixture_is_seeded_and_mixes_clean_and_degraded(crops):
    deg = build_degradation("mixed")
    a, b = deg(crops, _gen(3)), deg(crops, _gen(3))
    assert torch.equal(a, b) and a.shape == (16, 3, 16, 16)
    clean = BicubicDegradation(4)(crops)
    same = [(a[i] - clean[i]).abs().max().item() < 1e-6 for i in range(16)]
    # p(clean) = 0.5: with 16 samples both kinds show up for this seed
    assert 0 < sum(same) < 16
    assert not torch.equal(a, deg(crops, _gen(4)))


def test_mixture_of_one_part_is_that_part(crops):
    only = build_degradation("bicubic:1")
    assert torch.equal(only(crops, _gen(0)), BicubicDegradation(4)(crops))
    zero = MixedDegradation([("bicubic", 0.0), ("realesrgan", 1.0)])
    assert not torch.equal(zero(crops, _gen(0)), BicubicDegradation(4)(crops))


@pytest.mark.parametrize("spec", ["bicubic:x", "bicubic:-1+realesrgan:1", "nope:1", "bicubic:0"])
def test_bad_mixtures_are_rejected(spec):
    with pytest.raises(ValueError):
        build_degradation(spec)


def test_mild_preset_degrades_less_than_the_papers(crops):
    clean = BicubicDegradation(4)(crops)
    err = {}
    for name in ("realesrgan_mild", "realesrgan"):
        deg = build_degradation(name)
        outs = torch.stack([deg(crops, _gen(s)) for s in range(4)])
        err[name] = float((outs - clean).abs().mean())
    assert 0 < err["realesrgan_mild"] < 0.9 * err["realesrgan"]


def test_imresize_colour_matches_per_channel(photo):
    img = photo[:40, :52].astype(np.float64)
    out = imresize(img, 0.25)
    per = np.stack([imresize(img[..., c], 0.25) for c in range(3)], axis=-1)
    assert out.shape == (10, 13, 3)
    np.testing.assert_allclose(out, per, atol=1e-9)


def test_photo_val_set_is_whole_photos_and_reproducible(tmp_path):
    from tadsr.data.photoval import make_photo_val

    names = ("astronaut", "chelsea")
    make_photo_val(tmp_path / "a", seed=0, names=names)
    make_photo_val(tmp_path / "b", seed=0, names=names)
    info = json.loads((tmp_path / "a" / "photos.json").read_text())
    assert [p["file"] for p in info["photos"]] == ["astronaut.png", "chelsea.png"]
    for p in info["photos"]:
        hr = np.asarray(Image.open(tmp_path / "a" / "hr" / p["file"]))
        assert hr.shape == (p["height"], p["width"], 3) and hr.shape[0] % 4 == 0
        clean = np.asarray(Image.open(tmp_path / "a" / "lr_clean" / p["file"]))
        real = np.asarray(Image.open(tmp_path / "a" / "lr_real" / p["file"]))
        assert clean.shape == real.shape == (hr.shape[0] // 4, hr.shape[1] // 4, 3)
        want = np.clip(np.round(imresize(hr.astype(np.float64), 0.25)), 0, 255)
        assert np.array_equal(clean, want.astype(np.uint8))
        assert np.abs(real.astype(int) - clean.astype(int)).mean() > 0.5  # degraded
        heavy = np.asarray(Image.open(tmp_path / "a" / "lr_heavy" / p["file"]))
        assert heavy.shape == clean.shape
        # noise sigma 10-15 then JPEG 50-60 over the clean LR: JPEG smooths some of the noise
        diff = heavy.astype(float) - clean.astype(float)
        assert 6 < diff.std() < 15
        for sub in ("hr", "lr_clean", "lr_real", "lr_heavy"):
            a = (tmp_path / "a" / sub / p["file"]).read_bytes()
            assert a == (tmp_path / "b" / sub / p["file"]).read_bytes()


def test_set_keeps_yaml_words_as_strings():
    from tadsr.train.config import resolve

    cfg = resolve("teacher", "tiny", ["run.mixed_precision=no", "optim.lr=2e-4"])
    assert cfg.run.mixed_precision == "no"
    assert cfg.optim.lr == pytest.approx(2e-4)


def test_mixed_precision_auto_follows_the_hardware():
    from tadsr.utils.device import DeviceError, autocast_dtype, cpu_has_fast_bf16

    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if cpu_has_fast_bf16() else None)
    assert autocast_dtype("no", cpu) is None
    assert autocast_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(DeviceError, match="mixed precision"):
        autocast_dtype("fp8", cpu)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "run.iterations=abc"], "'iterations' must be a whole number, got 'abc'"),
        (["--set", "run=5"], "'run' is a group of settings"),
        (["--set", "run.iterations=0"], "run.iterations must be at least 1"),
        (["--set", "run.iterations=-5"], "run.iterations must be at least 1"),
        (["--set", "optim.lr=fast"], "'lr' must be a number"),
        (["--device", "cuda:1"] if not torch.cuda.is_available() else ["--set", "run.ema=2"], ""),
    ],
)
def test_bad_training_settings_are_one_line_usage_errors(tmp_path, capsys, args, message):
    from tadsr.cli import main

    assert main(["train", "teacher", "--config", "tiny", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing started


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: [\n", "not valid YAML at line 2"),
        ("- a\n- b\n", "must be a mapping of settings, not a list"),
        ("optim:\n  lr: 0.1\n", "say which preset it changes"),
        ("preset: tiny\noptim:\n  lr: fast\n", "'lr' must be a number"),
    ],
)
def test_bad_yaml_configs_name_the_file_and_problem(tmp_path, capsys, text, message):
    from tadsr.cli import main

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    assert main(["train", "teacher", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_face_distillation_uses_the_face_teachers_data():
    from tadsr.train.config import resolve

    teacher, student = resolve("teacher", "face"), resolve("distill", "face")
    assert student.data == teacher.data
    assert student.data.degradation == "face" and student.data.crop_size == 512
    assert (student.w_hfsd, student.w_gan) == (0.1, 0.2)


def test_photo_val_adds_a_corpus_validation_split_and_drops_it_again(tmp_path, capsys):
    """--corpus: the corpus's val-split photos (never its train split) join the set, area-shrunk
    to max_side with their manifest licence; a later run without it leaves exactly the base set."""
    from skimage import data as skdata

    from tadsr.cli import main
    from tadsr.data.corpus import build_folder_corpus
    from tadsr.data.photoval import make_photo_val

    src = tmp_path / "src"
    src.mkdir()
    for name in ("coffee", "chelsea", "rocket", "astronaut"):
        Image.fromarray(getattr(skdata, name)()).save(src / f"{name}.png")
    build_folder_corpus(src, tmp_path / "corpus", licence="CC0 test", downsample=1,
                        progress=False)  # fmt: skip
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    val = {p["name"] for p in manifest["photos"] if p["split"] == "val"}
    train = {p["name"] for p in manifest["photos"] if p["split"] == "train"}
    assert val and train

    out = tmp_path / "pv"
    make_photo_val(out, names=["camera"] + [f"corpus_{n}" for n in val | train],
                   corpus=tmp_path / "corpus", max_side=100)  # fmt: skip
    info = json.loads((out / "photos.json").read_text())
    files = sorted(p["file"] for p in info["photos"])
    assert files == sorted(["camera.png"] + [f"corpus_{n}.png" for n in val])
    for p in info["photos"]:
        hr = np.asarray(Image.open(out / "hr" / p["file"]))
        lr = np.asarray(Image.open(out / "lr_heavy" / p["file"]))
        assert hr.shape[:2] == (p["height"], p["width"]) and lr.shape[0] * 4 == hr.shape[0]
        if p["file"].startswith("corpus_"):
            assert max(hr.shape[:2]) <= 100 and p["licence"] == "CC0 test"
            # the whole photo, shrunk: its aspect ratio is kept to within the crop to /4
            meta = next(m for m in manifest["photos"] if f"corpus_{m['name']}.png" == p["file"])
            assert abs(hr.shape[1] / hr.shape[0] - meta["width"] / meta["height"]) < 0.1

    assert main(["data", "photo-val", "--out", str(out), "--seed", "0"]) == 0  # no --corpus
    for sub in ("hr", "lr_clean", "lr_real", "lr_heavy"):
        assert not list((out / sub).glob("corpus_*.png"))
    capsys.readouterr()
    assert main(["data", "photo-val", "--out", str(tmp_path / "x"), "--corpus", str(src)]) == 1
    err = capsys.readouterr().err
    assert str(src / "manifest.json") in err and "Traceback" not in err
    (src / "manifest.json").write_text("[1, 2]")  # JSON, but not a manifest
    assert main(["data", "photo-val", "--out", str(tmp_path / "x"), "--corpus", str(src)]) == 1
    assert "not a corpus manifest" in capsys.readouterr().err
