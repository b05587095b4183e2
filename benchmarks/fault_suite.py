"""Bad inputs and faults against the `tadsr` command, each run as a user would run it.

For every case: the exit status (against the one expected), whether stderr holds a Python
traceback, whether any input file changed (sha256 before and after) and whether a partial or
temporary file was left in an output folder. Prints one line per case and the totals.

    python benchmarks/fault_suite.py [--keep DIR]

Needs scikit-image (test extra) for a real photo; runs in a temporary folder.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

TADSR = [sys.executable, "-m", "tadsr.cli"]


def _sha(folder: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _inputs(d: Path) -> Path:
    """A folder of good and bad inputs."""
    from skimage import data

    src = d / "in"
    src.mkdir()
    photo = data.astronaut()[:96, :96]
    Image.fromarray(photo).save(src / "good.png")
    (src / "empty.png").write_bytes(b"")
    (src / "text.png").write_text("not an image\n")
    (src / "cut.png").write_bytes((src / "good.png").read_bytes()[:300])
    b = bytearray((src / "good.png").read_bytes())
    i = b.find(b"IDAT")
    b[i + 4 + struct.unpack(">I", b[i - 4 : i])[0]] ^= 0xFF
    (src / "crc.png").write_bytes(bytes(b))
    Image.new("1", (9000, 9000)).save(src / "bomb.png")
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    import tifffile

    tifffile.imwrite(src / "float.tif", np.random.rand(16, 16, 3).astype(np.float32))
    (src / "pickle.safetensors").write_bytes(pickle.dumps({"a": Exception("x")}))
    (src / "random.safetensors").write_bytes(bytes(range(256)) * 8)
    (src / "notes.pth").write_text("text\n")
    (src / "bad.yaml").write_text("lr: [\n")
    (src / "list.yaml").write_text("- a\n")
    (src / "nopreset.yaml").write_text("optim:\n  lr: 0.1\n")
    (src / "fast.yaml").write_text("preset: tiny\noptim:\n  lr: fast\n")
    small = src / "small"
    small.mkdir()
    Image.new("RGB", (40, 40), "red").save(small / "a.png")
    photos = src / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / "a.png")
    return src


def cases(src: Path, out: Path) -> list[tuple[str, list[str], set[int]]]:
    """(name, arguments, acceptable exit statuses)."""
    o = str(out)
    t = ["train", "teacher", "--config", "tiny", "--device", "cpu"]
    tr = [*t, "--set", f"data.root={src / 'photos'}", "--set", "run.threads=1"]
    up = ["upscale", "-q", "-o"]
    yaml_cases = [
        (f"train: YAML {what}", ["train", "teacher", "--config", str(src / f), "--out", o + "/t4"],
         {2})
        for what, f in (("syntax", "bad.yaml"), ("list", "list.yaml"),
                        ("no preset", "nopreset.yaml"), ("lr: fast", "fast.yaml"))
    ]  # fmt: skip
    return yaml_cases + [
        ("info: pickle named .safetensors", ["info", str(src / "pickle.safetensors")], {1}),
        ("info: random bytes", ["info", str(src / "random.safetensors")], {1}),
        ("info: text file", ["info", str(src / "notes.pth")], {1}),
        ("train: iterations=abc", [*t, "--out", o + "/t1", "--set", "run.iterations=abc"], {2}),
        ("train: run=5", [*t, "--out", o + "/t2", "--set", "run=5"], {2}),
        ("train: iterations=0", [*t, "--out", o + "/t3", "--set", "run.iterations=0"], {2}),
        ("train: iterations=-5", [*t, "--out", o + "/t3", "--set", "run.iterations=-5"], {2}),
        (
            "train: --device cuda:1",
            ["train", "teacher", "--config", "tiny", "--out", o + "/t5", "--device", "cuda:1"],
            {2},
        ),  # fmt: skip
        ("train: 2 steps", [*tr, "--out", o + "/run", "--set", "run.iterations=2"], {0}),
        (
            "train: resume with another preset",
            [
                "train",
                "teacher",
                "--config",
                "small",
                "--device",
                "cpu",
                "--out",
                o + "/run",
                "--resume",
                "--set",
                f"data.root={src / 'photos'}",
            ],
            {1},
        ),  # fmt: skip
        (
            "export: random file",
            ["train", "export", str(src / "random.safetensors"), "-o", o + "/x.safetensors"],
            {1},
        ),  # fmt: skip
        (
            "export: pickle",
            ["train", "export", str(src / "pickle.safetensors"), "-o", o + "/x.safetensors"],
            {1},
        ),  # fmt: skip
        ("eval: bomb", ["eval", "--sr", str(src), "--metrics", "brisque"], {1}),
        (
            "data pairs: --scale 0",
            ["data", "pairs", "--hr", str(src / "small"), "--out", o + "/p", "--scale", "0"],
            {2},
        ),  # fmt: skip
        (
            "data pairs: size 100000",
            [
                "data",
                "pairs",
                "--hr",
                str(src / "small"),
                "--out",
                o + "/p",
                "--size",
                "100000",
                "--split",
                "all",
                "--no-progress",
            ],
            {1},
        ),  # fmt: skip
        (
            "data photos: only small",
            [
                "data",
                "photos",
                "--from-folder",
                str(src / "small"),
                "--out",
                o + "/ph",
                "--no-progress",
            ],
            {1},
        ),  # fmt: skip
        ("upscale: folder with bad files", [*up, o + "/up", str(src)], {1}),
        ("upscale: rerun resumes", [*up, o + "/up", str(src)], {1}),
        (
            "upscale: --steps 1000",
            [
                *up,
                o + "/up2",
                str(src / "good.png"),
                "--model",
                "tadsr-small-teacher",
                "--steps",
                "1000",
            ],
            {2},
        ),  # fmt: skip
        (
            "upscale: --model text",
            [*up, o + "/up3", str(src / "good.png"), "--model", str(src / "notes.pth")],
            {1},
        ),  # fmt: skip
        (
            "upscale: --autoencoder with ours",
            [*up, o + "/up4", str(src / "good.png"), "--autoencoder", str(src / "notes.pth")],
            {1},
        ),  # fmt: skip
        ("upscale: float TIFF", [*up, o + "/up5", str(src / "float.tif")], {0}),
        ("upscale: animated GIF", [*up, o + "/up6", str(src / "anim.gif")], {0}),
        ("version", ["--version"], {0}),
    ]


def run_case(args: list[str], timeout: float = 600) -> tuple[int, str]:
    p = subprocess.run([*TADSR, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stderr


def ctrl_c() -> tuple[int, str]:
    # `upscale` imports torch and loads the model (seconds); `info` and `models` import no
    # torch and can be over before the signal, and a signal during interpreter shutdown is
    # not what this case tests
    tmp = Path(tempfile.mkdtemp())
    Image.new("RGB", (256, 256), (90, 140, 200)).save(tmp / "in.png")
    p = subprocess.Popen([*TADSR, "upscale", str(tmp / "in.png"), "-o", str(tmp / "out"), "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(0.8)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    return p.returncode, err


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", help="work in this folder and keep it")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="tadsr-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    src, out = _inputs(work), work / "out"
    out.mkdir()
    before = _sha(src)
    totals = {"cases": 0, "wrong exit": 0, "tracebacks": 0, "inputs changed": 0, "partial": 0}
    todo = [(n, (lambda a=a: run_case(a)), ok) for n, a, ok in cases(src, out)]
    todo.append(("Ctrl-C during start-up", ctrl_c, {130}))
    for name, fn, ok in todo:
        code, err = fn()
        tb = "Traceback" in err
        changed = _sha(src) != before
        partial = [p.name for p in out.rglob("*") if p.name.endswith((".tmp", ".partial"))]
        totals["cases"] += 1
        totals["wrong exit"] += code not in ok
        totals["tracebacks"] += tb
        totals["inputs changed"] += changed
        totals["partial"] += bool(partial)
        flag = "ok " if code in ok and not (tb or changed or partial) else "BAD"
        line = (err.strip().splitlines() or [""])[-1][:110]
        print(f"{flag} {name:36s} exit {code:3d}  {line}", flush=True)
        before = _sha(src)
    print(" ".join(f"{k}: {v}" for k, v in totals.items()))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if totals["cases"] and not any(v for k, v in totals.items() if k != "cases") else 1


if __name__ == "__main__":
    sys.exit(main())
