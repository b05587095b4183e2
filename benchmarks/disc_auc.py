"""Does a discriminator learn to tell HR from a fixed student? Train it alone and watch its
held-out AUC per t_d against the fixed Laplacian-energy detector.

The student and the teacher stay frozen; only the discriminator of the distillation config
(`--set disc_kind=pixel`, `disc_t_max`, `disc_lr`, `disc_noise`, ...) is updated, on the
run's training crops, for `--steps` updates of batch `run.batch_size`. Every `--every`
updates it prints one JSON line: the step, the hinge loss, `auc_t{k}`, `auc_best` and
`auc_laplacian` on `--probe` held-out crops (`tadsr.train.disc_probe`), and on one training
batch the generator's gradient on the student's output: `g_over_reg`, the norm of the
gradient of L_G over that of L_reg (teacher target), and `g_cos_hr`, the cosine of -grad L_G
with (x0_gt - x0_hat): positive when the adversarial step moves the output towards HR.

    python benchmarks/disc_auc.py --teacher tadsr-small-teacher --student tadsr-small \
        --set disc_kind=pixel --set disc_t_max=3 --steps 300
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


class _Log:
    def event(self, text: str) -> None:
        print(text, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from tadsr.diffusion import Denoiser
    from tadsr.models import resolve_model
    from tadsr.train import distributed
    from tadsr.train.config import resolve
    from tadsr.train.disc_probe import probe_discriminator
    from tadsr.train.distill import DistillObjective
    from tadsr.train.optim import disc_adamw

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="tadsr-small-teacher")
    ap.add_argument("--student", default="tadsr-small")
    ap.add_argument("--config", default="small")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--probe", type=int, default=64)
    ap.add_argument(
        "--cache",
        default="outputs/disc_auc/teacher_cache.pt",
        help="teacher-target cache shared between runs (same teacher and data)",
    )
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = [
        f"teacher={resolve_model(args.teacher)}",
        f"run.init_from={resolve_model(args.student)}",
        "teacher_cache=256",
        f"teacher_cache_file={args.cache}",
        *args.sets,
    ]
    cfg = resolve("distill", args.config, sets)
    Path(args.cache).parent.mkdir(parents=True, exist_ok=True)
    d = distributed.setup("cpu")
    torch.manual_seed(cfg.run.seed)
    obj = DistillObjective(cfg, d)
    disc_opt = disc_adamw(obj.disc.parameters(), obj.disc_lr)
    obj.setup(d, _Log(), Path(args.cache).parent, lambda m: m)
    student = obj.model.eval().requires_grad_(False)
    process = obj.teacher.process
    t0 = time.time()
    for step in range(args.steps + 1):
        if step % args.every == 0:
            row = {"step": step, **probe_discriminator(obj, student, args.probe)}
            row.update(_gradients(obj, student, next(iter(obj.batches(0, d)))))
            row["seconds"] = round(time.time() - t0, 1)
            print(
                json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
                flush=True,
            )
        if step == args.steps:
            break
        for hr, lq, eps, _zt, g in obj.batches(step, d):
            from tadsr.train.batches import latents

            x0_gt, y = latents(obj.teacher.codec, hr, lq, obj.teacher.scale)
            with torch.no_grad():
                x0_hat = Denoiser(student, process)(
                    process.prior_sample(y, eps), process.last_t, lq
                )
            for _ in range(cfg.disc_steps):
                t_d, n_d = obj.disc_draw(y, g)
                obj.disc_update(disc_opt, x0_gt, x0_hat, y, lq, t_d, n_d)
    return 0


def _gradients(obj, student, batch) -> dict[str, float]:
    from tadsr.diffusion import Denoiser
    from tadsr.losses import g_hinge_loss, regression_loss
    from tadsr.train.batches import latents

    hr, lq, eps, zt, _ = batch
    process = obj.teacher.process
    x0_gt, y = latents(obj.teacher.codec, hr, lq, obj.teacher.scale)
    with torch.no_grad():
        x0 = Denoiser(student, process)(process.prior_sample(y, eps), process.last_t, lq)
    x0 = x0.clone().requires_grad_(True)
    g_reg = torch.autograd.grad(regression_loss(x0, zt), x0)[0]
    g = torch.Generator().manual_seed(0)
    t_d, n_d = obj.disc_draw(y, g)
    feats = obj.disc_inputs(process.q_sample(x0, y, t_d, n_d), t_d, lq)
    g_gan = torch.autograd.grad(g_hinge_loss(obj.disc(feats, t_d)), x0)[0]
    cos = torch.nn.functional.cosine_similarity(
        -g_gan.flatten(), (x0_gt - x0).detach().flatten(), 0
    )
    return {"g_over_reg": float(g_gan.norm() / g_reg.norm()), "g_cos_hr": float(cos)}


if __name__ == "__main__":
    raise SystemExit(main())
