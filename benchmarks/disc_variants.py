"""Which pixel discriminator can learn the realism gap at our scale? Five plain variants on
fixed clean pairs, each scored by its held-out AUC against the Laplacian-energy detector.

Real = the HR crops, fake = the frozen student's one-step outputs of the same crops (the
teacher-target cache's 256 training samples, `benchmarks/disc_auc.py`'s cache), both as clean
images (no diffusion noise, no time input). Each variant trains from the same seed for
`--steps` hinge updates of batch 8 and prints its AUC on `--probe` held-out crops
(`tadsr.train.disc_probe`) every 100 updates:

- sn_lr2e-4 / sn_lr1e-3: strided convs (3x3, 4x4/2, 4x4/2, 3x3, 3x3 to one logit), spectral
  norm, AdamW at that learning rate;
- nosn_lr2e-4: the same without spectral norm;
- sn_hf4_lr2e-4 / nosn_hf4_lr2e-4: the image plus its high-pass (x - 5x5 box blur) times 4 as
  input, the design `PixelDiscriminator` keeps.

    python benchmarks/disc_variants.py [--teacher tadsr-small-teacher] [--student tadsr-small]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = {
    "sn_lr2e-4": dict(sn=True, lr=2e-4, hf=0.0),
    "sn_lr1e-3": dict(sn=True, lr=1e-3, hf=0.0),
    "nosn_lr2e-4": dict(sn=False, lr=2e-4, hf=0.0),
    "sn_hf4_lr2e-4": dict(sn=True, lr=2e-4, hf=4.0),
    "nosn_hf4_lr2e-4": dict(sn=False, lr=2e-4, hf=4.0),
}


class PlainPatchD(nn.Module):
    def __init__(self, sn: bool, hf: float, width: int = 32):
        super().__init__()
        from tadsr.nets.discriminator import high_pass

        self.hf, self.high_pass = hf, high_pass
        norm = nn.utils.parametrizations.spectral_norm if sn else (lambda m: m)

        def conv(i: int, o: int, k: int, s: int) -> nn.Module:
            return norm(nn.Conv2d(i, o, k, s, (k - 1) // 2))

        w, act = width, (lambda: nn.LeakyReLU(0.2))
        self.net = nn.Sequential(
            conv(6 if hf else 3, w, 3, 1), act(), conv(w, 2 * w, 4, 2), act(),
            conv(2 * w, 4 * w, 4, 2), act(), conv(4 * w, 4 * w, 3, 1), act(),
            conv(4 * w, 1, 3, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hf:
            x = torch.cat([x, self.hf * self.high_pass(x)], dim=1)
        return self.net(x).flatten(1)


def main() -> None:
    from tadsr.diffusion import Denoiser
    from tadsr.models import resolve_model
    from tadsr.train import distributed
    from tadsr.train.batches import latents
    from tadsr.train.config import resolve
    from tadsr.train.disc_probe import auc, laplacian_energy, probe_samples
    from tadsr.train.distill import DistillObjective

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--teacher", default="tadsr-small-teacher")
    ap.add_argument("--student", default="tadsr-small")
    ap.add_argument("--cache", default="outputs/disc_auc/teacher_cache.pt")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--probe", type=int, default=64)
    ap.add_argument("--only", help="comma list of variant names")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = resolve("distill", "small", [
        f"teacher={resolve_model(args.teacher)}", f"run.init_from={resolve_model(args.student)}",
        "teacher_cache=256", f"teacher_cache_file={args.cache}",
    ])  # fmt: skip
    Path(args.cache).parent.mkdir(parents=True, exist_ok=True)

    class _Log:
        def event(self, text: str) -> None:
            pass

    d = distributed.setup("cpu")
    obj = DistillObjective(cfg, d)
    obj.setup(d, _Log(), Path(args.cache).parent, lambda m: m)
    student, process = obj.model.eval().requires_grad_(False), obj.teacher.process
    decode = obj.teacher.codec.decode

    def images(hr, lq, eps):
        x0, y = latents(obj.teacher.codec, hr, lq, obj.teacher.scale)
        with torch.no_grad():
            x0_hat = Denoiser(student, process)(process.prior_sample(y, eps), process.last_t, lq)
        return decode(x0), decode(x0_hat)

    c = obj.cache.t
    real, fake = images(c["hr"], c["lq"], c["eps"])
    v_real, v_fake = images(*probe_samples(cfg, obj.degradation, obj.teacher.codec, args.probe))
    print(f"laplacian auc {auc(laplacian_energy(v_real), laplacian_energy(v_fake)):.3f}")
    chosen = args.only.split(",") if args.only else list(VARIANTS)
    for name in chosen:
        v = VARIANTS[name]
        torch.manual_seed(0)
        disc = PlainPatchD(v["sn"], v["hf"])
        opt = torch.optim.AdamW(disc.parameters(), lr=v["lr"], weight_decay=0.0)
        g, t0, res = torch.Generator().manual_seed(0), time.time(), {}
        for step in range(1, args.steps + 1):
            idx = torch.randint(0, len(real), (8,), generator=g)
            loss = F.relu(1 - disc(real[idx])).mean() + F.relu(1 + disc(fake[idx])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 100 == 0:
                disc.eval()
                with torch.no_grad():
                    res[step] = round(auc(disc(v_real).mean(1), disc(v_fake).mean(1)), 3)
                disc.train()
        print(f"{name} {res} {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
