"""CropDataset, PairedFolderDataset, make_training_pairs and evaluation pairs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from tadsr.data.corpus import build_folder_corpus
from tadsr.data.datasets import CropDataset, PairedFolderDataset, make_training_pairs
from tadsr.data.degradation import build_degradation
from tadsr.data.pairs import make_eval_pairs


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from skimage import data

    root = tmp_path_factory.mktemp("imgs")
    (root / "nested").mkdir()
    Image.fromarray(data.astronaut()).save(root / "astronaut.png")  # 512x512
    Image.fromarray(data.chelsea()).save(root / "nested" / "chelsea.jpg", quality=95)  # 451x300
    Image.fromarray(data.coffee()).save(root / "coffee.png")  # 600x400
    return root


def test_crop_dataset_plain_folder(folder):
    ds = CropDataset(folder, crop_size=128, split=None, seed=3, length=50)
    assert len(ds) == 50 and len(ds.paths) == 3
    x = ds[7]
    assert x.shape == (3, 128, 128) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    again = CropDataset(folder, crop_size=128, split=None, seed=3, length=50)
    assert torch.equal(again[7], x)  # (seed, index) fixes the crop: exact resume
    assert not torch.equal(ds[8], x)
    other = CropDataset(folder, crop_size=128, split=None, seed=4, length=50)
    assert any(not torch.equal(other[i], ds[i]) for i in range(5))
    with pytest.raises(IndexError):
        ds[50]


def test_crop_matches_photo_and_flips(folder):
    ds = CropDataset(folder, crop_size=64, split=None, seed=0, length=200, weighting="uniform")
    flips = 0
    for i in range(40):
        j, top, left, flip = ds.crop_params(i)
        full = np.asarray(Image.open(ds.paths[j]).convert("RGB"))
        ref = torch.from_numpy(full[top : top + 64, left : left + 64].copy()).permute(2, 0, 1)
        if flip:
            ref = ref.flip(-1)
            flips += 1
        assert torch.equal((ds[i] * 255).round().to(torch.uint8), ref)
    assert 8 < flips < 32
    assert len(ds._cache) <= 3  # each photo decoded once


def test_texture_candidates_prefer_detail(folder):
    """Keeping the most textured of K candidates shifts crops away from flat regions, stays a
    function of (seed, index), and K = 1 is exactly plain random cropping."""
    plain = CropDataset(folder, crop_size=64, split=None, seed=1, length=300)
    one = CropDataset(folder, crop_size=64, split=None, seed=1, length=300, texture_candidates=1)
    assert [plain.crop_params(i) for i in range(20)] == [one.crop_params(i) for i in range(20)]
    picky = CropDataset(folder, crop_size=64, split=None, seed=1, length=300, texture_candidates=4)
    again = CropDataset(folder, crop_size=64, split=None, seed=1, length=300, texture_candidates=4)
    assert torch.equal(picky[11], again[11])
    t_plain = [plain.texture(*plain.crop_params(i)[:3]) for i in range(120)]
    t_picky = [picky.texture(*picky.crop_params(i)[:3]) for i in range(120)]
    assert np.median(t_picky) > 1.3 * np.median(t_plain)
    with pytest.raises(ValueError, match="texture_candidates"):
        CropDataset(folder, crop_size=64, split=None, texture_candidates=0)


def test_crop_dataset_skips_small_and_uses_manifest_split(folder, tmp_path):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = CropDataset(folder, crop_size=320, split=None)
    assert len(ds.paths) == 2 and any("smaller than crop 320" in str(w.message) for w in rec)
    with pytest.raises(ValueError, match="no image of at least"), pytest.warns(UserWarning):
        CropDataset(folder, crop_size=1024, split=None)

    corpus = tmp_path / "corpus"
    build_folder_corpus(folder, corpus, progress=False, min_side=64)
    man = json.loads((corpus / "manifest.json").read_text())
    val = {p["file"] for p in man["photos"] if p["split"] == "val"}
    tr = CropDataset(corpus, crop_size=64, split="train")
    va = CropDataset(corpus, crop_size=64, split="val")
    assert {p.name for p in va.paths} == val
    assert not {p.name for p in tr.paths} & val
    # a folder without a manifest still splits by whole photo
    a = CropDataset(folder, crop_size=64, split="train").paths
    b = CropDataset(folder, crop_size=64, split="val").paths
    assert a and b and not set(a) & set(b)


def test_training_pairs_through_dataloader(folder):
    ds = CropDataset(folder, crop_size=64, split=None, length=8)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    lr, hr = make_training_pairs(batch, build_degradation("realesrgan"), torch.Generator())
    assert lr.shape == (4, 3, 16, 16) and hr is batch


def test_eval_pairs_byte_identical_and_paired_dataset(folder, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ra = make_eval_pairs(folder, a, seed=5, size=64, count_per_image=2, split=None, progress=False)
    make_eval_pairs(folder, b, seed=5, size=64, count_per_image=2, split=None, progress=False)
    assert ra.count == 6
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 13  # 6 hr + 6 lr + pairs.json
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes()
    c = tmp_path / "c"
    make_eval_pairs(folder, c, seed=6, size=64, count_per_image=2, split=None, progress=False)
    assert (a / "lr" / files[0].name).read_bytes() != (c / "lr" / files[0].name).read_bytes()

    ds = PairedFolderDataset(a / "lr", a / "hr")
    lr, hr, name = ds[0]
    assert ds.scale == 4 and lr.shape == (3, 16, 16) and hr.shape == (3, 64, 64)
    assert name == files[0].stem


def test_paired_dataset_errors(tmp_path):
    lr, hr = tmp_path / "lr", tmp_path / "hr"
    lr.mkdir()
    hr.mkdir()
    Image.new("RGB", (16, 16)).save(lr / "x.png")
    Image.new("RGB", (64, 64)).save(hr / "x.png")
    Image.new("RGB", (64, 64)).save(hr / "y.png")
    with pytest.raises(ValueError, match="y has no LR"):
        PairedFolderDataset(lr, hr)
    Image.new("RGB", (16, 20)).save(lr / "y.png")
    with pytest.raises(ValueError, match="is not 4x the LR size"):
        PairedFolderDataset(lr, hr)


def test_cli_pairs(folder, tmp_path, capsys):
    from tadsr.cli import main

    out = tmp_path / "p"
    args = [
        "data",
        "pairs",
        "--hr",
        str(folder),
        "--out",
        str(out),
        "--split",
        "all",
        "--size",
        "64",
        "--count-per-image",
        "1",
        "--degradation",
        "bicubic",
        "--no-progress",
    ]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "lr").iterdir()) == sorted(
        p.name for p in (out / "hr").iterdir()
    )
    assert main(["data", "pairs", "--hr", str(tmp_path / "nope"), "--out", str(out)]) == 1
    with pytest.raises(SystemExit) as exc:  # argparse: --size's range
        main(["data", "pairs", "--hr", str(folder), "--out", str(out), "--size", "0"])
    assert exc.value.code == 2
    assert "argument --size: must be >= 1, got '0'" in capsys.readouterr().err
