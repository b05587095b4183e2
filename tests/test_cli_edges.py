"""Edges of the `tadsr` command: --version, Ctrl-C while torch imports, a closed pipe."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import tadsr

BUNDLED = Path(tadsr.__file__).parent / "models" / "tadsr-small.safetensors"


def test_version():
    out = subprocess.run([sys.executable, "-m", "tadsr.cli", "--version"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == f"tadsr {tadsr.__version__}"


def test_ctrl_c_during_start_up_exits_130_quietly(tmp_path):
    # `upscale` imports torch and loads the model (`info` on a bundled file no longer imports
    # torch and can be over before the signal); the image keeps it busy past the signal
    from PIL import Image

    Image.new("RGB", (256, 256), (90, 140, 200)).save(tmp_path / "in.png")
    cmd = [sys.executable, "-m", "tadsr.cli", "upscale", str(tmp_path / "in.png"),
           "-o", str(tmp_path / "out"), "-q"]  # fmt: skip
    # a shell starts background jobs with SIGINT ignored, and a child inherits that: give the
    # command the default disposition a terminal's Ctrl-C meets
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # fmt: skip
    time.sleep(1.0)  # inside `import torch` or the model load
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip() == "tadsr: interrupted"


def test_closed_pipe_ends_quietly():
    cmd = f"{sys.executable} -m tadsr.cli info {BUNDLED} | head -1"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
    assert out.stdout.startswith("file:") and len(out.stdout.splitlines()) == 1
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


def test_data_commands_that_make_nothing_fail(tmp_path, capsys):
    from PIL import Image

    from tadsr.cli import main

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (40, 40), "red").save(src / "a.png")
    assert main(["data", "photos", "--from-folder", str(src), "--out", str(tmp_path / "p"),
                 "--no-progress"]) == 1  # fmt: skip
    assert f"no usable photo in {src}" in capsys.readouterr().err  # the source, not --out
    Image.new("RGB", (64, 64), "red").save(src / "b.png")
    args = ["data", "pairs", "--hr", str(src), "--out", str(tmp_path / "q"), "--split", "all"]
    with pytest.raises(SystemExit) as exc:  # argparse: --scale's range
        main([*args, "--scale", "0"])
    assert exc.value.code == 2
    assert "argument --scale: must be >= 1, got '0'" in capsys.readouterr().err
    assert main([*args, "--size", "100000", "--no-progress"]) == 1
    assert "no pairs written" in capsys.readouterr().err


def _run(args: list[str]) -> int:
    """`tadsr ARGS` in this process; its exit status."""
    from tadsr.cli import main

    try:
        return main(args)
    except SystemExit as exc:
        return int(exc.code)


def _pickle_file(path: Path) -> Path:
    import pickle

    path.write_bytes(pickle.dumps({"a": Exception("not a tensor")}, protocol=4))
    return path


def test_bad_checkpoint_files_get_one_line(tmp_path, capsys):

    rand = tmp_path / "rand.safetensors"
    rand.write_bytes(bytes(range(256)) * 8)
    pick = _pickle_file(tmp_path / "pickled.safetensors")
    for args, code in [
        (["info", str(pick)], 1),
        (["train", "export", str(rand), "-o", str(tmp_path / "o.safetensors")], 1),
        (["train", "export", str(pick), "-o", str(tmp_path / "o.safetensors")], 1),
    ]:
        assert _run(args) == code, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and args[-1 if args[0] == "info" else 2] in err, err
    assert not (tmp_path / "o.safetensors").exists()


def test_resume_names_a_truncated_checkpoint_and_differing_settings(tmp_path, capsys):
    from skimage import data

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / "a.png")
    run = tmp_path / "run"
    base = ["train", "teacher", "--out", str(run), "--device", "cpu",
            "--set", f"data.root={photos}", "--set", "run.threads=1"]  # fmt: skip
    assert _run([*base, "--config", "tiny", "--set", "run.iterations=1"]) == 0
    capsys.readouterr()
    assert _run([*base, "--config", "small", "--resume"]) == 1
    err = capsys.readouterr().err.strip()
    assert "does not fit" in err and "unet.channel_mult" in err and len(err.splitlines()) == 1
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:3000])
    assert _run([*base, "--config", "tiny", "--resume"]) == 1
    err = capsys.readouterr().err.strip()
    assert "corrupt or truncated" in err and str(ckpt) in err


def test_info_refuses_our_metadata_over_foreign_or_misshapen_tensors(tmp_path, capsys):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(BUNDLED), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(BUNDLED))
    save_file({**tensors, "foo": torch.zeros(2)}, str(tmp_path / "foo.safetensors"), metadata=meta)
    first = next(iter(tensors))
    bad = {**tensors, first: torch.zeros(3, 3)}
    save_file(bad, str(tmp_path / "shape.safetensors"), metadata=meta)
    for name, words in (("foo", "does not use (foo)"), ("shape", "of the wrong shape")):
        assert _run(["info", str(tmp_path / f"{name}.safetensors")]) == 1
        err = capsys.readouterr().err.strip()
        assert "not a model this package can run" in err and words in err
    assert _run(["info", str(BUNDLED)]) == 0


def test_usage_errors_through_python_dash_m():
    """`python -m tadsr.cli` (how torchrun starts it) reports usage errors like `tadsr`."""
    cmd = [sys.executable, "-m", "tadsr.cli", "train", "teacher", "--config", "tiny",
           "--out", "unused", "--set", "run.iterations=abc"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        "tadsr train: error: RunConfig setting 'iterations' must be a whole number, got 'abc'"
    )


_EARLY_SIGINT = """
import os, signal, sys
delay = float(sys.argv.pop(1))
from tadsr.cli import entry  # what the console script does before it calls entry()
signal.signal(signal.SIGALRM, lambda *a: os.kill(os.getpid(), signal.SIGINT))
signal.setitimer(signal.ITIMER_REAL, delay)  # (a timer thread would take longer to start)
entry()
"""


def test_ctrl_c_in_the_first_moments_of_a_command_is_130_without_traceback(tmp_path):
    """The signal can come while the entry module sets up, builds the parser or imports
    numpy and torch: always exit 130 with one line."""
    assert "argparse" not in subprocess.run(
        [sys.executable, "-c", "import sys, tadsr.cli; print(sorted(sys.modules))"],
        capture_output=True, text=True).stdout  # nothing but the handler's needs at import
    Image.new("RGB", (64, 64), (90, 140, 200)).save(tmp_path / "in.png")
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    for delay in (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.08, 0.12, 0.2, 0.4):
        cmd = [sys.executable, "-c", _EARLY_SIGINT, str(delay), "upscale", str(tmp_path / "in.png"),
               "-o", str(tmp_path / "out"), "-q"]  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                           preexec_fn=default_sigint)  # fmt: skip
        assert p.returncode == 130, (delay, p.returncode, p.stderr[-2000:])
        assert p.stderr.strip() == "tadsr: interrupted", (delay, p.stderr[-2000:])


def test_data_pairs_size_not_a_multiple_is_a_usage_error_and_a_bad_file_skips(tmp_path, capsys):
    from tadsr.cli import main

    hr = tmp_path / "hr"
    hr.mkdir()
    for name, colour in (("a", "red"), ("c", "blue")):
        Image.new("RGB", (80, 80), colour).save(hr / f"{name}.png")
    Image.new("1", (20000, 20000)).save(hr / "b.png")  # 400 MP: a decompression bomb
    (hr / "d.png").write_bytes(b"x")
    base = ["data", "pairs", "--hr", str(hr), "--split", "all", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "p1"), "--size", "65"]) == 2
    assert "--size 65 must be a multiple of --scale 4" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "p"), "--size", "64",
                 "--count-per-image", "1"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "b.png" in err and "d.png" in err and err.count("\n") == 2, err
    assert sorted(p.name for p in (tmp_path / "p" / "hr").iterdir()) == ["a_00.png", "c_00.png"]


def test_messages_name_the_right_thing(tmp_path, capsys):
    import torch

    from tadsr.cli import main

    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (40, 40), "red").save(src / "a.png")
    (tmp_path / "afile.txt").write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["train", "teacher", "--config", "tiny", "--device", "cpu",
              "--out", str(tmp_path / "afile.txt")])  # fmt: skip
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "afile.txt: a file is in the way of a folder" in err, err
    assert "Errno" not in err
    assert main(["train", "teacher", "--config", "tiny", "--device", "cpu", "--out",
                 str(tmp_path / "t"), "--set", "optim.lr=-1"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "optim.lr must not be negative, got -1" in err and "crop_size" not in err
    torch.save([1, 2, 3], tmp_path / "list.pth")
    assert main(["upscale", str(src / "a.png"), "-o", str(tmp_path / "o"), "-q",
                 "--model", str(tmp_path / "list.pth")]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "holds a list, not a state dict" in err and "autoencoder" not in err
    assert err.count("list.pth") == 1
    assert not (tmp_path / "o").exists()  # a failed run leaves no folder behind
    assert main(["upscale", str(src / "a.png"), "-o", str(tmp_path / "afile.txt"), "-q"]) == 1
    assert "afile.txt is a file, not a folder" in capsys.readouterr().err


def test_a_symlink_loop_and_special_files_are_named(tmp_path, capsys):
    import os

    from tadsr.cli import main

    (tmp_path / "loop.png").symlink_to("loop.png")
    os.mkfifo(tmp_path / "fifo.png")
    assert main(["upscale", str(tmp_path / "loop.png"), "-o", str(tmp_path / "o"), "-q"]) == 1
    assert "loop.png: a symbolic link loop" in capsys.readouterr().err
    assert main(["upscale", str(tmp_path / "fifo.png"), "-o", str(tmp_path / "o"), "-q"]) == 1
    assert "fifo.png: is a FIFO (named pipe), not a file" in capsys.readouterr().err
    for path in (tmp_path / "fifo.png", "/dev/zero"):
        assert main(["info", str(path)]) == 1
        assert "empty" not in capsys.readouterr().err
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "-q",
                 "--model", str(tmp_path / "fifo.png")]) == 1  # fmt: skip
    assert "is a FIFO" in capsys.readouterr().err


def test_deeply_nested_safetensors_header_is_one_line(tmp_path, capsys):
    import struct

    from tadsr.cli import main

    header = b'{"a": ' + b"[" * (1 << 20)
    bad = tmp_path / "garbage_header.safetensors"
    bad.write_bytes(struct.pack("<Q", len(header)) + header)
    for extra in ([], ["--json"]):
        assert main(["info", str(bad), *extra]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "nested too deeply" in err, err
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "-q",
                 "--model", str(bad)]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "nested too deeply" in err and "recursion" not in err


def test_a_killed_checkpoint_write_leaves_no_temporary_after_resume(tmp_path, photo):
    import os

    from tadsr.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(photo).save(photos / "a.png")
    run = tmp_path / "run"
    args = ["train", "teacher", "--config", "tiny", "--device", "cpu", "--out", str(run),
            "--set", f"data.root={photos}", "--set", "run.threads=1"]  # fmt: skip
    assert main([*args, "--set", "run.iterations=1"]) == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = run / "checkpoints" / f".last.pt.{dead.pid}.tmp"
    stale.write_bytes(b"")
    live = run / "checkpoints" / f".last.pt.{os.getppid()}.tmp"  # a running process's
    live.write_bytes(b"")
    assert main([*args, "--set", "run.iterations=2", "--resume"]) == 0
    assert not stale.exists() and live.exists()


@pytest.mark.parametrize(
    "argv,words",
    [(["data", "pairs", "--hr", "h", "--out", "o", "--scale", "0"],
      "--scale: must be >= 1, got '0'"),
     (["data", "pairs", "--hr", "h", "--out", "o", "--size", "-8"],
      "--size: must be >= 1, got '-8'"),
     (["data", "pairs", "--hr", "h", "--out", "o", "--count-per-image", "0"],
      "--count-per-image: must be >= 1, got '0'"),
     (["data", "shards", "--from", "f", "--out", "o", "--shard-mb", "0"],
      "--shard-mb: must be > 0, got '0'"),
     (["data", "shards", "--from", "f", "--out", "o", "--shard-mb", "nan"],
      "--shard-mb: must be a finite number > 0, got 'nan'"),
     (["eval", "--sr", "s", "--crop-border", "-1"], "--crop-border: must be >= 0, got '-1'"),
     (["export-official", "u", "-o", "o.safetensors", "--steps", "0"],
      "--steps: must be >= 1, got '0'"),
     (["bench", "--repeats", "x"], "--repeats: must be a whole number >= 1, got 'x'")],
)  # fmt: skip
def test_single_option_ranges_are_argparse_errors(argv, words, capsys):
    """Refused by the parser before any work: its usage, then one line naming the option,
    the allowed range and the value given; exit status 2."""
    from tadsr.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith(f"usage: tadsr {argv[0]}"), err
    assert [line for line in err.splitlines() if ": error: " in line] == [
        f"tadsr {' '.join(argv[:2]) if argv[0] == 'data' else argv[0]}: error: argument {words}"
    ], err


def test_range_types_state_the_range():
    import argparse

    from tadsr.commands.types import float_range, int_range

    assert int_range(0, 65535)("80") == 80 and float_range(0, lo_open=True)("0.5") == 0.5
    for parse, text, message in [
        (int_range(1, 100), "101", "must be 1 to 100, got '101'"),
        (int_range(1), "2.5", "must be a whole number >= 1, got '2.5'"),
        (float_range(0, 1), "-0.1", "must be 0 to 1, got '-0.1'"),
        (float_range(0, 1, lo_open=True, hi_open=True), "1", "must be > 0 and < 1, got '1'"),
        (float_range(0), "inf", "must be a finite number >= 0, got 'inf'"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{message}$"):
            parse(text)
