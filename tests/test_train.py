"""Teacher training and TAD-SR distillation on a tiny config: real photos, real degradation,
exact resumption after a stop, a real 2-process torchrun (gloo), every loss switched on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from tadsr.train.batches import latents
from tadsr.train.config import check as check_config
from tadsr.train.config import resolve
from tadsr.train.distill import distill
from tadsr.train.teacher import train_teacher


def _torchrun(what: str, corpus: Path, run: Path, *, port: int, extra=()) -> None:
    """`tadsr train WHAT --config tiny` for 2 steps under a real 2-process torchrun (gloo)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TADSR_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port", str(port + os.getpid() % 1000), "-m", "tadsr.cli", "train", what,
           "--config", "tiny", *extra, "--set", f"data.root={corpus}",
           "--set", "run.iterations=2", "--set", "run.threads=1", "--out", str(run),
           "--device", "cpu"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _teacher_cfg(corpus: Path, **sets):
    items = [f"data.root={corpus}", "run.threads=1"] + [f"{k}={v}" for k, v in sets.items()]
    return resolve("teacher", "tiny", items)


def _weights(path: Path, key: str = "model") -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)[key]


def test_teacher_trains_and_exports(teacher_file):
    from tadsr.checkpoints.io import read_metadata

    meta = read_metadata(teacher_file)
    assert meta["kind"] == "sr_teacher" and meta["steps"] == 15
    log = (teacher_file.parent / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 4  # header + one row per step (log_every=1)
    assert (teacher_file.parent / "config.json").is_file()
    val = (teacher_file.parent / "val.csv").read_text().splitlines()
    assert val[0].endswith("psnr_y,ssim_y") and len(val) == 2
    assert 5 < float(val[1].split(",")[3]) < 60  # a PSNR-Y in dB of a 15-step sample
    assert (teacher_file.parent / "samples" / "step0000004.png").is_file()


def test_export_from_checkpoint_matches_the_run_export(teacher_file, tmp_path):
    from safetensors.torch import load_file

    from tadsr.cli import main

    out = tmp_path / "exported.safetensors"
    ckpt = teacher_file.parent / "checkpoints" / "last.pt"
    assert main(["train", "export", str(ckpt), "-o", str(out)]) == 0
    a, b = load_file(teacher_file), load_file(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lr_schedule_warmup_constant_cosine():
    from tadsr.train.optim import lr_lambda

    f = lr_lambda(warmup=4, decay_from=10, total=20)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(9) == 1.0 and f(10) == 1.0
    assert f(15) == pytest.approx(0.5) and f(19) == pytest.approx(0.0245, abs=1e-3)
    assert all(f(s) > f(s + 1) for s in range(10, 19))
    assert lr_lambda(4)(10**6) == 1.0  # no decay_from: constant after warm-up
    # a longer total only stretches the decay; steps before decay_from are unchanged
    g = lr_lambda(warmup=4, decay_from=10, total=40)
    assert all(f(s) == g(s) for s in range(11)) and g(15) > f(15)


def test_teacher_resume_is_exact(corpus, tmp_path):
    # with the options of the bundled preset: LQ skip, textured crops, cosine decay
    cfg = _teacher_cfg(
        corpus,
        **{"unet.lq_skip": "true", "data.texture_candidates": 2, "optim.decay_from": 2},
    )
    straight = tmp_path / "straight"
    train_teacher(cfg, straight, device="cpu")
    stopped = tmp_path / "stopped"
    train_teacher(cfg, stopped, device="cpu", stop_after=2)  # as if killed after step 2
    assert torch.load(stopped / "checkpoints/last.pt", weights_only=True)["step"] == 2
    train_teacher(cfg, stopped, device="cpu", resume=True)
    a, b = _weights(straight / "checkpoints/last.pt"), _weights(stopped / "checkpoints/last.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ea = _weights(straight / "checkpoints/last.pt", "ema")
    eb = _weights(stopped / "checkpoints/last.pt", "ema")
    assert all(torch.equal(ea[k], eb[k]) for k in ea)


def test_teacher_torchrun_two_processes(corpus, tmp_path):
    """A real multi-process run: torchrun, DDP on gloo, 2 processes x 2 data workers."""
    run = tmp_path / "ddp"
    _torchrun("teacher", corpus, run, port=29500, extra=["--set", "data.workers=2"])
    assert (run / "model.safetensors").is_file()
    state = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert state["step"] == 2
    rows = (run / "log.csv").read_text().splitlines()
    assert len(rows) == 3  # only rank 0 logs


def _distill_cfg(corpus, teacher_file, **sets):
    items = [f"data.root={corpus}", f"teacher={teacher_file}", "run.threads=1"]
    items += [f"{k}={v}" for k, v in sets.items()]
    return resolve("distill", "tiny", items)


def test_distill_all_losses_and_resume(corpus, teacher_file, tmp_path):
    cfg = _distill_cfg(corpus, teacher_file)
    assert cfg.w_reg > 0 and cfg.w_hfsd > 0 and cfg.w_gan > 0
    run = tmp_path / "full"
    out = distill(cfg, run, device="cpu")
    rows = [r.split(",") for r in (run / "log.csv").read_text().splitlines()]
    header = rows[0]
    last = dict(zip(header, rows[-1]))
    for k in ("reg", "hfsd", "g", "d", "d_real", "d_fake"):
        assert float(last[k]) != 0.0, k  # every loss really ran
    # the teacher stayed frozen: its file is untouched and the student moved away from it
    from tadsr.checkpoints.io import load_model_file

    _, t_net, _ = load_model_file(teacher_file)
    meta, s_net, _ = load_model_file(out)
    assert meta["kind"] == "sr_student" and meta["steps"] == 1
    moved = sum((a - b).abs().sum().item() for a, b in zip(t_net.parameters(), s_net.parameters()))
    assert moved > 0
    # exact resume: stop after 2 steps, resume to 4
    run2 = tmp_path / "resumed"
    distill(cfg, run2, device="cpu", stop_after=2)
    distill(cfg, run2, device="cpu", resume=True)
    a, b = _weights(run / "checkpoints/last.pt"), _weights(run2 / "checkpoints/last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    da, db = (
        _weights(run / "checkpoints/last.pt", "disc"),
        _weights(run2 / "checkpoints/last.pt", "disc"),
    )
    assert all(torch.equal(da[k], db[k]) for k in da)


def test_distill_loss_switches(corpus, teacher_file, tmp_path):
    """Regression only (the SinSR-like baseline) logs zero HFSD / GAN terms."""
    cfg = _distill_cfg(corpus, teacher_file, w_hfsd=0, w_gan=0, **{"run.iterations": 1})
    run = tmp_path / "reg"
    distill(cfg, run, device="cpu")
    rows = (run / "log.csv").read_text().splitlines()
    last = dict(zip(rows[0].split(","), rows[-1].split(",")))
    assert float(last["reg"]) > 0 and float(last["hfsd"]) == 0 and float(last["g"]) == 0


def test_hfsd_gradient_direction():
    """HFSD's gradient wrt x0_hat is g = eps_hat(x_s) - eps_hat(x_r): zero when the student
    equals the teacher's target, and pointing away from a shifted student otherwise."""
    from tadsr.diffusion import SCHEDULE_PRESETS, Process
    from tadsr.losses import hfsd_loss

    p = Process(SCHEDULE_PRESETS["sr"])
    target = torch.zeros(2, 3, 8, 8)

    def oracle(x, t, lq):  # a teacher that always predicts the target
        return target

    y = torch.ones(2, 3, 8, 8)
    x0 = target.clone().requires_grad_(True)
    hfsd_loss(oracle, p, x0, target, y, None, torch.Generator().manual_seed(0)).backward()
    assert x0.grad.abs().max().item() < 1e-6
    shifted = (target + 0.5).requires_grad_(True)
    hfsd_loss(oracle, p, shifted, target, y, None, torch.Generator().manual_seed(0)).backward()
    # a gradient step (x - lr * grad) moves the shifted student back towards the target
    assert (shifted.grad > 0).float().mean().item() > 0.99


def test_discriminator_heads_only_learn(teacher_file):
    from tadsr.checkpoints.io import load_model_file
    from tadsr.nets.discriminator import TimeAwareDiscriminator
    from tadsr.nets.unet import feature_channels

    _, net, _ = load_model_file(teacher_file)
    net.requires_grad_(False)
    disc = TimeAwareDiscriminator(feature_channels(net.cfg))
    x = torch.randn(2, 48, 16, 16, requires_grad=True)
    t = torch.tensor([0, 5])
    feats = net.encoder_features(x, t, torch.zeros(2, 3, 16, 16))
    assert len(feats) == len(feature_channels(net.cfg))
    logits = disc(feats, t)
    assert all(lg.shape[:2] == (2, 64) for lg in logits)
    loss = sum(lg.mean() for lg in logits)
    loss.backward()
    assert all(p.grad is None for p in net.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())


def test_discriminator_logits_separate_on_an_easy_pair(teacher_file):
    """The logged mean real / fake logits move apart when fake is easy to tell (t_d = 0,
    fake = a flat latent): what the training log's d_real / d_fake columns show."""
    from tadsr.diffusion import Denoiser
    from tadsr.nets.discriminator import TimeAwareDiscriminator
    from tadsr.nets.unet import feature_channels
    from tadsr.pipeline import SRPipeline
    from tadsr.train.distill import disc_update

    pipe = SRPipeline.from_pretrained(str(teacher_file), device=torch.device("cpu"))
    pipe.net.requires_grad_(False)
    torch.manual_seed(0)
    disc = TimeAwareDiscriminator(feature_channels(pipe.net.cfg))
    opt = torch.optim.AdamW(disc.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 48, 16, 16, generator=g) * 2 - 1
    y, lq = x0.clone(), torch.zeros(4, 3, 16, 16)
    t, n = torch.zeros(4, dtype=torch.long), torch.randn(x0.shape, generator=g)
    gaps = []
    D = Denoiser(pipe.net, pipe.process)
    for _ in range(15):
        read = lambda x_t: D.features(x_t, t, lq)  # noqa: E731
        _, real, fake = disc_update(read, disc, opt, pipe.process, x0, x0 * 0, y, t, n)
        gaps.append(real - fake)
    assert abs(gaps[0]) < 0.05 and gaps[-1] > 0.3


def test_distill_torchrun_two_processes(corpus, teacher_file, tmp_path):
    """Distillation under torchrun: student and discriminator in DDP, cache sharded by rank."""
    run = tmp_path / "ddp-distill"
    _torchrun("distill", corpus, run, port=30500, extra=["--teacher", str(teacher_file)])
    cache = torch.load(run / "teacher_cache.pt", weights_only=True)
    assert cache["index"].tolist() == list(range(4))  # both ranks' shards, merged in order
    assert torch.load(run / "checkpoints/last.pt", weights_only=True)["step"] == 2


def test_training_reports_bad_data_in_one_line(tmp_path, capsys):
    from tadsr.cli import main

    with pytest.raises(SystemExit) as exc:
        main(
            [
                "train",
                "teacher",
                "--config",
                "tiny",
                "--out",
                str(tmp_path / "r"),
                "--set",
                f"data.root={tmp_path / 'missing'}",
            ]
        )
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_init_from_starts_a_run_at_another_models_weights(corpus, teacher_file, tmp_path):
    from tadsr.checkpoints.io import CheckpointError, load_model_file
    from tadsr.nets.unet import SwinUNet
    from tadsr.train.teacher import init_weights

    # lr 0: one step leaves the weights where init_from put them
    cfg = _teacher_cfg(corpus, **{"run.init_from": teacher_file, "run.iterations": 1,
                                  "optim.lr": 0.0, "run.val_every": 0})  # fmt: skip
    out = train_teacher(cfg, tmp_path / "run", device="cpu")
    _, a, _ = load_model_file(out)
    _, b, _ = load_model_file(teacher_file)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    other = SwinUNet(_teacher_cfg(corpus, **{"unet.model_channels": 16}).unet)
    with pytest.raises(CheckpointError, match="does not fit"):
        init_weights(other, str(teacher_file))


def test_resume_does_not_repeat_log_rows(corpus, tmp_path):
    cfg = _teacher_cfg(corpus, **{"run.iterations": 2, "run.val_every": 0})
    run = tmp_path / "run"
    train_teacher(cfg, run, device="cpu")
    log = run / "log.csv"
    rows = log.read_text().splitlines()
    # a kill after the step-2 checkpoint, once steps 3 and 4 were logged
    log.write_text("\n".join(rows + ["3,1,1,0.1,0.1,0.1", "4,1,1,0.1,0.1,0.1"]) + "\n")
    train_teacher(replace_iterations(cfg, 4), run, device="cpu", resume=True)
    steps = [int(r.split(",")[0]) for r in log.read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4]


def replace_iterations(cfg, n: int):
    import dataclasses

    return dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, iterations=n))


def test_teacher_steps_respaces_the_regression_target(teacher_file):
    from tadsr.diffusion import Denoiser, sample_deterministic
    from tadsr.pipeline import SRPipeline
    from tadsr.train.distill import teacher_target

    pipe = SRPipeline.from_pretrained(str(teacher_file), device=torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    hr, lq = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    _, y = latents(pipe.codec, hr, lq, pipe.scale)
    eps = torch.randn(y.shape, generator=g)
    cfg = resolve("distill", "tiny")
    full = sample_deterministic(Denoiser(pipe.net, pipe.process), y, lq, noise=eps)
    assert torch.equal(teacher_target(pipe, cfg, hr, lq, eps), full)  # 0 = all T steps
    cfg.teacher_steps = 4
    proc = pipe.process.respaced(4)
    calls = []
    net = lambda x, t, c: calls.append(t[0].item()) or pipe.net(x, t, c)  # noqa: E731
    four = sample_deterministic(Denoiser(net, proc), y, lq, noise=eps)
    assert calls == sorted(calls, reverse=True) and len(calls) == 4 and calls[0] == 14
    assert torch.equal(teacher_target(pipe, cfg, hr, lq, eps), four)
    assert not torch.equal(four, full)


def test_teacher_input_clean_samples_the_teacher_from_the_bicubic_lr_of_the_hr_crop(
    corpus, teacher_file
):
    """`teacher_input: clean`: the target is the teacher's sample from the bicubic /4 of the
    HR crop with the student's noise, whatever the student's (degraded) input; the default
    samples from the student's own input."""
    from tadsr.data.degradation import BicubicDegradation, build_degradation
    from tadsr.diffusion import Denoiser, sample_deterministic
    from tadsr.pipeline import SRPipeline
    from tadsr.train.batches import training_crops
    from tadsr.train.distill import cache_samples

    cfg = _distill_cfg(corpus, teacher_file)
    cfg.teacher_input = "clean"
    pipe = SRPipeline.from_pretrained(str(teacher_file), device=torch.device("cpu"))
    data, deg = training_crops(cfg), build_degradation("realesrgan")
    got = cache_samples([0, 1], cfg, pipe, data, deg, torch.device("cpu"))
    clean = BicubicDegradation(pipe.scale)((got["hr"] + 1) / 2) * 2 - 1
    assert not torch.equal(clean, got["lq"])  # the student still sees the degraded LR
    _, y = latents(pipe.codec, got["hr"], clean, pipe.scale)
    want = sample_deterministic(Denoiser(pipe.net, pipe.process), y, clean, noise=got["eps"])
    assert torch.allclose(got["zt"], want, atol=1e-5)
    cfg.teacher_input = "lq"
    own = cache_samples([0, 1], cfg, pipe, data, deg, torch.device("cpu"))
    assert torch.equal(own["lq"], got["lq"]) and torch.equal(own["eps"], got["eps"])
    assert (own["zt"] - got["zt"]).abs().max() > 2e-4  # 20x the tolerance above (tiny teacher)
    cfg.teacher_input = "noisy"
    with pytest.raises(ValueError, match="teacher_input must be one of lq, clean"):
        check_config(cfg)


def test_teacher_cache_does_not_depend_on_the_sharding(corpus, teacher_file):
    """The cache is a function of the sample index alone: one process computing samples
    0..5 gives what two processes computing the even and the odd ones give."""
    from tadsr.data.degradation import build_degradation
    from tadsr.pipeline import SRPipeline
    from tadsr.train.batches import training_crops
    from tadsr.train.distill import cache_samples

    cfg = _distill_cfg(corpus, teacher_file)
    pipe = SRPipeline.from_pretrained(str(teacher_file), device=torch.device("cpu"))
    data, deg = training_crops(cfg), build_degradation("realesrgan")
    whole = cache_samples(list(range(6)), cfg, pipe, data, deg, torch.device("cpu"))
    even = cache_samples([0, 2, 4], cfg, pipe, data, deg, torch.device("cpu"))
    odd = cache_samples([1, 3, 5], cfg, pipe, data, deg, torch.device("cpu"))
    order = torch.cat([even["index"], odd["index"]]).argsort()
    for k in ("hr", "lq", "eps"):
        assert torch.equal(torch.cat([even[k], odd[k]])[order], whole[k]), k
    assert torch.allclose(torch.cat([even["zt"], odd["zt"]])[order], whole["zt"], atol=1e-4)
    assert not torch.equal(whole["lq"][0], whole["lq"][1])


def test_a_non_finite_hfsd_term_stops_the_run_naming_it(
    corpus, teacher_file, tmp_path, monkeypatch
):
    import tadsr.train.distill as distill_mod

    monkeypatch.setattr(distill_mod, "hfsd_loss", lambda *a, **k: torch.tensor(float("nan")))
    cfg = _distill_cfg(corpus, teacher_file)
    with pytest.raises(FloatingPointError, match="hfsd is nan at step 1"):
        distill(cfg, tmp_path / "run", device="cpu")


def test_curves_png_shows_every_logged_term(teacher_file, tmp_path):
    """The run folder's curves.png has one panel per training term (loss, grad_norm, lr)
    and per validation metric (psnr_y, ssim_y): 5 panels, 4 per row at 256 x 192 px."""
    from tadsr.train.curves import plot_curves

    png = teacher_file.parent / "curves.png"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (4 * 256, 2 * 192)
    assert plot_curves(tmp_path) is None  # nothing logged yet: no picture


def test_tensorboard_events_when_installed(corpus, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train_teacher(_teacher_cfg(corpus, **{"run.iterations": 2}), run, device="cpu")
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2]
    assert "train/lr" in events.Tags()["scalars"]


def test_load_reads_a_training_checkpoint_as_its_exported_model(teacher_file):
    """checkpoints.load of RUN/checkpoints/last.pt: the EMA weights with the run's codec,
    schedule and scale, the same model as the exported file (which stores fp16)."""
    from tadsr.checkpoints import load

    ckpt = load(teacher_file.parent / "checkpoints" / "last.pt")
    exported = load(teacher_file)
    assert ckpt.kind == exported.kind == "teacher" and ckpt.scale == exported.scale == 4
    assert ckpt.process.cfg == exported.process.cfg
    assert ckpt.codec.to_dict() == exported.codec.to_dict()
    for (k, a), b in zip(ckpt.net.named_parameters(), exported.net.parameters()):
        assert torch.equal(a.detach().half().float(), b), k


def test_export_of_a_distillation_checkpoint_matches_the_run_export(corpus, teacher_file, tmp_path):
    """`tadsr train export` of a student's last.pt: the run's own export, tensor for tensor
    and in its metadata (the teacher's codec, schedule and scale, read from its file)."""
    from safetensors.torch import load_file

    from tadsr.checkpoints.io import read_metadata
    from tadsr.cli import main

    cfg = _distill_cfg(corpus, teacher_file, w_hfsd=0, w_gan=0, **{"run.iterations": 1})
    run_export = distill(cfg, tmp_path / "run", device="cpu")
    out = tmp_path / "exported.safetensors"
    assert main(["train", "export", str(tmp_path / "run/checkpoints/last.pt"), "-o", str(out)]) == 0
    a, b = load_file(run_export), load_file(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_metadata(run_export) == read_metadata(out)


def test_a_cache_made_for_another_teacher_input_is_refused_naming_the_file(
    corpus, teacher_file, tmp_path
):
    """A cached target sampled from the student's LR is not the clean-input target: reusing
    the file under `teacher_input: clean` stops with the file and both settings named, while
    a run with the cache's own settings (another seed) reuses it."""
    cache = tmp_path / "cache.pt"
    sets = {"run.iterations": 1, "teacher_cache_file": cache, "w_hfsd": 0, "w_gan": 0}
    distill(_distill_cfg(corpus, teacher_file, **sets), tmp_path / "a", device="cpu")
    assert torch.load(cache, weights_only=True)["recipe"]["teacher_input"] == "lq"
    before = cache.stat().st_mtime_ns
    again = _distill_cfg(corpus, teacher_file, **sets, **{"run.seed": 5})
    distill(again, tmp_path / "b", device="cpu")
    assert cache.stat().st_mtime_ns == before  # reused, not rebuilt
    clean = _distill_cfg(corpus, teacher_file, teacher_input="clean", **sets)
    with pytest.raises(ValueError, match=r"cache\.pt: this teacher cache was made with "
                       r"teacher_input 'lq'; this run asks for teacher_input 'clean'"):
        distill(clean, tmp_path / "c", device="cpu")
