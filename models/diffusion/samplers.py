"""Reverse-process samplers: DDPM ancestral and DDIM, and classifier-free guidance.

Each sampler takes ``eps_fn(x_t, t) -> eps_hat`` (t: int32 [b], every entry the
same step) and ``noise_fn(i) -> N(0, I)`` of x's shape for its i-th random draw,
so it is deterministic given its inputs and knows nothing about the network.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from models.diffusion.schedules import Schedule


def guided_eps(eps_cond, eps_uncond, scale):
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6, with w = scale - 1):
    eps_uncond + scale * (eps_cond - eps_uncond). scale 1 is the conditional model,
    0 the unconditional one."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


def _step_tensor(x, t):
    return tf.fill([tf.shape(x)[0]], tf.constant(int(t), tf.int32))


def _clip(x0, clip):
    return x0 if clip is None else tf.clip_by_value(x0, -clip, clip)


def ddpm_sample(eps_fn, schedule: Schedule, x_T, noise_fn, clip_x0=None):
    """Ancestral sampling (Ho et al. 2020, Algorithm 2), t = T-1 .. 0:
    x_{t-1} = posterior mean of q(x_{t-1} | x_t, x0_hat) + sqrt(beta-tilde_t) z,
    with x0_hat from eps_hat (optionally clipped) and no noise at the last step."""
    x = x_T
    for i, t in enumerate(reversed(range(schedule.timesteps))):
        eps = eps_fn(x, _step_tensor(x, t))
        x0 = _clip(schedule.predict_x0(x, _step_tensor(x, t), eps), clip_x0)
        ab, ab_prev = schedule.alpha_bar[t], schedule.alpha_bar_prev[t]
        # DDPM eq. 7: mu-tilde = c0 * x0 + ct * x_t
        c0 = np.sqrt(ab_prev) * schedule.betas[t] / (1.0 - ab)
        ct = np.sqrt(schedule.alphas[t]) * (1.0 - ab_prev) / (1.0 - ab)
        x = float(c0) * x0 + float(ct) * x
        if t > 0:
            x = x + float(np.sqrt(schedule.posterior_variance[t])) * noise_fn(i)
    return x


def ddim_timesteps(timesteps: int, steps: int) -> list:
    """The DDIM sub-sequence tau, decreasing and evenly spaced from T-1 (where sampling
    starts, at pure noise) down to 0; one step is the jump from T-1 straight to x_0."""
    return sorted({int(round(v)) for v in np.linspace(timesteps - 1, 0, steps)}, reverse=True)


def ddim_sample(eps_fn, schedule: Schedule, x_T, noise_fn, steps: int, eta: float = 0.0,
                clip_x0=None):
    """DDIM (Song, Meng & Ermon 2021, eq. 12) over ``steps`` timesteps:
    x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps_hat + sigma z,
    sigma = eta sqrt((1 - ab_prev) / (1 - ab)) sqrt(1 - ab / ab_prev); eta = 0 is
    deterministic, eta = 1 matches DDPM's variance. ab_prev = 1 after the last step."""
    taus = ddim_timesteps(schedule.timesteps, steps)
    x = x_T
    for i, t in enumerate(taus):
        t_vec = _step_tensor(x, t)
        eps = eps_fn(x, t_vec)
        x0 = schedule.predict_x0(x, t_vec, eps)
        if clip_x0 is not None:
            x0 = _clip(x0, clip_x0)
            eps = (x - float(np.sqrt(schedule.alpha_bar[t])) * x0) / float(
                np.sqrt(1.0 - schedule.alpha_bar[t]))
        ab = schedule.alpha_bar[t]
        ab_prev = schedule.alpha_bar[taus[i + 1]] if i + 1 < len(taus) else 1.0
        sigma = eta * np.sqrt((1.0 - ab_prev) / (1.0 - ab)) * np.sqrt(1.0 - ab / ab_prev)
        x = float(np.sqrt(ab_prev)) * x0 + float(np.sqrt(max(1.0 - ab_prev - sigma ** 2, 0.0))) * eps
        if sigma > 0:
            x = x + float(sigma) * noise_fn(i)
    return x
