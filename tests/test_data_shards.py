"""Sharded corpora (`tadsr data shards`): built from nested folders of real photos, read in
webdataset's layout, giving the very crops of the folder, and training to the very weights of
a run on the folder, with the source gone (nothing is listed again)."""

from __future__ import annotations

import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tadsr.cli import main
from tadsr.data.datasets import CropDataset


@pytest.fixture(scope="module")
def nested(tmp_path_factory) -> Path:
    """ImageNet's layout: class folders of JPEGs (dots in names), real photos."""
    from skimage import data

    root = tmp_path_factory.mktemp("imagenet") / "train"
    for k, name in enumerate(("astronaut", "chelsea", "coffee", "rocket", "motorcamera")):
        img = Image.fromarray(getattr(data, name)() if hasattr(data, name) else data.camera())
        folder = root / f"n0{k % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        img.convert("RGB").save(folder / f"n0{k % 2}_{name}.v1.JPEG", quality=92)
    return root


def _shards(src: Path, out: Path, mb: float = 0.1) -> None:
    assert main(["data", "shards", "--from", str(src), "--out", str(out), "--shard-mb",
                 str(mb), "--no-progress"]) == 0  # fmt: skip


def test_shards_hold_every_photo_byte_for_byte_in_webdataset_layout(nested, tmp_path):
    _shards(nested, tmp_path)
    tars = sorted(tmp_path.glob("shard-*.tar"))
    assert len(tars) >= 2  # 0.1 MiB shards: the five photos do not fit in one
    members = {}
    for t in tars:
        with tarfile.open(t) as tf:
            for m in tf.getmembers():
                members[m.name] = tf.extractfile(m).read()
    files = sorted(nested.rglob("*.JPEG"))
    assert len(members) == len(files)
    for f in files:  # key = relative path without suffix, dots out of the name; ext after
        key = f"{f.parent.name}/{f.name.split('.')[0]}_v1.jpeg"
        assert members[key] == f.read_bytes()


@pytest.mark.parametrize("split", ["train", "val"])
def test_crops_from_shards_are_the_crops_from_the_folder(nested, tmp_path, split):
    _shards(nested, tmp_path)
    a = CropDataset(nested, crop_size=96, split=split, length=40, texture_candidates=2)
    b = CropDataset(tmp_path, crop_size=96, split=split, length=40, texture_candidates=2)
    assert a.photo_count == b.photo_count and np.array_equal(a.sizes, b.sizes)
    assert all(torch.equal(a[i], b[i]) for i in range(40))


def test_a_run_on_shards_with_workers_equals_a_run_on_the_folder(corpus, tmp_path):
    from tadsr.train.config import resolve
    from tadsr.train.teacher import train_teacher

    src = tmp_path / "photos"
    shutil.copytree(corpus, src)
    _shards(src, tmp_path / "shards", mb=64)
    sets = ["run.threads=1", "run.iterations=3"]
    train_teacher(resolve("teacher", "tiny", [f"data.root={src}", *sets]),
                  tmp_path / "folder", device="cpu")  # fmt: skip
    shutil.rmtree(src)  # the shards alone: nothing is listed or read from the source
    cfg = resolve("teacher", "tiny", [f"data.root={tmp_path / 'shards'}", "data.workers=2", *sets])
    train_teacher(cfg, tmp_path / "sharded", device="cpu")
    a, b = (torch.load(tmp_path / r / "checkpoints/last.pt", weights_only=True)["model"]
            for r in ("folder", "sharded"))  # fmt: skip
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_damaged_photo_in_a_shard_is_named_in_one_line(nested, tmp_path):
    _shards(nested, tmp_path, mb=64)
    ds = CropDataset(tmp_path, crop_size=96, split=None)
    row = ds._shards.rows[0]
    with open(tmp_path / "shard-000000.tar", "r+b") as f:  # scribble over its data
        f.seek(int(row["offset"]))
        f.write(b"\0" * int(row["size"]))
    with pytest.raises(ValueError) as exc:
        ds.image(0)
    msg = str(exc.value)
    assert "shard-000000.tar" in msg and "n00/n00_astronaut_v1.jpeg" in msg
    assert len(msg.splitlines()) == 1


def test_bad_sources_are_one_line_errors(tmp_path, capsys):
    assert main(["data", "shards", "--from", str(tmp_path / "none"), "--out",
                 str(tmp_path / "o")]) == 1  # fmt: skip
    (tmp_path / "empty").mkdir()
    assert main(["data", "shards", "--from", str(tmp_path / "empty"), "--out",
                 str(tmp_path / "o")]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "none: not a folder" in err[0] and "no readable images" in err[1]


def test_bench_data_prints_pairs_per_second_of_each_part(nested, tmp_path, capsys):
    _shards(nested, tmp_path)
    assert main(["bench", "--parts", "data", "--data", str(tmp_path), "--workers", "1",
                 "--pairs", "8", "--json", str(tmp_path / "bench.json")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^  (crop reading|degradation|whole path) +([\d.]+) pairs/s", out,
                           re.M))  # fmt: skip
    assert set(rows) == {"crop reading", "degradation", "whole path"}, out
    rows = {k: float(v) for k, v in rows.items()}
    assert all(v > 0 for v in rows.values())
    import json

    saved = json.loads((tmp_path / "bench.json").read_text())["data"]
    assert saved["crop"] == 256 and saved["workers"] == 1 and saved["whole_per_s"] > 0
