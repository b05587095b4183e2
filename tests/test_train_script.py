"""The one-command recipe (scripts/train_bundled.sh) end to end with the tiny preset on CPU:
the same script a GPU run uses with --device cuda."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from PIL import Image

from tadsr.checkpoints.io import read_metadata

REPO = Path(__file__).resolve().parents[1]


def test_train_bundled_script_trains_teacher_student_and_ablations(tmp_path):
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).save(photos / f"{name}.png")
    out = tmp_path / "runs"
    env = {**os.environ, "TADSR_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    cmd = ["bash", str(REPO / "scripts" / "train_bundled.sh"), "--config", "tiny",
           "--data", str(photos), "--out", str(out), "--no-bundle", "--device", "cpu"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = {}
    for run in ("teacher", "student", "student-reg", "student-nogan"):
        meta = read_metadata(out / run / "model.safetensors")
        assert meta["provenance"]["data"] == str(photos)
        losses[run] = meta["provenance"].get("losses")
    assert losses["teacher"] is None
    assert losses["student"]["gan"] > 0 and losses["student"]["hfsd"] > 0
    assert losses["student-reg"]["gan"] == losses["student-reg"]["hfsd"] == 0
    assert losses["student-nogan"]["gan"] == 0 and losses["student-nogan"]["hfsd"] > 0
    # the realism stages: regression + GAN, each starting from the stage before
    stages = (("student-gan2", "student"), ("student-gan3", "student-gan2"),
              ("student-gan4", "student-gan3"), ("student-gan6c", "student-gan4"),
              ("student-gan7c", "student-gan6c"))  # fmt: skip
    for stage, init in stages:
        prov = read_metadata(out / stage / "model.safetensors")["provenance"]
        assert prov["losses"]["gan"] > 0 and prov["losses"]["hfsd"] == 0
        assert prov["init_from"] == str(out / init / "model.safetensors")
        # stages 5-6 regress on the teacher's sample of the clean LR, on the heavier mix
        clean = stage.endswith("c")
        assert prov["losses"]["teacher_input"] == ("clean" if clean else "lq"), stage
        cfg = json.loads((out / stage / "config.json").read_text())
        heavier = cfg["data"]["degradation"] == "bicubic:0.3+realesrgan_mild:0.3+realesrgan:0.4"
        assert heavier == clean, stage
    # the bundled student: the mean of stages 5 and 6
    soup = read_metadata(out / "student-soup67.safetensors")["provenance"]["averaged"]
    assert [s["file"] for s in soup] == [str(out / f"student-gan{n}c" / "model.safetensors")
                                         for n in (6, 7)]  # fmt: skip
    # the dial's faithful endpoint: regression to HR only, stage 2 starting from stage 1
    faithful = read_metadata(out / "faithful" / "model.safetensors")["provenance"]
    assert faithful["losses"]["reg_target"] == "hr" and faithful["losses"]["gan"] == 0
    assert faithful["init_from"] == str(out / "faithful-stage1" / "model.safetensors")
    # stages 3-5 of the endpoint, each from the one before, on mixes with lr_noise
    for stage, init in (("faithful-n3", "faithful"), ("faithful-n4", "faithful-n3"),
                        ("faithful-n5", "faithful-n4")):  # fmt: skip
        prov = read_metadata(out / stage / "model.safetensors")["provenance"]
        assert prov["losses"]["reg_target"] == "hr" and prov["losses"]["gan"] == 0, stage
        assert prov["init_from"] == str(out / init / "model.safetensors"), stage
        cfg = json.loads((out / stage / "config.json").read_text())
        assert "lr_noise:0." in cfg["data"]["degradation"] and cfg["teacher_cache"] == 0, stage
    # the ablations reuse the full run's teacher targets instead of recomputing them
    assert not (out / "student-reg" / "teacher_cache.pt").exists()
    cfg = json.loads((out / "student-reg" / "config.json").read_text())
    assert cfg["teacher_cache_file"] == str(out / "student" / "teacher_cache.pt")
    # rerunning resumes: every model exists, nothing is retrained
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "exported" not in again.stdout + again.stderr
