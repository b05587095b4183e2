"""`tadsr upscale`: outputs and names, exit statuses, one line per failure, resume, never an
input replaced, image kinds through files, and torchrun-style sharding (a real tiny model)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from _upscale_helpers import save_tiny_model
from tadsr.cli import main
from tadsr.inference.imageio import Picture, read_image, write_image

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors"))


def _img(path, h=6, w=5, mode="RGB"):
    arr = RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)
    img = Image.fromarray(arr).convert(mode)
    img.save(path)
    return path


def _run(capsys, *argv):
    code = main(["upscale", *map(str, argv), "-q"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_files_and_folders_to_png_x4(tmp_path, capsys, model):
    src = tmp_path / "in"
    src.mkdir()
    _img(src / "a.jpg")
    _img(src / "b.bmp", 3, 7)
    _img(src / "c.tif", 5, 5, "L")
    _img(src / "d.webp", 4, 6)
    (src / "notes.txt").write_text("not an image, and not picked from a folder")
    one = _img(tmp_path / "single.png", 4, 4, "RGBA")
    out = tmp_path / "out"
    code, err = _run(capsys, src, one, "-o", out, "--model", model)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a.png", "b.png", "c.png", "d.png", "single.png"]
    assert Image.open(out / "b.png").size == (28, 12)
    assert Image.open(out / "c.png").mode == "L"
    assert Image.open(out / "single.png").mode == "RGBA"


def test_16bit_in_16bit_out(tmp_path, capsys, model):
    arr = RNG.integers(0, 65536, (5, 4, 3), dtype=np.uint16)
    write_image(tmp_path / "deep.png", Picture(arr))
    Image.fromarray(arr[..., 0]).save(tmp_path / "deep_gray.tif")
    code, err = _run(capsys, tmp_path / "deep.png", tmp_path / "deep_gray.tif", "-o",
                     tmp_path / "o", "--model", model)  # fmt: skip
    assert code == 0, err
    pic = read_image(tmp_path / "o" / "deep.png")
    assert pic.bits == 16 and pic.color.shape == (20, 16, 3)
    gray = read_image(tmp_path / "o" / "deep_gray.png")
    assert gray.bits == 16 and gray.gray


def test_failures_are_one_line_each_and_the_rest_is_done(tmp_path, capsys, model):
    good = _img(tmp_path / "good.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    _img(tmp_path / "huge.png", 30, 30)
    bad = ["empty.png", "text.jpg", "cut.png", "missing.png", "huge.png"]
    code, err = _run(capsys, *[tmp_path / b for b in bad], good, "-o", tmp_path / "o",
                     "--model", model, "--max-pixels", 500)  # fmt: skip
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == len(bad), err
    for name, line in zip(sorted(bad), sorted(lines, key=lambda s: s.split(": ")[1])):
        assert name in line
    assert "too large" in err and "empty file" in err and "not an image" in err
    assert (tmp_path / "o" / "good.png").is_file()
    assert not (tmp_path / "o" / "huge.png").exists()
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["good.png"]  # no temporaries


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, capsys, model):
    _img(tmp_path / "a.png")
    out = tmp_path / "o"
    assert _run(capsys, tmp_path / "a.png", "-o", out, "--model", model)[0] == 0
    Image.new("RGB", (3, 3), "red").save(out / "a.png")  # a complete image, not ours
    before = (out / "a.png").read_bytes()
    # a resumed batch: the existing output is kept, and no model is even needed
    assert _run(capsys, tmp_path / "a.png", "-o", out, "--model", "/nonexistent")[0] == 0
    assert (out / "a.png").read_bytes() == before
    assert _run(capsys, tmp_path / "a.png", "-o", out, "--model", model, "--overwrite")[0] == 0
    assert Image.open(out / "a.png").size == (20, 24)


def test_never_replaces_an_input_and_unique_names(tmp_path, capsys, model):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    _img(d / "x.png")
    _img(d / "x.jpg")
    _img(d / "sub" / "x.bmp")
    before = (d / "x.png").read_bytes()
    code = main(["upscale", str(d), str(d / "sub" / "x.bmp"), "-o", str(d), "--model", model,
                 "--overwrite"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert (d / "x.png").read_bytes() == before  # the input is untouched
    names = sorted(p.name for p in d.iterdir() if p.is_file())
    assert names == ["x.jpg", "x.png", "x_x4.png", "x_x4_2.png", "x_x4_3.png"]
    assert err.count("note:") == 3


def test_outscale_and_options(tmp_path, capsys, model):
    _img(tmp_path / "a.png", 10, 8)
    code, err = _run(capsys, tmp_path / "a.png", "-o", tmp_path / "o", "--model", model,
                     "--outscale", "1.5", "--tile", "4", "--tile-overlap", "1", "--tile-pad", "2",
                     "--color-fix", "wavelet", "--seed", "3", "--dtype", "fp32")  # fmt: skip
    assert code == 0, err
    assert Image.open(tmp_path / "o" / "a.png").size == (12, 15)


def test_outscale_format_quality_write_the_asked_file(tmp_path, capsys, model):
    """--outscale 2 --format webp --quality 90: a WebP at twice the size, the pixels those
    of the PNG encoded by Pillow at quality 90; --width keeps the aspect ratio."""
    _img(tmp_path / "a.png", 10, 8)
    common = [tmp_path / "a.png", "--model", model, "--outscale", "2"]
    assert _run(capsys, *common, "-o", tmp_path / "p")[0] == 0
    code, err = _run(capsys, *common, "-o", tmp_path / "w", "--format", "webp", "--quality", "90")
    assert code == 0 and err == "", err
    webp = Image.open(tmp_path / "w" / "a.webp")
    assert (webp.format, webp.size) == ("WEBP", (16, 20))
    again = tmp_path / "again.webp"
    Image.open(tmp_path / "p" / "a.png").save(again, quality=90)
    np.testing.assert_array_equal(np.asarray(webp), np.asarray(Image.open(again)))
    code, err = _run(capsys, tmp_path / "a.png", "-o", tmp_path / "j", "--model", model,
                     "--width", "20", "--format", "jpg", "--quality", "40")  # fmt: skip
    jpg = Image.open(tmp_path / "j" / "a.jpg")
    assert code == 0 and (jpg.format, jpg.size, jpg.mode) == ("JPEG", (20, 25), "RGB")
    # a rerun over the output folder knows its own JPEG and WebP (EXIF Software)
    code, err = _run(capsys, tmp_path / "j", "-o", tmp_path / "j2", "--model", model)
    assert code == 1 and "no images in folder" in err


def test_jpeg_of_an_alpha_or_16bit_input_warns_naming_the_file(tmp_path, capsys, model):
    arr = np.zeros((6, 5, 4), np.uint8)
    arr[..., 3] = 0  # wholly transparent: on white, every pixel of the JPEG is near white
    Image.fromarray(arr).save(tmp_path / "clear.png")
    write_image(tmp_path / "deep.png", Picture(RNG.integers(0, 65536, (5, 4, 3), dtype=np.uint16)))
    code, err = _run(capsys, tmp_path / "clear.png", tmp_path / "deep.png", "-o", tmp_path / "o",
                     "--model", model, "--format", "jpg")  # fmt: skip
    assert code == 0
    lines = sorted(err.strip().splitlines())
    assert lines == [
        f"tadsr upscale: warning: {tmp_path / 'o' / 'clear.jpg'}: JPEG has no transparency: "
        "composited on white",
        f"tadsr upscale: warning: {tmp_path / 'o' / 'deep.jpg'}: JPEG holds 8 bits per "
        "channel: 16-bit result written at 8 bits",
    ]
    clear = Image.open(tmp_path / "o" / "clear.jpg")
    assert clear.mode == "RGB" and clear.size == (20, 24)
    assert np.asarray(clear).min() >= 250
    assert Image.open(tmp_path / "o" / "deep.jpg").mode == "RGB"


def test_missing_output_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["upscale", str(tmp_path / "a.png")])
    assert info.value.code == 2 and "-o" in capsys.readouterr().err


def test_help_states_the_pixel_limit(capsys):
    with pytest.raises(SystemExit) as info:
        main(["upscale", "--help"])
    assert info.value.code == 0
    helptext = capsys.readouterr().out
    assert "64,000,000" in helptext and "--tile-overlap" in helptext and "_x4.png" in helptext


@pytest.mark.parametrize(
    "extra",
    [["--tile", "8", "--tile-overlap", "8"], ["--outscale", "-1"], ["--steps", "3"],
     ["--device", "tpu"], ["--max-pixels", "0"], ["--quality", "90"],
     ["--width", "0"], ["--width", "9", "--outscale", "2"]],
)  # fmt: skip
def test_usage_errors_exit_2(tmp_path, capsys, model, extra):
    _img(tmp_path / "a.png")
    code, err = _run(capsys, tmp_path / "a.png", "-o", tmp_path / "o", "--model", model, *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("value", ["0", "101", "abc"])
def test_quality_out_of_range_is_refused_by_the_parser(tmp_path, capsys, value):
    """argparse's usage, then one line of error naming the option, the range and the value."""
    with pytest.raises(SystemExit) as info:
        main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--format", "jpg",
              "--quality", value])  # fmt: skip
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("usage: tadsr upscale"), err
    assert [line for line in err.splitlines() if "error" in line] == [err.splitlines()[-1]]
    assert err.splitlines()[-1].startswith("tadsr upscale: error: argument --quality: must be ")
    assert f"1 to 100, got '{value}'" in err


