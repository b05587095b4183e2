"""The realism options of the distillation (issue 20): the faithful regression target, HFSD's
HR reference, the pixel-space discriminator with t_d on the informative steps, and the
discriminator's held-out AUC next to the Laplacian-energy detector. Tiny config, real photos."""

from __future__ import annotations

import pytest
import torch

from tadsr.train.config import resolve
from tadsr.train.distill import distill


def _cfg(corpus, teacher_file, **sets):
    items = [f"data.root={corpus}", f"teacher={teacher_file}", "run.threads=1"]
    return resolve("distill", "tiny", items + [f"{k}={v}" for k, v in sets.items()])


def test_auc_is_the_chance_a_real_scores_above_a_fake():
    from tadsr.train.disc_probe import auc

    assert auc(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0])) == 1.0
    assert auc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0])) == 0.0
    assert auc(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0])) == 0.5
    assert auc(torch.tensor([1.0]), torch.tensor([1.0])) == 0.5  # a tie counts half


def test_laplacian_energy_ranks_detail_above_blur():
    from tadsr.train.disc_probe import laplacian_energy

    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, 1, 1)
    e_sharp, e_blur = laplacian_energy(sharp), laplacian_energy(blurred)
    assert (e_sharp > 4 * e_blur).all()
    assert laplacian_energy(torch.zeros(1, 3, 8, 8)).item() == 0.0


def test_hfsd_hr_reference_is_zero_at_the_hr_latent():
    """With the HR latent as reference, HFSD vanishes where the student equals HR and pushes
    a shifted student back towards it."""
    from tadsr.diffusion import SCHEDULE_PRESETS, Process
    from tadsr.losses import hfsd_loss

    p = Process(SCHEDULE_PRESETS["sr"])
    hr = torch.linspace(-1, 1, 2 * 3 * 8 * 8).reshape(2, 3, 8, 8)

    def oracle(x, t, lq):
        return hr

    y = torch.zeros_like(hr)
    at_hr = hr.clone().requires_grad_(True)
    hfsd_loss(
        oracle, p, at_hr, hr, y, None, torch.Generator().manual_seed(0), reference="hr"
    ).backward()
    assert at_hr.grad.abs().max().item() < 1e-6
    off = (hr - 0.3).requires_grad_(True)
    hfsd_loss(
        oracle, p, off, hr, y, None, torch.Generator().manual_seed(0), reference="hr"
    ).backward()
    assert (off.grad < 0).float().mean().item() > 0.99  # x - lr * grad moves up, towards HR


def test_pixel_discriminator_separates_an_easy_pair_and_is_time_aware():
    from tadsr.diffusion import SCHEDULE_PRESETS, Process
    from tadsr.nets.discriminator import PixelDiscriminator
    from tadsr.train.distill import disc_update

    torch.manual_seed(0)
    disc = PixelDiscriminator(3, width=8)
    opt = torch.optim.AdamW(disc.parameters(), lr=2e-3)
    p = Process(SCHEDULE_PRESETS["sr"])
    g = torch.Generator().manual_seed(0)
    real = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1  # detailed
    fake = torch.nn.functional.avg_pool2d(real, 5, 1, 2)  # the same, blurred
    y = torch.zeros_like(real)
    t = torch.zeros(4, dtype=torch.long)
    n = torch.randn(real.shape, generator=g)
    gaps = [
        (lambda r: r[1] - r[2])(disc_update(lambda x: [x], disc, opt, p, real, fake, y, t, n))
        for _ in range(30)
    ]
    assert abs(gaps[0]) < 0.2 and gaps[-1] > 0.5
    # the time embedding reaches the logits once its FiLM layers have learnt
    with torch.no_grad():
        a = disc([real], torch.zeros(4, dtype=torch.long))[0]
        b = disc([real], torch.full((4,), 9, dtype=torch.long))[0]
    assert not torch.allclose(a, b)


