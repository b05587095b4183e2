"""Corpus builder: extraction, filtering, dedup, x2 area downsampling, manifest, split."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tadsr.data import corpus
from tadsr.data.corpus import (
    DEFAULT_SOURCES,
    CorpusError,
    PhotoSource,
    assign_split,
    build_folder_corpus,
    build_photo_corpus,
    licence_for,
    parse_dep5_licences,
    sha256_file,
)


@pytest.fixture(scope="module")
def photos():
    from skimage import data

    return {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee()}


def _folder(tmp: Path, photos) -> Path:
    src = tmp / "src"
    (src / "sub").mkdir(parents=True)
    for name, arr in photos.items():
        Image.fromarray(arr).save(src / f"{name}.png")
    shutil.copy(src / "astronaut.png", src / "sub" / "copy.png")  # exact duplicate
    Image.fromarray(photos["coffee"]).resize((300, 200), Image.BICUBIC).save(
        src / "sub" / "coffee_small.jpg", quality=95
    )  # near duplicate
    flat = np.zeros((300, 300, 3), np.uint8)
    flat[:, 150:] = (200, 30, 30)
    Image.fromarray(flat).save(src / "graphic.png")
    rgba = np.dstack([photos["chelsea"], np.full(photos["chelsea"].shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "transparent.png")
    Image.fromarray(photos["chelsea"][:50, :50]).save(src / "tiny.png")
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    (src / "notes.txt").write_text("ignored")
    return src


def test_folder_corpus_filters_dedups_downsamples(tmp_path, photos):
    src = _folder(tmp_path, photos)
    out = tmp_path / "corpus"
    rep = build_folder_corpus(src, out, licence="test", progress=False, min_side=64)
    names = [p["name"] for p in rep.photos]
    assert names == ["astronaut", "chelsea", "coffee"]
    reasons = dict(rep.dropped)
    assert "duplicate" in reasons["sub/copy.png"]
    assert "near-duplicate" in reasons["sub/coffee_small.jpg"]
    assert "graphic" in reasons["graphic.png"]
    assert "transparency" in reasons["transparent.png"]
    assert "too small" in reasons["tiny.png"]
    assert "cannot read" in reasons["broken.jpg"]

    man = json.loads((out / "manifest.json").read_text())
    assert man["complete"] and len(man["photos"]) == 3
    for p in man["photos"]:
        f = out / p["file"]
        assert sha256_file(f) == p["sha256"] and p["licence"] == "test"
        assert (p["width"], p["height"]) == (p["orig_width"] // 2, p["orig_height"] // 2)
        assert p["split"] in ("train", "val")
        assert p["source_sha256"] == sha256_file(src / p["source_file"])
    # x2 area downsampling = mean of each 2x2 block
    got = np.asarray(Image.open(out / "astronaut.png"), dtype=np.float64)
    a = photos["astronaut"].astype(np.float64)
    ref = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4
    assert np.abs(got - ref).max() <= 1.0
    assert sum(p["split"] == "val" for p in man["photos"]) == 1


def test_rebuild_is_idempotent_and_resumes(tmp_path, photos):
    src = _folder(tmp_path, photos)
    out = tmp_path / "corpus"
    build_folder_corpus(src, out, progress=False, min_side=64)
    first = (out / "manifest.json").read_bytes()
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    build_folder_corpus(src, out, progress=False, min_side=64)
    assert (out / "manifest.json").read_bytes() == first
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == mtimes
    # an interrupted build (a photo missing) is completed
    (out / "coffee.png").unlink()
    build_folder_corpus(src, out, progress=False, min_side=64)
    assert (out / "manifest.json").read_bytes() == first


def test_folder_errors(tmp_path):
    with pytest.raises(CorpusError, match="not a folder"):
        build_folder_corpus(tmp_path / "missing", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no images"):
        build_folder_corpus(tmp_path / "empty", tmp_path / "out", progress=False)


def test_split_is_fixed_by_whole_photo():
    names = [f"p{i:02d}" for i in range(44)]
    split = assign_split(names)
    assert sum(v == "val" for v in split.values()) == 7
    assert assign_split(list(reversed(names))) == split
    assert assign_split(["a", "b"])["b"] == "val"
    assert assign_split(["a"]) == {"a": "train"}


def test_default_sources_follow_data_md():
    by = {s.package: s for s in DEFAULT_SOURCES}
    assert set(by) == {
        "lomiri-wallpapers-16.04",
        "lomiri-wallpapers-20.04",
        "mate-backgrounds",
        "plasma-workspace-wallpapers",
        "palapeli-data",
    }
    assert "umang_by_Abhishek_Mudgal.jpg" in by["lomiri-wallpapers-16.04"].exclude
    assert len(by["plasma-workspace-wallpapers"].globs) == 11
    assert len(by["lomiri-wallpapers-20.04"].globs) == 2
    assert by["mate-backgrounds"].licence == "GPL-2+"


DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: 16.04/a_by_x.jpg
 16.04/b_by_y.jpg
Copyright: someone
License: CC-BY-4.0

Files: 16.04/c_by_z.jpg
Copyright: someone
License: CC0-1.0

Files: debian/*
Copyright: packager
License: Expat
"""


