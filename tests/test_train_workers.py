"""The data path with DataLoader workers keeps a run exact: the same weights with 0 or 2
workers (whatever the training process's thread count), a killed and resumed run with
workers equals one never stopped, and bad data in a worker is one line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tadsr.train.config import resolve
from tadsr.train.teacher import train_teacher


def _cfg(corpus: Path, workers: int, threads: int = 1):
    items = [f"data.root={corpus}", f"run.threads={threads}", f"data.workers={workers}",
             "data.texture_candidates=2"]  # fmt: skip
    return resolve("teacher", "tiny", items)


def _state(run: Path) -> dict:
    return torch.load(run / "checkpoints/last.pt", map_location="cpu", weights_only=True)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def no_workers(corpus, tmp_path_factory) -> dict:
    """The reference: crops and degradation in the training process, which has 2 threads."""
    run = tmp_path_factory.mktemp("w0")
    train_teacher(_cfg(corpus, 0, threads=2), run, device="cpu")
    return _state(run)


def test_two_workers_give_the_same_weights(corpus, no_workers, tmp_path):
    train_teacher(_cfg(corpus, 2, threads=2), tmp_path, device="cpu")
    got = _state(tmp_path)
    assert got["step"] == no_workers["step"] == 4
    assert _same(got["model"], no_workers["model"]) and _same(got["ema"], no_workers["ema"])
    # the weights did move: equality is not that of two untrained models
    init = resolve("teacher", "tiny", []).unet
    from tadsr.nets.unet import SwinUNet

    torch.manual_seed(0)
    fresh = SwinUNet(init).state_dict()
    assert not _same(fresh, got["model"])


def test_killed_and_resumed_with_workers_equals_a_run_never_stopped(corpus, no_workers, tmp_path):
    cfg = _cfg(corpus, 2, threads=2)
    train_teacher(cfg, tmp_path, device="cpu", stop_after=1)  # as if killed after step 1
    assert _state(tmp_path)["step"] == 1
    train_teacher(cfg, tmp_path, device="cpu", resume=True)
    got = _state(tmp_path)
    assert _same(got["model"], no_workers["model"]) and _same(got["ema"], no_workers["ema"])


def test_a_bad_file_read_by_a_worker_is_one_line_naming_it(corpus, tmp_path, capsys):
    import shutil

    from tadsr.cli import main

    root = tmp_path / "photos"
    shutil.copytree(corpus, root)
    data = (root / "coffee.png").read_bytes()
    (root / "coffee.png").write_bytes(data[: len(data) // 3])  # the header reads, pixels don't
    args = ["train", "teacher", "--config", "tiny", "--out", str(tmp_path / "r"), "--device",
            "cpu", "--set", f"data.root={root}", "--set", "data.workers=2",
            "--set", "run.iterations=8"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "coffee.png" in err and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "setting, value", [("data.workers", -1), ("data.prefetch", 0), ("data.degrade_on", "gpu")]
)
def test_bad_data_path_settings_are_refused(setting, value):
    with pytest.raises(ValueError, match=setting.split(".")[1]):
        resolve("teacher", "tiny", [f"{setting}={value}"])


def test_micro_batches_and_their_draws_do_not_depend_on_the_workers(corpus):
    """Crops, LR and the generator the loss goes on drawing from, step by step, with the
    realistic degradation at the bundled crop size; a stream restarted at another step (a
    resume, or distillation's discriminator pre-training) too."""
    from tadsr.train.distributed import Dist
    from tadsr.train.feed import make_feed

    def stream(workers: int, steps) -> list:
        cfg = _cfg(corpus, workers, threads=2)
        cfg.data.crop_size, cfg.data.degradation, cfg.run.grad_accum = 128, "mixed", 2
        feed, _, _ = make_feed(cfg, Dist(), scale=4)
        torch.set_num_threads(2)
        try:
            return [(mb.hr, mb.lq, torch.rand(3, generator=mb.generator))
                    for s in steps for mb in feed.batches(s)]  # fmt: skip
        finally:
            feed.close()

    steps = [0, 1, 2, 5, 6, 3]
    a, b = stream(0, steps), stream(2, steps)
    assert len(a) == len(b) == 2 * len(steps)
    for x, y in zip(a, b):
        assert all(torch.equal(u, v) for u, v in zip(x, y))
    assert not torch.equal(a[0][1], a[2][1])  # steps differ


def test_distillation_with_workers_gives_the_same_student(corpus, teacher_file, tmp_path):
    """Without a teacher cache distillation reads the feed too: its eps, t and the
    discriminator's draws continue each batch's generator, made in a worker."""
    from tadsr.train.distill import distill

    def run(workers: int) -> dict:
        sets = [f"data.root={corpus}", f"teacher={teacher_file}", "run.threads=1",
                "teacher_cache=0", "run.iterations=2", f"data.workers={workers}"]
        cfg = resolve("distill", "tiny", sets)
        distill(cfg, tmp_path / f"w{workers}", device="cpu")
        return _state(tmp_path / f"w{workers}")

    a, b = run(0), run(2)
    assert _same(a["model"], b["model"]) and _same(a["disc"], b["disc"])
