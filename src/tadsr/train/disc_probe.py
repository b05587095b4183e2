"""Can the discriminator tell HR from the student? Its held-out AUC, next to a fixed detector.

On `n` crops of the corpus's validation photos (never trained on), degraded by the run's
degradation with per-crop seeds, the student (the EMA weights) makes its one-step output.
For each t_d the discriminator trains on, real = q(x0_gt, t_d) and fake = q(x0_hat, t_d)
(same noise) are scored by the mean of the discriminator's logits; the AUC is the chance that
a real crop scores above a fake one (Mann-Whitney, unpaired: 0.5 = cannot tell, 1 = always).
The baseline is a detector that learns nothing: the Laplacian energy of the clean images
(HR crops have more fine detail than the student's), whose AUC a discriminator that learns
the realism gap should beat at its most informative t_d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tadsr.diffusion import Denoiser
from tadsr.losses.adversarial import all_logits
from tadsr.train.batches import disc_noise, latents, step_generator

LUMA = (0.299, 0.587, 0.114)


def auc(real: Tensor, fake: Tensor) -> float:
    """P(score of a real sample > score of a fake one), ties counted half."""
    r, f = real.flatten()[:, None].double(), fake.flatten()[None, :].double()
    return float(((r > f).double() + 0.5 * (r == f).double()).mean())


def laplacian_energy(img: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B,): mean squared 3x3 Laplacian of the luma (valid region)."""
    w = torch.tensor(LUMA, dtype=img.dtype, device=img.device)[None, :, None, None]
    luma = (img * w).sum(1, keepdim=True)
    k = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=img.dtype, device=img.device)
    return F.conv2d(luma, k[None, None]).pow(2).mean(dim=(1, 2, 3))


@torch.no_grad()
def probe_samples(cfg, degradation, codec, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """(hr, lq, eps) of `n` held-out crops in [-1, 1], the same at every call of a run."""
    from tadsr.data.datasets import CropDataset

    data = CropDataset(
        cfg.data.root, crop_size=cfg.data.crop_size, split="val", seed=cfg.run.seed, length=n
    )
    hrs, lqs, epss = [], [], []
    f = codec.factor
    for i in range(n):
        g = step_generator(cfg.run.seed, i, 0, 0, "disc-probe")
        hr = data[i][None]
        lqs.append(degradation(hr, g) * 2 - 1)
        hrs.append(hr * 2 - 1)
        epss.append(
            torch.randn((1, codec.channels, hr.shape[-2] // f, hr.shape[-1] // f), generator=g)
        )
    return torch.cat(hrs), torch.cat(lqs), torch.cat(epss)


@torch.no_grad()
def probe_discriminator(obj, student, n: int) -> dict[str, float]:
    """`auc_t{k}` for each t_d the discriminator trains on, `auc_best` (their maximum) and
    `auc_laplacian` (the fixed baseline) on `n` held-out crops. `obj` is a
    `DistillObjective` (teacher, discriminator, config)."""
    teacher, cfg, disc = obj.teacher, obj.cfg, obj.disc
    if getattr(obj, "_probe", None) is None:
        obj._probe = probe_samples(cfg, obj.degradation, teacher.codec, n)
    device = next(student.parameters()).device
    hr, lq, eps = (x.to(device) for x in obj._probe)
    process = teacher.process
    x0_gt, y = latents(teacher.codec, hr, lq, teacher.scale)
    x0_hat = torch.cat(
        [
            Denoiser(student, process)(
                process.prior_sample(y[i : i + 8], eps[i : i + 8]), process.last_t, lq[i : i + 8]
            ).float()
            for i in range(0, len(y), 8)
        ]
    )
    decode = teacher.codec.decode
    out = {"auc_laplacian": auc(laplacian_energy(decode(x0_gt)), laplacian_energy(decode(x0_hat)))}
    was_training = disc.training
    disc.eval()
    try:
        for t in range(obj.disc_t_count()):
            g = torch.Generator().manual_seed(1000 + t)
            noise = disc_noise(cfg.disc_noise, y.shape, g).to(device)
            t_d = torch.full((y.shape[0],), t, dtype=torch.long, device=device)
            scores = []
            for x0 in (x0_gt, x0_hat):
                x_t = process.q_sample(x0, y, t_d, noise)
                scores.append(all_logits(disc(obj.disc_inputs(x_t, t_d, lq), t_d)).mean(1))
            out[f"auc_t{t}"] = auc(*scores)
    finally:
        disc.train(was_training)
    out["auc_best"] = max(v for k, v in out.items() if k.startswith("auc_t"))
    return out