def test_local_energy_map_is_the_log_detail_energy_per_neighbourhood():
    """The discriminator's energy input: a textured half reads about log(energy) higher than
    a flat half, the map keeps the image size for any window, and a blurred image reads
    lower everywhere that it had detail."""
    from tadsr.nets.discriminator import PixelDiscriminator, local_energy

    g = torch.Generator().manual_seed(0)
    img = torch.zeros(1, 3, 32, 32)
    img[..., 16:] = torch.rand(1, 3, 32, 16, generator=g) * 2 - 1
    for window in (4, 5, 8):
        assert local_energy(img, window).shape == img.shape
    e = local_energy(img, 8)
    assert e[..., :, :8].max() < -1.5  # flat: log(1e-4) -> (-9.2 + 5) / 2 = -2.1
    assert e[..., :, 24:].min() > 0.5  # detail of RMS ~0.5: log(0.2) -> about +1.7
    blurred = torch.nn.functional.avg_pool2d(img, 3, 1, 1)
    assert (local_energy(blurred, 8)[..., 24:] < e[..., 24:]).all()
    # with the energy input the first conv reads 9 channels (image, high-pass, energy)
    assert PixelDiscriminator(3, width=8, energy_window=8).blocks[0].conv.in_channels == 9


def test_distill_with_the_realism_options_logs_the_auc_and_resumes(
    corpus, teacher_file, val_pairs, tmp_path
):
    """reg_target hr + HFSD (HR reference) + pixel discriminator on t_d in {0, 1}, two D
    updates a step after two pre-training updates (not repeated by the resume): every term
    runs, val.csv carries the discriminator's held-out AUC per t_d and the Laplacian
    baseline, and a stopped run resumes bitwise."""
    cfg = _cfg(
        corpus, teacher_file, reg_target="hr", hfsd_reference="hr", disc_kind="pixel",
        disc_t_max=2, disc_steps=2, disc_probe=4, disc_pretrain=2, disc_energy=4,
        **{"run.val_every": 4,
        "data.val_pairs": val_pairs},
    )  # fmt: skip
    run = tmp_path / "full"
    out = distill(cfg, run, device="cpu")
    rows = (run / "log.csv").read_text().splitlines()
    last = dict(zip(rows[0].split(","), rows[-1].split(",")))
    for k in ("reg", "hfsd", "g", "d"):
        assert float(last[k]) != 0.0, k
    val = (run / "val.csv").read_text().splitlines()
    head = val[0].split(",")
    assert {"auc_t0", "auc_t1", "auc_best", "auc_laplacian"} <= set(head)
    assert "auc_t2" not in head  # t_d only on {0, 1}
    vals = dict(zip(head, val[-1].split(",")))
    assert all(0.0 <= float(vals[k]) <= 1.0 for k in ("auc_t0", "auc_t1", "auc_laplacian"))
    from tadsr.checkpoints.io import read_metadata

    losses = read_metadata(out)["provenance"]["losses"]
    assert losses["reg_target"] == "hr" and losses["disc_kind"] == "pixel"
    assert losses["disc_energy"] == 4
    run2 = tmp_path / "resumed"
    distill(cfg, run2, device="cpu", stop_after=2)
    distill(cfg, run2, device="cpu", resume=True)
    for key in ("model", "disc"):
        a = torch.load(run / "checkpoints/last.pt", weights_only=True)[key]
        b = torch.load(run2 / "checkpoints/last.pt", weights_only=True)[key]
        assert all(torch.equal(a[k], b[k]) for k in a), key


def test_regression_to_hr_differs_from_regression_to_the_teacher(corpus, teacher_file, tmp_path):
    """reg_target really changes the target: the first step's regression loss differs."""
    logged = {}
    for target in ("teacher", "hr"):
        cfg = _cfg(corpus, teacher_file, w_hfsd=0, w_gan=0, reg_target=target,
                   **{"run.iterations": 1})  # fmt: skip
        distill(cfg, tmp_path / target, device="cpu")
        rows = (tmp_path / target / "log.csv").read_text().splitlines()
        logged[target] = float(dict(zip(rows[0].split(","), rows[-1].split(",")))["reg"])
    assert logged["teacher"] > 0 and logged["hr"] > 0
    assert abs(logged["teacher"] - logged["hr"]) > 1e-4 * logged["hr"]


