"""The fast CPU path (channels-last network) gives the fp32 reference path's pixels, and the
ONNX export of the bundled student matches torch in onnxruntime at several sizes, tiled and
untiled. Speed itself is measured by `tadsr bench` and benchmarks/, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tadsr.inference.imageio import picture_from_array
from tadsr.inference.upscaler import Upscaler
from tadsr.pipeline import SRPipeline


@pytest.fixture(scope="module")
def lr_photo(photo) -> np.ndarray:
    """The astronaut at 160 x 160 (a real photo, small enough for the test budget)."""
    return np.asarray(Image.fromarray(photo).resize((160, 160), Image.BICUBIC))


def test_channels_last_path_within_one_level_of_fp32_reference(lr_photo):
    fast = Upscaler(SRPipeline.from_pretrained(None, device="cpu"), tile=0)
    assert fast.pipeline.channels_last  # the CPU default
    ref_pipe = SRPipeline.from_pretrained(None, device="cpu").use_channels_last(False)
    ref = Upscaler(ref_pipe, tile=0)
    weight = next(p for p in ref_pipe.net.parameters() if p.ndim == 4)
    assert weight.is_contiguous()  # really the channels-first reference
    a, b = fast(lr_photo).astype(int), ref(lr_photo).astype(int)
    assert a.shape == (640, 640, 3)
    assert np.abs(a - b).max() <= 1
    # and the comparison can fail: another seed is another picture
    other = Upscaler(ref_pipe, tile=0, seed=1)(lr_photo).astype(int)
    assert np.abs(other - b).max() > 1


def test_block_noise_is_standard_normal_and_tiles_consistently():
    from tadsr.inference.tiling import BlockNoise

    noise = BlockNoise((1, 4, 100, 70), seed=3, block=32)
    full = noise.full()
    assert isinstance(full, np.ndarray) and full.dtype == np.float32
    np.testing.assert_array_equal(noise.window(30, 70, 5, 41), full[..., 30:70, 5:41])
    assert abs(full.mean()) < 0.03 and abs(full.std() - 1) < 0.03
    np.testing.assert_array_equal(BlockNoise((1, 4, 100, 70), seed=3, block=32).full(), full)
    assert not np.allclose(BlockNoise((1, 4, 100, 70), seed=4, block=32).full(), full)


# ------------------------------------------------------------------------- start-up
BUNDLED = Path(__file__).resolve().parents[1] / "src/tadsr/models/tadsr-small.safetensors"

_PROBE = """
import json, sys
from tadsr.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _modules_after(*argv: str) -> list[str]:
    """Run the tadsr command in a fresh interpreter; the modules it imported."""
    p = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True)
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, p.stderr[-2000:]
    return result["modules"]


def _heavy(modules: list[str]) -> list[str]:
    """Modules the upscale path must not import: scipy, training, losses, metrics (the
    sub-commands' argument parsers, tadsr.commands.*, are light and registered for --help)."""
    heavy = ("tadsr.losses", "tadsr.train", "tadsr.evaluation", "tadsr.data")
    return [m for m in modules if m.split(".")[0] in ("scipy", "skimage") or m.startswith(heavy)]


def test_help_models_info_import_no_torch(capsys):
    for argv in (["models"], ["info", str(BUNDLED)]):
        mods = _modules_after(*argv)
        assert "torch" not in mods, argv
    p = subprocess.run([sys.executable, "-c", "import sys; from tadsr.cli import build_parser; "
                        "build_parser().format_help(); print('torch' in sys.modules)"],
                       capture_output=True, text=True)  # fmt: skip
    assert p.stdout.strip() == "False", p.stderr


def test_upscale_path_imports_no_scipy_training_or_metrics(tmp_path):
    Image.new("RGB", (12, 10), (30, 60, 90)).save(tmp_path / "a.png")
    mods = _modules_after("upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "-q")
    assert "torch" in mods and _heavy(mods) == []
    assert (tmp_path / "o" / "a.png").is_file()


# ------------------------------------------------------------------------------ ONNX
ort = pytest.importorskip(
    "onnxruntime", reason="onnxruntime not installed (pip install 'tadsr[onnx]')"
)
onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install 'tadsr[onnx]')")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from tadsr.inference.onnx_export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "student.onnx"
    out, meta = export_onnx(None, path)
    return out, meta


def test_onnx_file_passes_checker_and_documents_its_io(exported):
    path, meta = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["lr", "noise"]
    assert [o.name for o in model.graph.output] == ["sr"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, "height", "width"]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["tadsr.scale"] == "4" and props["tadsr.noise_channels"] == "48"
    assert props == meta


