"""What the wheel ships: every data file named in THIRD_PARTY.md, no GPL file, the licence."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_shipped_data_file_is_listed_with_its_licence():
    patterns = _pyproject()["tool"]["setuptools"]["package-data"]["tadsr"]
    package = ROOT / "src" / "tadsr"
    shipped = sorted({p for pat in patterns for p in package.glob(pat) if p.is_file()})
    assert any(p.suffix == ".safetensors" for p in shipped)  # the globs do match something
    listing = (ROOT / "THIRD_PARTY.md").read_text()
    web = "src/tadsr/web/static/"
    unlisted = [
        rel
        for p in shipped
        if (rel := p.relative_to(ROOT).as_posix()) not in listing and not rel.startswith(web)
    ]
    assert unlisted == [], "shipped but not in THIRD_PARTY.md"
    assert not [p for p in shipped if "brisque" in p.name.lower()]  # GPL-3: never shipped


def test_licence_file_is_in_the_metadata():
    meta = _pyproject()
    assert meta["project"]["license"] == {"text": "Apache-2.0"}
    assert "LICENSE" in meta["tool"]["setuptools"]["license-files"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