def test_split_regression_keeps_low_frequencies_and_weighs_high_ones_by_w():
    """At w = 1 the split loss is the plain squared error (pixel-unshuffle codec); a flat
    offset is a low frequency, kept whole at any w; a pixel checkerboard is the highest
    frequency, weighed by w; the target gets no gradient."""
    import torch.nn.functional as F

    from tadsr.losses import regression_loss, split_regression_loss

    decode = lambda z: F.pixel_shuffle(z, 4)  # noqa: E731  (the small preset's codec)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 48, 8, 8, generator=g), torch.randn(2, 48, 8, 8, generator=g)
    assert torch.allclose(split_regression_loss(a, b, decode, 1.0, 1.5), regression_loss(a, b))
    flat = torch.full((1, 3, 32, 32), 0.3)
    zero = torch.zeros_like(flat)
    ident = lambda z: z  # noqa: E731
    for w in (0.0, 0.3):
        got = split_regression_loss(flat, zero, ident, w, 1.5).item()
        assert got == pytest.approx(0.09, rel=1e-5)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    checker = (((yy + xx) % 2) * 2 - 1).float().expand(1, 3, 32, 32) * 0.3
    for w in (0.0, 0.3, 1.0):  # the Gaussian's response at Nyquist is ~1e-5 for sigma 1.5
        got = split_regression_loss(checker, zero, ident, w, 1.5).item()
        assert got == pytest.approx(0.09 * w, abs=1e-4)
    x, t = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    split_regression_loss(x, t, decode, 0.25, 1.5).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0 and t.grad is None


def test_reg_hf_weight_reaches_the_distillation(corpus, teacher_file, tmp_path):
    """The first step's logged regression loss to the HR crop (whose detail the student lacks)
    drops with a smaller high-frequency weight (same seed, crops and student): the option
    reaches the objective."""
    logged = {}
    for w in ("1.0", "0.25"):
        cfg = _cfg(corpus, teacher_file, w_hfsd=0, w_gan=0, reg_hf_weight=w, reg_target="hr",
                   **{"run.iterations": 1})  # fmt: skip
        distill(cfg, tmp_path / w, device="cpu")
        rows = (tmp_path / w / "log.csv").read_text().splitlines()
        logged[w] = float(dict(zip(rows[0].split(","), rows[-1].split(",")))["reg"])
    assert 0 < logged["0.25"] < 0.995 * logged["1.0"], logged  # 6 logged digits; about 1 % here


def test_l1_regression_is_the_mean_absolute_error_and_reaches_the_distillation(
    corpus, teacher_file, tmp_path
):
    """reg_norm l1: the loss is mean |x - t|, not the squared error. The first step's logged
    loss is the same residual r (same student, crops and target) under both norms, so with
    |r| < 1 the l1 figure lies between mean r^2 and its root (Jensen): the option reaches the
    objective. It cannot be combined with the frequency split, a squared error."""
    from tadsr.losses import regression_loss

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 48, 8, 8, generator=g), torch.randn(2, 48, 8, 8, generator=g)
    assert regression_loss(a, b, "l1").item() == pytest.approx((a - b).abs().mean().item())
    assert regression_loss(a, b).item() == pytest.approx((a - b).square().mean().item())
    with pytest.raises(ValueError, match="l2 or l1"):
        regression_loss(a, b, "huber")
    logged = {}
    for norm in ("l2", "l1"):
        cfg = _cfg(corpus, teacher_file, w_hfsd=0, w_gan=0, reg_target="hr", reg_norm=norm,
                   **{"run.iterations": 1})  # fmt: skip
        distill(cfg, tmp_path / norm, device="cpu")
        rows = (tmp_path / norm / "log.csv").read_text().splitlines()
        logged[norm] = float(dict(zip(rows[0].split(","), rows[-1].split(",")))["reg"])
    # the same residual r (all |r| < 1 here): mean r^2 < mean |r| <= sqrt(mean r^2)
    assert logged["l2"] < logged["l1"] <= logged["l2"] ** 0.5 * 1.001, logged
    with pytest.raises(ValueError, match="needs reg_norm l2"):
        resolve("distill", "tiny", ["reg_norm=l1", "reg_hf_weight=0.5"])


def test_flat_area_loss_prices_grain_on_smooth_areas_not_on_texture(photo):
    """On a real photo: the same faint grain (sigma 3 levels) costs far more on the flattest
    patch than on the most detailed one; the loss is 0 at the HR, its gradient reaches the
    SR image only, and it is refused for images of two shapes."""
    from tadsr.losses import flat_area_loss
    from tadsr.losses.flat import flat_mask

    hr = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 127.5 - 1
    m = flat_mask(hr)[0, 0]
    patch = 32
    tiles = m.unfold(0, patch, patch).unfold(1, patch, patch).mean((-1, -2))
    flat_ij = divmod(int(tiles.argmax()), tiles.shape[1])
    busy_ij = divmod(int(tiles.argmin()), tiles.shape[1])
    assert tiles.max() > 0.8 and tiles.min() < 0.2  # the photo has both kinds of area
    g = torch.Generator().manual_seed(0)
    grain = torch.randn((1, 3, patch, patch), generator=g) * 3 / 127.5
    cost = {}
    for name, (i, j) in (("flat", flat_ij), ("busy", busy_ij)):
        sr = hr.clone()
        sr[..., i * patch : (i + 1) * patch, j * patch : (j + 1) * patch] += grain
        cost[name] = flat_area_loss(sr, hr).item()
    assert flat_area_loss(hr, hr).item() == 0.0
    assert cost["flat"] > 5 * cost["busy"] > 0, cost
    sr = (hr + 0.01).requires_grad_(True)
    target = hr.clone().requires_grad_(True)
    flat_area_loss(sr + torch.randn_like(hr) * 0.02, target).backward()
    assert sr.grad.abs().sum() > 0 and target.grad is None
    with pytest.raises(ValueError, match="one shape"):
        flat_area_loss(hr, hr[..., :-1])