def test_bad_model_and_unwritable_folder_exit_1(tmp_path, capsys, model):
    _img(tmp_path / "a.png")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    code, err = _run(capsys, tmp_path / "a.png", "-o", tmp_path / "o", "--model", junk)
    assert code == 1 and "junk.safetensors" in err and len(err.strip().splitlines()) == 1
    # an image given as the model: a checkpoint of the wrong kind
    code, err = _run(capsys, tmp_path / "a.png", "-o", tmp_path / "o2", "--model",
                     tmp_path / "a.png")  # fmt: skip
    assert code == 1 and "cannot load model" in err
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    code, err = _run(capsys, tmp_path / "a.png", "-o", blocker / "out", "--model", model)
    assert code == 1 and "not writable" in err and len(err.strip().splitlines()) == 1


def test_ranks_share_the_inputs(tmp_path, capsys, model, monkeypatch):
    for k in range(5):
        _img(tmp_path / f"i{k}.png", 3, 3)
    outs = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        out = tmp_path / f"o{rank}"
        code, err = _run(capsys, *sorted(tmp_path.glob("i*.png")), "-o", out, "--model", model)
        assert code == 0, err
        outs.append({p.name for p in out.iterdir()})
    assert outs[0].isdisjoint(outs[1])
    assert outs[0] | outs[1] == {f"i{k}.png" for k in range(5)}
    assert len(outs[0]) == 3 and len(outs[1]) == 2