@pytest.mark.parametrize("h,w", [(64, 96), (40, 33), (75, 112), (20, 10)])
def test_onnx_matches_torch_at_several_sizes(exported, h, w):
    """Dynamic H/W, including sizes that are not multiples of the Swin windows (padding) and
    sizes whose shifted-window masks differ from the traced size's."""
    from tadsr.inference.onnx_backend import OnnxStudent

    student = OnnxStudent(exported[0], threads=1)
    pipe = SRPipeline.from_pretrained(None, device="cpu")
    g = torch.Generator().manual_seed(h * w)
    lr = torch.rand(1, 3, h, w, generator=g)
    noise = torch.randn(pipe.noise_shape(h, w), generator=g)
    ref = ((pipe(lr * 2 - 1, noise=noise) + 1) / 2).numpy()
    out = student.run(lr.numpy(), noise.numpy())
    assert out.shape == (1, 3, 4 * h, 4 * w)
    assert np.abs(out - ref).max() < 1e-3


def test_onnx_backend_upscaler_matches_torch_tiled(exported, lr_photo):
    """`Upscaler` with the onnxruntime backend, tiled as the CLI tiles, against the torch
    Upscaler at the same seed: within one 8-bit level (both draw the same noise on the host,
    the graphs agree to < 1e-3)."""
    from tadsr.inference.onnx_backend import OnnxUpscaler

    pic = picture_from_array(lr_photo)[0]
    out = OnnxUpscaler(exported[0], tile=64, threads=1, seed=5).upscale_picture(pic).color
    # at the exported graph's F = 0 (a default of fidelity auto is per image, which one
    # fixed graph cannot be)
    pipe = SRPipeline.from_pretrained(None, device="cpu", fidelity=0.0)
    ref = Upscaler(pipe, tile=64, seed=5).upscale_picture(pic).color.astype(int)
    assert out.shape == ref.shape == (640, 640, 3)
    assert np.abs(out.astype(int) - ref).max() <= 1
    # another seed is another sample: the comparison above can fail
    other = Upscaler(pipe, tile=64, seed=6).upscale_picture(pic).color.astype(int)
    assert np.abs(other - ref).max() > 1


def test_same_seed_same_picture_from_both_backends_cli(exported, tmp_path, capsys):
    """The README's example through `tadsr upscale`, --backend torch and onnxruntime, same
    seed: at most one level apart; --help says so."""
    example = Path(__file__).resolve().parents[1] / "examples" / "astronaut_lr.png"
    from tadsr.cli import main

    assert main(["upscale", str(example), "-o", str(tmp_path / "torch"), "-q", "--seed", "11",
                 "--fidelity", "0", "--dtype", "fp32"]) == 0  # fmt: skip
    assert main(["upscale", str(example), "-o", str(tmp_path / "ort"), "-q", "--seed", "11",
                 "--backend", "onnxruntime", "--model", str(exported[0])]) == 0  # fmt: skip
    a = np.asarray(Image.open(tmp_path / "torch" / example.name), dtype=int)
    b = np.asarray(Image.open(tmp_path / "ort" / example.name), dtype=int)
    assert a.shape == b.shape == (320, 320, 3)
    assert np.abs(a - b).max() <= 1
    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    assert "same picture as --backend torch" in " ".join(capsys.readouterr().out.split())


def test_onnxruntime_backend_cli_imports_no_torch(exported, tmp_path):
    Image.new("RGB", (40, 24), (200, 60, 90)).save(tmp_path / "a.png")
    Image.new("LA", (20, 30), (100, 128)).save(tmp_path / "b.png")
    mods = _modules_after("upscale", str(tmp_path), "-o", str(tmp_path / "o"), "-q",
                          "--backend", "onnxruntime", "--model", str(exported[0]))  # fmt: skip
    assert "torch" not in mods and _heavy(mods) == []
    a = Image.open(tmp_path / "o" / "a.png")
    b = Image.open(tmp_path / "o" / "b.png")
    assert a.size == (160, 96) and a.mode == "RGB"
    assert b.size == (80, 120) and b.mode == "LA"


