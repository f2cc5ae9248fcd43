"""The diffusion family's objectives, chosen by name from :data:`LOSSES`.

Every denoiser loss has one signature and returns per-example values (the model
reduces them to the replica's share of the global-batch mean)::

    loss(eps [b, ...], eps_hat [b, ...], config) -> [b]

Each is a mean over the elements of the noise, so the three are on the scale of
one latent (or pixel) element, like the thesis's per-pixel numbers.
"""
from __future__ import annotations

import tensorflow as tf

from models.losses import LossRegistry
from models.shared.distributions import gaussian_kl


def _mean_over_elements(values):
    """[b, ...] -> [b]."""
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


# MSE: Ho, Jain & Abbeel (2020), "Denoising Diffusion Probabilistic Models",
# eq. 14 (L_simple): || eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t) ||^2,
# the objective of latent diffusion (Rombach et al. 2022, eq. 2) and the thesis's baseline.
def mse(eps, eps_hat, config):
    return _mean_over_elements(tf.square(eps - eps_hat))


# MAE: the L1 version of L_simple, | eps - eps_theta |, as WaveGrad trains with it
# (Chen et al. 2021, "WaveGrad", sec. 3) and Palette compares it with L2 (Saharia
# et al. 2022, "Palette: Image-to-Image Diffusion Models"); the thesis's Table 3.2 "MAE" row.
def mae(eps, eps_hat, config):
    return _mean_over_elements(tf.abs(eps - eps_hat))


# Huber: Huber (1964), "Robust Estimation of a Location Parameter": quadratic
# 0.5 r^2 for |r| <= delta, linear delta (|r| - 0.5 delta) beyond, on the noise
# residual r = eps - eps_hat (the "smooth L1" loss, delta = config.huber_delta,
# 1.0 by default: eps has unit variance, so about 68% of residuals of a useless
# model fall in the quadratic zone and a good model's residuals almost all do).
def huber(eps, eps_hat, config):
    residual = tf.abs(eps - eps_hat)
    delta = tf.constant(config.huber_delta, residual.dtype)
    quadratic = 0.5 * tf.square(residual)
    linear = delta * (residual - 0.5 * delta)
    return _mean_over_elements(tf.where(residual <= delta, quadratic, linear))


LOSSES = LossRegistry("diffusion", {
    "mse": mse,
    "mae": mae,
    "huber": huber,
})


# ------------------------------------------------------------ the first stage
# The autoencoder of latent diffusion: Rombach et al. (2022), sec. 3.1 and
# appendix G: a pixel reconstruction term plus a KL-regularisation of the latent
# towards N(0, I) with a tiny weight (1e-6), both summed over elements per
# example. Their perceptual (LPIPS) and patch-GAN terms are left out here: a
# CPU-sized first stage, and no pretrained perceptual network offline.
def autoencoder_terms(x, x_hat, mean, log_var, config) -> dict:
    """Per-example terms [b]: the objective ("loss"), its parts, and the per-pixel
    mean squared error (the thesis's scale)."""
    error = tf.reshape(x - x_hat, [tf.shape(x)[0], -1])
    recon = tf.reduce_sum(tf.abs(error), axis=1)  # L1, as the LDM autoencoder's pixel term
    kl = gaussian_kl(mean, log_var)
    return {"loss": recon + config.ae_kl_weight * kl, "recon": recon, "kl": kl,
            "mse": tf.reduce_mean(tf.square(error), axis=1)}
