"""Edges of the `tadsr` command: --version, Ctrl-C while torch imports, a closed pipe."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import tadsr

BUNDLED = Path(tadsr.__file__).parent / "models" / "tadsr-small.safetensors"


def test_version():
    out = subprocess.run([sys.executable, "-m", "tadsr.cli", "--version"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == f"tadsr {tadsr.__version__}"


def test_ctrl_c_during_start_up_exits_130_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "tadsr.cli", "info", str(BUNDLED)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(1.0)  # inside `import torch`, which takes seconds
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
    assert "no usable photo" in capsys.readouterr().err
    Image.new("RGB", (64, 64), "red").save(src / "b.png")
    args = ["data", "pairs", "--hr", str(src), "--out", str(tmp_path / "q"), "--split", "all"]
    assert main([*args, "--scale", "0"]) == 2
    assert main([*args, "--size", "100000", "--no-progress"]) == 1
    assert "no pairs written" in capsys.readouterr().err