def test_command_line_process(tmp_path):
    """The real entry point: exit statuses 0 / 1 / 2 and no traceback."""
    _img(tmp_path / "a.png", 3, 3)
    (tmp_path / "bad.png").write_bytes(b"")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "tadsr.cli", "upscale"]
    bad = subprocess.run(cmd + [str(tmp_path / "bad.png"), "-o", str(tmp_path / "o"), "-q"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [f"tadsr upscale: {tmp_path / 'bad.png'}: "
                                               "empty file (0 bytes)"]  # fmt: skip


def test_too_many_teacher_steps_is_one_usage_error(tmp_path, capsys):
    a, b = _img(tmp_path / "a.png"), _img(tmp_path / "b.png")
    code, err = _run(capsys, a, b, "-o", tmp_path / "out", "--model", "tadsr-small-teacher",
                     "--steps", "1000")  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and "choose 1 to 15" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_model_files_are_described_and_autoencoder_misuse_refused(tmp_path, capsys, model):
    a = _img(tmp_path / "a.png")
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    code, err = _run(capsys, a, "-o", tmp_path / "o", "--model", text)
    assert code == 1 and "is a text file, not a checkpoint" in err and "autoencoder" not in err
    code, err = _run(capsys, a, "-o", tmp_path / "o", "--model", model, "--autoencoder", text)
    assert code == 1 and "carries its own codec" in err


def test_upscaler_repr_says_what_it_runs(model):
    from tadsr import Upscaler

    text = repr(Upscaler.from_pretrained(model, tile=0, seed=3))
    assert model in text and "kind=student" in text and "steps=1" in text
    assert "tile=off" in text and "seed=3" in text and "scale=x4" in text


def test_rerun_in_place_resumes_and_only_complete_outputs_count(tmp_path, capsys, model):
    d = tmp_path / "d"
    d.mkdir()
    _img(d / "a.png")
    assert _run(capsys, d, "-o", d, "--model", model)[0] == 0
    assert _run(capsys, d, "-o", d, "--model", model)[0] == 0  # its own output is not an input
    assert sorted(p.name for p in d.iterdir()) == ["a.png", "a_x4.png"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"")  # an empty file is not a finished output
    stale = out / ".a.png.999999999.tmp"  # left by a killed run
    stale.write_bytes(b"partial")
    assert _run(capsys, d / "a.png", "-o", out, "--model", model)[0] == 0
    assert Image.open(out / "a.png").size == (20, 24) and not stale.exists()
