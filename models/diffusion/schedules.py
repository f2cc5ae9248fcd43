"""The forward (noising) process of DDPM: beta schedules and their closed forms.

Thesis eq. 2.12 / Ho et al. (2020), eq. 4: with alpha_t = 1 - beta_t and
alpha_bar_t = prod_{s <= t} alpha_s,

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),

so x_t = signal_rate(t) * x_0 + noise_rate(t) * eps with eps ~ N(0, I). Timesteps
are indexed 0 .. T-1 (t = 0 is the first noising step). Tables are computed in
float64 with numpy, then used as float32 constants.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf


def linear_betas(timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
    """DDPM's linear schedule (Ho et al. 2020, sec. 4: 1e-4 to 0.02 over T = 1000): [T]."""
    return np.linspace(beta_start, beta_end, timesteps, dtype=np.float64)


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal (2021), eq. 17: alpha_bar(t) = f(t) / f(0),
    f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2); beta_t = 1 - alpha_bar_t / alpha_bar_{t-1},
    clipped at 0.999 to avoid the singularity at t = T: [T]."""
    steps = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return np.minimum(1.0 - f[1:] / f[:-1], max_beta)


class Schedule:
    """The tables of one noise schedule and the per-step formulas that use them.

    betas, alphas, alpha_bar, alpha_bar_prev (alpha_bar_{t-1}, 1 at t = 0),
    posterior_variance (beta-tilde of DDPM eq. 7): float64 numpy [T].
    """

    def __init__(self, betas: np.ndarray):
        self.betas = np.asarray(betas, np.float64)
        self.timesteps = len(self.betas)
        self.alphas = 1.0 - self.betas
        self.alpha_bar = np.cumprod(self.alphas)
        self.alpha_bar_prev = np.concatenate([[1.0], self.alpha_bar[:-1]])
        self.posterior_variance = self.betas * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar)
        self._alpha_bar_tf = tf.constant(self.alpha_bar, tf.float32)

    @classmethod
    def from_config(cls, config) -> "Schedule":
        if config.schedule == "cosine":
            return cls(cosine_betas(config.timesteps))
        return cls(linear_betas(config.timesteps, config.beta_start, config.beta_end))

    def _gather(self, t, ndim):
        """alpha_bar_t for int t [b], shaped [b, 1, ..., 1] to broadcast over x."""
        ab = tf.gather(self._alpha_bar_tf, t)
        return tf.reshape(ab, [-1] + [1] * (ndim - 1))

    def signal_rate(self, t, ndim=4):
        """sqrt(alpha_bar_t): [b, 1, 1, 1]."""
        return tf.sqrt(self._gather(t, ndim))

    def noise_rate(self, t, ndim=4):
        """sqrt(1 - alpha_bar_t): [b, 1, 1, 1]."""
        return tf.sqrt(1.0 - self._gather(t, ndim))

    def q_sample(self, x0, t, eps):
        """x_t ~ q(x_t | x_0) in closed form (eq. 2.12): [b, ...]."""
        ndim = len(x0.shape)
        return self.signal_rate(t, ndim) * x0 + self.noise_rate(t, ndim) * eps

    def predict_x0(self, x_t, t, eps):
        """x_0 implied by x_t and a noise estimate: (x_t - sqrt(1 - ab) eps) / sqrt(ab)."""
        ndim = len(x_t.shape)
        return (x_t - self.noise_rate(t, ndim) * eps) / self.signal_rate(t, ndim)
