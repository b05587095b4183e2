"""Bad inputs and faults against the `tadsr` command, each run as a user would run it.

For every case: the exit status (against the one expected), whether stderr holds a Python
traceback, whether any input file changed (sha256 before and after), whether a partial or
temporary file was left in an output folder or a tadsr-* folder in $TMPDIR, and whether it
hung (every case runs under a timeout). Prints one line per case and the totals.

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
    # part two (issue 22): export over its input, models that are no models, bad headers
    bundled = Path(__import__("tadsr").__file__).parent / "models" / "tadsr-small.safetensors"
    shutil.copy(bundled, src / "m.safetensors")
    (src / "link.onnx").symlink_to("m.safetensors")
    import os

    os.link(src / "m.safetensors", src / "hard.onnx")
    os.mkfifo(src / "fifo.safetensors")
    (src / "random.pth").write_bytes(bytes(range(256)) * 8)
    header = b'{"a": ' + b"[" * (1 << 20)
    (src / "garbage_header.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    mixed = src / "mixed"
    mixed.mkdir()
    Image.fromarray(photo).save(mixed / "a.png")
    (mixed / "zero.png").write_bytes(b"")
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
        ("eval: bomb", ["eval", "--sr", str(src), "--metrics", "niqe"], {1}),
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
        # part two: export, serve, bench, info, data, eval, upscale -o
        *[(f"export: -o its input ({n})", ["export", str(src / "m.safetensors"), "-o",
           str(src / n)], {1}) for n in ("m.safetensors", "link.onnx", "hard.onnx")],
        ("export: -o a foreign file", ["export", "tadsr-small", "-o", str(src / "notes.pth")],
         {1}),
        ("export: -o missing folder", ["export", "tadsr-small", "-o", o + "/no/x.onnx"], {1}),
        ("export: -o a FIFO model", ["export", str(src / "fifo.safetensors"), "-o",
                                     o + "/f.onnx"], {1}),
        ("serve: --model random.pth", ["serve", "--port", "0", "--model",
                                       str(src / "random.pth")], {1}),
        ("serve: --model FIFO", ["serve", "--port", "0", "--model",
                                 str(src / "fifo.safetensors")], {1}),
        ("serve: --max-upload-mb nan", ["serve", "--max-upload-mb", "nan"], {2}),
        ("serve: --max-upload-mb inf", ["serve", "--max-upload-mb", "inf"], {2}),
        ("bench: --student FIFO", ["bench", "--parts", "teacher", "--student",
                                   str(src / "fifo.safetensors")], {1}),
        ("bench: --json DIR", ["bench", "--parts", "startup", "--json", o], {2}),
        ("bench: --size 60000x60000", ["bench", "--size", "60000x60000"], {2}),
        ("bench: --threads -3", ["bench", "--threads", "-3"], {2}),
        ("bench: --teacher-steps 0", ["bench", "--teacher-steps", "0"], {2}),
        ("bench: --teacher-steps 1000", ["bench", "--parts", "teacher", "--size", "16x16",
                                         "--repeats", "1", "--teacher-steps", "1000"], {2}),
        ("bench: --device cuda:9", ["bench", "--device", "cuda:9"], {2}),
        ("bench: --image DIR", ["bench", "--parts", "path", "--image", o], {2}),
        ("bench: path on a bad image", ["bench", "--parts", "path", "--repeats", "1",
                                        "--image", str(src / "text.png")], {1}),
        ("info: nested header", ["info", str(src / "garbage_header.safetensors")], {1}),
        ("info: nested header --json", ["info", "--json",
                                        str(src / "garbage_header.safetensors")], {1}),
        ("info: FIFO", ["info", str(src / "fifo.safetensors")], {1}),
        ("info: /dev/zero", ["info", "/dev/zero"], {1}),
        ("data pairs: --size 65", ["data", "pairs", "--hr", str(src / "small"), "--out",
                                   o + "/p65", "--size", "65"], {2}),
        ("eval: one 0-byte image", ["eval", "--sr", str(src / "mixed"), "--metrics",
                                    "niqe"], {1}),
        ("upscale: -o a file", [*up, str(src / "notes.pth"), str(src / "good.png")], {1}),
        ("upscale: --model nested header", [*up, o + "/up7", str(src / "good.png"), "--model",
                                            str(src / "garbage_header.safetensors")], {1}),
    ]  # fmt: skip


CASE_TIMEOUT = 300  # seconds; a case still running then is a hang


def run_case(args: list[str], timeout: float = CASE_TIMEOUT) -> tuple[int, str]:
    p = subprocess.run([*TADSR, *args], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)  # fmt: skip
    return p.returncode, p.stderr


def _sigint_group_after(args: list[str], ready, timeout: float = CASE_TIMEOUT):
    """Start `tadsr ARGS` in its own process group, wait for `ready(proc)`, send the group a
    Ctrl-C (SIGINT), as a terminal does; (exit status, stderr). Any child left is a fault."""
    import os

    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    p = subprocess.Popen([*TADSR, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True, preexec_fn=default_sigint)  # fmt: skip
    try:
        ready(p)
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    deadline = time.monotonic() + 10  # the group must empty (a resource tracker ends at
    while time.monotonic() < deadline:  # its pipe's end, a moment after its parent)
        try:
            os.killpg(p.pid, 0)
        except ProcessLookupError:
            return p.returncode, err
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)
    return -1, err + "\nleft a process of its group running"


def bench_ctrl_c() -> tuple[int, str]:
    return _sigint_group_after(["bench", "--parts", "teacher", "--size", "64x64", "--repeats",
                                "200", "--threads", "1"], lambda p: time.sleep(6))  # fmt: skip


def serve_over_http(src: Path) -> tuple[int, str]:
    """A real server: an upload, its result zipped with its id 300 times (one entry), 101 ids
    (refused), a cancel without the X-Tadsr header (refused), then Ctrl-C (130)."""
    import http.client
    import json
    import re

    problems: list[str] = []

    def ready(p) -> None:
        line = p.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m is None:
            problems.append(f"no address printed: {line!r}")
            return
        port = int(m.group(1))

        def request(method, path, body=None, headers=None):
            for _ in range(100):
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    c.request(method, path, body=body, headers=headers or {})
                    r = c.getresponse()
                    return r.status, dict(r.getheaders()), r.read()
                except ConnectionRefusedError:
                    time.sleep(0.1)
            raise RuntimeError("server never answered")

        status, _, body = request("POST", "/api/jobs?name=good.png",
                                  (src / "good.png").read_bytes(), {"X-Tadsr": "1"})
        job = json.loads(body)["id"]
        for _ in range(600):
            state = json.loads(request("GET", f"/api/jobs/{job}")[2])["state"]
            if state not in ("queued", "running"):
                break
            time.sleep(0.2)
        if state != "done":
            problems.append(f"job ended {state}")
        status, headers, body = request("GET", "/api/results.zip?ids=" + ",".join([job] * 300))
        if status != 200 or len(body) > 2_000_000:
            problems.append(f"zip of one id x300: status {status}, {len(body)} bytes")
        many = ",".join(f"{i:032x}" for i in range(101))
        if request("GET", f"/api/results.zip?ids={many}")[0] != 400:
            problems.append("101 ids not refused")
        if request("POST", f"/api/jobs/{job}/cancel")[0] != 403:
            problems.append("cancel without X-Tadsr not refused")

    code, err = _sigint_group_after(["serve", "--port", "0"], ready)
    if problems:
        return -1, err + "\n" + "; ".join(problems)
    return code, err


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
    totals = {"cases": 0, "wrong exit": 0, "tracebacks": 0, "inputs changed": 0, "partial": 0,
              "leftover": 0, "hangs": 0}  # fmt: skip
    todo = [(n, (lambda a=a: run_case(a)), ok) for n, a, ok in cases(src, out)]
    todo.append(("Ctrl-C during start-up", ctrl_c, {130}))
    todo.append(("bench: Ctrl-C to its process group", bench_ctrl_c, {130}))
    todo.append(("serve: over HTTP, then Ctrl-C", lambda: serve_over_http(src), {130}))
    # every command's temporary files go under this folder: none may stay after a case
    import os

    tmp = work / "tmp"
    tmp.mkdir()
    os.environ["TMPDIR"] = str(tmp)
    for name, fn, ok in todo:
        try:
            code, err = fn()
        except subprocess.TimeoutExpired:
            code, err = -9, f"still running after {CASE_TIMEOUT} s"
            totals["hangs"] += 1
        tb = "Traceback" in err
        changed = _sha(src) != before
        partial = [p.name for p in out.rglob("*") if p.name.endswith((".tmp", ".partial"))]
        left = [p.name for p in tmp.iterdir() if p.name.startswith("tadsr-")]
        for p in tmp.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
        totals["cases"] += 1
        totals["wrong exit"] += code not in ok
        totals["tracebacks"] += tb
        totals["inputs changed"] += changed
        totals["partial"] += bool(partial)
        totals["leftover"] += bool(left)
        flag = "ok " if code in ok and not (tb or changed or partial or left) else "BAD"
        line = (err.strip().splitlines() or [""])[-1][:110]
        print(f"{flag} {name:36s} exit {code:3d}  {line}", flush=True)
        before = _sha(src)
    print(" ".join(f"{k}: {v}" for k, v in totals.items()))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if totals["cases"] and not any(v for k, v in totals.items() if k != "cases") else 1


if __name__ == "__main__":
    sys.exit(main())