def test_export_refuses_a_teacher_and_a_missing_file_in_one_line(tmp_path, capsys):
    from tadsr.cli import main

    for model, words in (("tadsr-small-teacher", "only a one-step student"),
                         (str(tmp_path / "none.safetensors"), "no such file")):  # fmt: skip
        assert main(["export", model, "--format", "onnx", "-o", str(tmp_path / "x.onnx")]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("tadsr export: error: ") and words in err and "\n" not in err
        assert err.count(model) == 1
    assert not list(tmp_path.glob("*.onnx*"))  # nothing half-written


@pytest.mark.parametrize(
    "command,running,expected",
    [
        ("upscale", 1, None),
        ("bench", 1, None),
        ("upscale", 2, "PASSIVE"),
        ("train", 1, "PASSIVE"),
        ("models", 1, "PASSIVE"),
    ],
)
def test_openmp_threads_spin_only_for_inference_on_an_idle_machine(command, running, expected):
    """PASSIVE (sleep at once) protects training, and inference on a busy machine; inference
    on an idle machine keeps OpenMP's default (spin briefly)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    # the processes running now, as /proc/loadavg reports them (this one included)
    code = (f"import builtins, io; real_open = builtins.open; "
            f"builtins.open = lambda f, *a, **k: io.StringIO('0.1 0.1 0.1 {running}/90 1') "
            f"if f == '/proc/loadavg' else real_open(f, *a, **k); "
            f"import os, sys; sys.argv = ['tadsr', {command!r}]; import tadsr.cli; "
            "tadsr.cli.set_openmp_policy(sys.argv[1:]); "
            "print(os.environ.get('OMP_WAIT_POLICY'))")  # fmt: skip
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.stdout.strip() == str(expected), p.stderr
    # an explicit setting wins
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.stdout.strip() == "ACTIVE"


def test_export_never_replaces_its_input_nor_a_foreign_file(tmp_path, capsys):
    import os

    from tadsr.cli import main

    model = tmp_path / "m.safetensors"
    model.write_bytes(BUNDLED.read_bytes())
    (tmp_path / "link.onnx").symlink_to(model.name)
    os.link(model, tmp_path / "hard.onnx")
    (tmp_path / "notes.txt").write_text("mine\n")
    cases = [("m.safetensors", "is the input model itself"),
             ("link.onnx", "is the input model itself"),
             ("hard.onnx", "is the input model itself"),
             ("notes.txt", "exists and is not an ONNX file written by tadsr export; "
                           "refusing to replace it (--overwrite")]  # fmt: skip
    for out, words in cases:
        for extra in ([], ["--overwrite"]) if "input" in words else ([],):
            assert main(["export", str(model), "-o", str(tmp_path / out), *extra]) == 1
            err = capsys.readouterr().err.strip()
            assert err.startswith(f"tadsr export: error: {tmp_path / out}: {words}"), err
            assert "\n" not in err
    assert model.read_bytes() == BUNDLED.read_bytes()
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hard.onnx", "link.onnx", "m.safetensors", "notes.txt"]


def test_export_output_problems_name_the_output_not_the_model(tmp_path, capsys):
    from tadsr.cli import main

    (tmp_path / "afile").write_text("x")
    for out, words in ((tmp_path / "notadir" / "x.onnx", "does not exist"),
                       (tmp_path / "afile" / "x.onnx", "is a file, not a folder"),
                       (tmp_path, "is a folder")):  # fmt: skip
        assert main(["export", "tadsr-small", "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"tadsr export: error: {out}: ") and words in err, err
        assert ".tmp" not in err and "tadsr-small" not in err


def test_onnx_metadata_with_wrong_values_is_one_clear_line(exported, tmp_path):
    from tadsr.inference.onnx_backend import OnnxStudent

    for key, value, words in (("tadsr.scale", "four", "bad metadata tadsr.scale ('four'"),
                              ("tadsr.halo_x", None, None),
                              ("tadsr.noise_channels", "-1", "bad metadata tadsr.noise")):
        proto = onnx.load(str(exported[0]))
        for p in proto.metadata_props:
            if p.key == key:
                p.value = value
        if value is None:
            continue
        onnx.save(proto, str(tmp_path / "bad.onnx"))
        with pytest.raises(ValueError, match=words.replace("(", r"\(")):
            OnnxStudent(tmp_path / "bad.onnx")
    proto = onnx.load(str(exported[0]))  # an x4 graph that says x2
    next(p for p in proto.metadata_props if p.key == "tadsr.scale").value = "2"
    onnx.save(proto, str(tmp_path / "x2.onnx"))
    student = OnnxStudent(tmp_path / "x2.onnx")
    lr = np.zeros((1, 3, 32, 32), np.float32)
    with pytest.raises(ValueError, match=r"not x2 \(1, 3, 64, 64\)"):
        student.run(lr, np.zeros((1, 48, 32, 32), np.float32))


def test_onnx_cache_is_verified_repaired_and_replaced_by_a_temporary_when_unwritable(tmp_path):
    import os

    Image.new("RGB", (20, 16), (200, 60, 90)).save(tmp_path / "a.png")
    (tmp_path / "afile").write_text("x")
    tmp = tmp_path / "tmp"
    tmp.mkdir()

    def upscale(cache, out):
        env = dict(os.environ, TADSR_CACHE=str(cache), TMPDIR=str(tmp))
        cmd = [sys.executable, "-m", "tadsr.cli", "upscale", str(tmp_path / "a.png"),
               "-o", str(tmp_path / out), "-q", "--backend", "onnxruntime"]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)

    p = upscale(tmp_path / "afile" / "cache", "o1")  # a cache folder that cannot be made
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("tadsr: warning: cannot write "
                                                            "the ONNX cache"), p.stderr
    assert list(tmp.glob("tadsr-*")) == []  # the temporary export is gone
    cache = tmp_path / "cache"
    assert upscale(cache, "o2").returncode == 0
    entry = next((cache / "onnx").glob("*.onnx"))
    entry.write_bytes(entry.read_bytes()[:1000])  # cut
    p = upscale(cache, "o3")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert entry.stat().st_size > 10**6
    assert Image.open(tmp_path / "o3" / "a.png").size == (80, 64)