def test_dep5_licences():
    st = parse_dep5_licences(DEP5)
    assert licence_for("usr/share/backgrounds/b_by_y.jpg", st, "?") == "CC-BY-4.0"
    assert licence_for("usr/share/backgrounds/c_by_z.jpg", st, "?") == "CC0-1.0"
    assert licence_for("usr/share/backgrounds/other.jpg", st, "?") == "?"


def _fake_deb(tmp: Path, photos) -> Path:
    root = tmp / "pkg"
    bg = root / "usr/share/backgrounds"
    bg.mkdir(parents=True)
    Image.fromarray(photos["astronaut"]).save(bg / "a_by_x.jpg", quality=95)
    Image.fromarray(photos["coffee"]).save(bg / "c_by_z.jpg", quality=95)
    Image.fromarray(photos["chelsea"]).save(bg / "b_by_y.jpg", quality=95)
    Image.fromarray(photos["chelsea"]).save(bg / "plain.jpg", quality=95)
    doc = root / "usr/share/doc/fake-wallpapers"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(DEP5)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        "Package: fake-wallpapers\nVersion: 1.2-3\nArchitecture: all\n"
        "Maintainer: t <t@example.org>\nDescription: test\n"
    )
    deb = tmp / "fake-wallpapers_1.2-3_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not available")
def test_debian_extraction_with_fake_package(tmp_path, photos):
    deb = _fake_deb(tmp_path, photos)
    src = PhotoSource(
        "fake-wallpapers",
        ("usr/share/backgrounds/*_by_*.jpg",),
        "per file",
        exclude=("b_by_y.jpg",),
        per_file_licence=True,
    )
    calls = []

    def downloader(pkg: str, dest: Path) -> Path:
        calls.append(pkg)
        return deb

    out = tmp_path / "photos"
    rep = build_photo_corpus(out, [src], progress=False, downloader=downloader, min_side=64)
    by = {p["name"]: p for p in rep.photos}
    assert set(by) == {"fake_a_by_x", "fake_c_by_z"}
    assert by["fake_a_by_x"]["licence"] == "CC-BY-4.0"
    assert by["fake_c_by_z"]["licence"] == "CC0-1.0"
    assert by["fake_a_by_x"]["package_version"] == "1.2-3"
    assert by["fake_a_by_x"]["source_file"] == "usr/share/backgrounds/a_by_x.jpg"
    assert calls == ["fake-wallpapers"]

    bad = PhotoSource("fake-wallpapers", ("usr/share/nothing/*.jpg",), "x")
    with pytest.raises(CorpusError, match="no file matches"):
        build_photo_corpus(tmp_path / "p2", [bad], progress=False, downloader=downloader)


def test_missing_apt_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus.shutil, "which", lambda name: None)
    with pytest.raises(CorpusError, match="apt-get is not available"):
        build_photo_corpus(tmp_path / "x", DEFAULT_SOURCES[:1], progress=False)


def test_cli_photos_from_folder(tmp_path, photos, capsys):
    from tadsr.cli import main

    src = tmp_path / "src"
    src.mkdir()
    for name, arr in photos.items():
        Image.fromarray(arr).save(src / f"{name}.png")
    assert (
        main(
            [
                "data",
                "photos",
                "--out",
                str(tmp_path / "c"),
                "--from-folder",
                str(src),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "photos" in capsys.readouterr().out
    assert (
        main(
            [
                "data",
                "photos",
                "--out",
                str(tmp_path / "c2"),
                "--from-folder",
                str(tmp_path / "nope"),
                "--no-progress",
            ]
        )
        == 1
    )
    assert main(["data", "photos", "--out", str(tmp_path / "c3"), "--packages", "nope"]) == 2