def test_flat_area_loss_reaches_the_distillation_and_its_provenance(
    corpus, teacher_file, tmp_path
):
    """w_flat > 0 adds the logged term "flat" to the student's loss (the same first step
    without it logs none, with the same regression term) and the export records its weight."""
    from tadsr.checkpoints.io import read_metadata

    rows = {}
    for w in ("0", "0.5"):
        cfg = _cfg(corpus, teacher_file, w_hfsd=0, w_gan=0, w_flat=w, **{"run.iterations": 1})
        out = distill(cfg, tmp_path / w, device="cpu")
        lines = (tmp_path / w / "log.csv").read_text().splitlines()
        rows[w] = dict(zip(lines[0].split(","), lines[-1].split(",")))
        assert read_metadata(out)["provenance"]["losses"]["flat"] == float(w)
    assert float(rows["0.5"]["flat"]) > 0 and not rows["0"].get("flat")
    assert float(rows["0.5"]["reg"]) == pytest.approx(float(rows["0"]["reg"]), rel=1e-4)


def test_distill_init_from_starts_the_student_at_that_model(corpus, teacher_file, tmp_path):
    from tadsr.checkpoints.io import load_model_file

    first = distill(
        _cfg(corpus, teacher_file, **{"run.iterations": 2}), tmp_path / "a", device="cpu"
    )
    cfg = _cfg(corpus, teacher_file, w_gan=0, **{"run.init_from": first, "run.iterations": 1,
                                                 "optim.lr": 0.0})  # fmt: skip
    out = distill(cfg, tmp_path / "b", device="cpu")
    _, a, _ = load_model_file(first)
    _, b, _ = load_model_file(out)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("reg_target", "lr", "reg_target must be one of teacher, hr"),
        ("disc_kind", "vgg", "disc_kind must be one of encoder, pixel"),
        ("disc_steps", "0", "disc_steps must be at least 1"),
        ("disc_t_max", "-1", "disc_t_max must be 0 or more"),
        ("disc_energy", "-2", "disc_energy must be 0 or more"),
        ("reg_hf_weight", "-0.5", "reg_hf_weight must be 0 or more"),
        ("reg_hf_sigma", "0", "reg_hf_sigma positive"),
        ("reg_norm", "l3", "reg_norm must be one of l2, l1"),
        ("w_flat", "-1", "w_flat must be 0 or more"),
        ("flat_tau", "0", "flat_tau positive"),
    ],
)
def test_bad_realism_settings_are_refused_naming_the_setting(key, value, message):
    with pytest.raises(ValueError, match=message):
        resolve("distill", "tiny", [f"{key}={value}"])


def test_a_faithful_run_without_cache_never_samples_the_teacher(corpus, teacher_file, tmp_path):
    """reg_target hr and no HFSD / GAN, no cache: fresh crops every step, and the teacher's
    sampling (a call of teacher_target) never runs."""
    import tadsr.train.distill as distill_mod

    calls = []
    real = distill_mod.teacher_target
    distill_mod.teacher_target = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        cfg = _cfg(corpus, teacher_file, w_hfsd=0, w_gan=0, reg_target="hr", teacher_cache=0,
                   **{"run.iterations": 2})  # fmt: skip
        distill(cfg, tmp_path / "faithful", device="cpu")
        assert calls == []
        cfg = _cfg(corpus, teacher_file, w_hfsd=0, w_gan=0, teacher_cache=0,
                   **{"run.iterations": 1})  # fmt: skip
        distill(cfg, tmp_path / "paper", device="cpu")
        assert calls  # the teacher's target is sampled when regression reads it
    finally:
        distill_mod.teacher_target = real
