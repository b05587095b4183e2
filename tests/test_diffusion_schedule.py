"""The residual-shifting process against SPEC check values and the official arrays."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from tadsr.diffusion import (
    SCHEDULE_PRESETS,
    Denoiser,
    Process,
    sample_ancestral,
    sample_deterministic,
    sample_one_step,
)

SR_CHECK = [
    0.02,
    0.11717,
    0.1763,
    0.23363,
    0.29157,
    0.35101,
    0.41236,
    0.47586,
    0.54167,
    0.60991,
    0.68066,
    0.75399,
    0.82995,
    0.90861,
    0.99,
]


def test_sr_schedule_check_values():
    p = Process(SCHEDULE_PRESETS["sr"])
    assert_close(p.sqrt_etas, torch.tensor(SR_CHECK, dtype=torch.float64), atol=6e-6, rtol=0)
    assert p.input_denominator[14].item() == pytest.approx(2.2182, abs=1e-4)


def test_face_schedule_both_forms():
    official = Process(SCHEDULE_PRESETS["face"]).sqrt_etas
    sinsr = Process(SCHEDULE_PRESETS["face_sinsr"]).sqrt_etas
    assert_close(
        official,
        torch.tensor([0.1, 0.52010, 0.76138, 0.99], dtype=torch.float64),
        atol=1e-5,
        rtol=0,
    )
    assert_close(
        sinsr,
        torch.tensor([0.03162, 0.37644, 0.66732, 0.99], dtype=torch.float64),
        atol=1e-5,
        rtol=0,
    )


ARRAYS = {
    "sqrt_etas": "sqrt_etas",
    "etas": "etas",
    "etas_prev": "etas_prev",
    "alpha": "alpha",
    "posterior_variance": "posterior_variance",
    "posterior_variance_clipped": "posterior_variance_clipped",
    "posterior_log_variance_clipped": "posterior_log_variance_clipped",
    "posterior_mean_coef1": "posterior_mean_coef1",
    "posterior_mean_coef2": "posterior_mean_coef2",
}


@pytest.mark.parametrize(
    "name,preset", [("schedule_sr", "sr"), ("schedule_face", "face"), ("schedule_sr_sinsr", "sr")]
)
def test_official_arrays(conformance_dir, name, preset):
    ref = load_file(conformance_dir / f"{name}.io.safetensors")
    p = Process(SCHEDULE_PRESETS[preset])
    for ours, theirs in ARRAYS.items():
        assert_close(getattr(p, ours), ref[theirs], atol=1e-12, rtol=1e-10, msg=ours)
    if "scale_input_factor_f32" in ref:
        assert_close(1 / p.input_denominator, ref["scale_input_factor_f32"], atol=2.5e-7, rtol=0)


def test_sinsr_face_formula(conformance_dir):
    ref = load_file(conformance_dir / "schedule_sr_sinsr.io.safetensors")
    ours = Process(SCHEDULE_PRESETS["face_sinsr"]).sqrt_etas
    assert_close(ours, ref["sinsr_formula_sqrt_etas_T4_min0.2"], atol=1e-12, rtol=0)


@pytest.mark.parametrize("name,preset", [("schedule_sr", "sr"), ("schedule_face", "face")])
def test_official_examples(conformance_dir, name, preset):
    r = load_file(conformance_dir / f"{name}.io.safetensors")
    p = Process(SCHEDULE_PRESETS[preset])
    t = r["ex_t"]
    xt = p.q_sample(r["ex_x0"], r["ex_y"], t, r["ex_noise"])
    assert_close(xt, r["ex_q_sample"], atol=1e-6, rtol=0)
    mean, var = p.q_mean_variance(r["ex_x0"], r["ex_y"], t)
    assert_close(mean, r["ex_q_mean"], atol=1e-6, rtol=0)
    assert_close(var.expand_as(mean), r["ex_q_variance"], atol=1e-6, rtol=0)
    assert_close(p.prior_sample(r["ex_y"], r["ex_noise"]), r["ex_prior_sample"], atol=1e-6, rtol=0)
    assert_close(p.scale_input(r["ex_q_sample"], t), r["ex_scale_input"], atol=1e-6, rtol=0)
    assert_close(
        p.posterior_mean(r["ex_x0"], r["ex_q_sample"], t),
        r["ex_q_posterior_mean"],
        atol=1e-6,
        rtol=0,
    )
    assert_close(
        p.eps_from_x0(r["ex_q_sample"], r["ex_y"], t, r["ex_pmv_model_output"]),
        r["ex_eps_from_xstart"],
        atol=1e-5,
        rtol=1e-5,
    )
    # p_mean_variance with a stand-in network returning a fixed output
    seen = {}

    def net(x, tt, lq):
        seen["x"], seen["t"] = x, tt
        return r["ex_pmv_model_output"]

    x0 = Denoiser(net, p)(r["ex_q_sample"], t, None)
    assert_close(seen["x"], r["ex_pmv_model_input_seen"], atol=1e-6, rtol=0)
    assert torch.equal(seen["t"], r["ex_pmv_t_seen"])
    assert_close(p.posterior_mean(x0, r["ex_q_sample"], t), r["ex_pmv_mean"], atol=1e-6, rtol=0)
    assert_close(
        p.posterior_log_variance(t, x0).expand_as(x0), r["ex_pmv_log_variance"], atol=1e-5, rtol=0
    )
    # one ancestral step at ex_ps_t
    ts = r["ex_ps_t"]
    x0 = r["ex_ps_pred_xstart"]
    mean = p.posterior_mean(x0, r["ex_q_sample"], ts)
    assert_close(mean, r["ex_ps_mean"], atol=1e-6, rtol=0)
    nonzero = (ts != 0).float().reshape(-1, 1, 1, 1)
    sample = mean + nonzero * torch.exp(0.5 * p.posterior_log_variance(ts, mean)) * r["ex_ps_noise"]
    assert_close(sample, r["ex_ps_sample"], atol=1e-6, rtol=0)


def test_sinsr_ddim_step(conformance_dir):
    r = load_file(conformance_dir / "schedule_sr_sinsr.io.safetensors")
    p = Process(SCHEDULE_PRESETS["sr"])
    t = r["ex_t"]
    assert_close(
        p.ddim_k[t].float().reshape(-1, 1, 1, 1).expand_as(r["ex_ddim_k"]),
        r["ex_ddim_k"],
        atol=1e-6,
        rtol=0,
    )
    out = p.ddim_step(r["ex_model_output"], r["ex_x_t"], r["ex_y"], t)
    assert_close(out, r["ex_ddim_sample"], atol=1e-5, rtol=0)
    assert_close(p.scale_input(r["ex_x_t"], t), r["ex_model_input_seen"], atol=1e-6, rtol=0)


class _Oracle(torch.nn.Module):
    """A network that knows x0: it must make every sampler return x0 exactly."""

    def __init__(self, x0):
        super().__init__()
        self.x0 = x0

    def forward(self, x, t, lq):
        return self.x0


def test_samplers_recover_x0_with_perfect_denoiser():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 3, 8, 8, generator=g)
    y = torch.randn(2, 3, 8, 8, generator=g)
    p = Process(SCHEDULE_PRESETS["sr"])
    net = _Oracle(x0)
    net = Denoiser(net, p)
    assert_close(sample_one_step(net, y, None, generator=g), x0)
    assert_close(sample_deterministic(net, y, None, generator=g), x0, atol=1e-5, rtol=0)
    assert_close(sample_ancestral(net, y, None, generator=g), x0, atol=1e-5, rtol=0)


def test_deterministic_sampler_keeps_marginals():
    """With an oracle for x0, the deterministic chain's x_t matches q's marginal noise level."""
    p = Process(SCHEDULE_PRESETS["sr"])
    x0 = torch.zeros(1, 1, 64, 64)
    y = torch.ones(1, 1, 64, 64)
    x = p.prior_sample(y, torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(1)))
    for t in range(p.last_t, 0, -1):
        tt = torch.tensor([t])
        x = p.ddim_step(x0, x, y, tt)
        # mean eta_{t-1}, std kappa sqrt(eta_{t-1})
        assert x.mean().item() == pytest.approx(p.etas[t - 1].item(), abs=0.1)
        assert x.std().item() == pytest.approx(2 * p.sqrt_etas[t - 1].item(), rel=0.1)


def test_respacing_keeps_endpoints():
    p = Process(SCHEDULE_PRESETS["sr"])
    q = p.respaced(5)
    keep = q.net_timesteps
    assert keep[-1] == 14 and keep[0] == 0 and q.num_steps == 5
    assert_close(q.sqrt_etas, p.sqrt_etas[keep])
    with pytest.raises(ValueError):
        p.respaced(16)
