"""Weight averaging (the bundled student is the mean of two realism stages): the mean of the
tensors, the sources in the provenance, and a clear refusal for models that do not match."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tadsr.checkpoints.average import average_models
from tadsr.checkpoints.errors import CheckpointError
from tadsr.checkpoints.io import load_model_file, read_metadata, save_model

REPO = Path(__file__).resolve().parents[1]


def _variant(src: Path, out: Path, shift: float, **meta) -> Path:
    m, net, _ = load_model_file(src)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(shift)
    kw = dict(codec=m["codec"], schedule=m["schedule"], kind="sr_student", steps=1,
              scale=m["scale"], provenance={"iterations": int(shift * 100)})  # fmt: skip
    kw.update(meta)
    return save_model(out, unet=net, unet_config=net.cfg, dtype=torch.float32, **kw)


def test_the_average_is_the_mean_of_the_weights_with_both_sources_named(teacher_file, tmp_path):
    a = _variant(teacher_file, tmp_path / "a.safetensors", 0.25)
    b = _variant(teacher_file, tmp_path / "b.safetensors", 0.75)
    out = average_models([a, b], tmp_path / "avg.safetensors")
    _, na, _ = load_model_file(a)
    _, nb, _ = load_model_file(b)
    _, navg, _ = load_model_file(out)
    for (k, va), vb, vm in zip(na.state_dict().items(), nb.state_dict().values(),
                               navg.state_dict().values()):  # fmt: skip
        want = ((va + vb) / 2).half().float()  # stored as fp16
        assert torch.equal(vm, want), k
    meta = read_metadata(out)
    assert meta["kind"] == "sr_student" and meta["steps"] == 1
    assert [s["file"] for s in meta["provenance"]["averaged"]] == [str(a), str(b)]
    assert [s["iterations"] for s in meta["provenance"]["averaged"]] == [25, 75]


def test_models_of_another_kind_or_a_single_model_are_refused(teacher_file, tmp_path):
    a = _variant(teacher_file, tmp_path / "a.safetensors", 0.0)
    t = _variant(teacher_file, tmp_path / "t.safetensors", 0.0, kind="sr_teacher", steps=15)
    with pytest.raises(CheckpointError, match=r"a\.safetensors and .*t\.safetensors cannot be "
                       r"averaged: their kind differs"):  # fmt: skip
        average_models([a, t], tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
    with pytest.raises(ValueError, match="at least two"):
        average_models([a], tmp_path / "x.safetensors")


def test_the_script_names_a_missing_file_without_a_traceback(teacher_file, tmp_path):
    a = _variant(teacher_file, tmp_path / "a.safetensors", 0.0)
    missing, out = tmp_path / "missing.safetensors", tmp_path / "o.safetensors"
    cmd = [sys.executable, str(REPO / "scripts" / "average_models.py"), str(a), str(missing),
           "-o", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0 and "missing.safetensors" in proc.stderr
    assert "Traceback" not in proc.stderr
