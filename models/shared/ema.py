"""The generator's exponential moving average (Karras et al. 2018, ProGAN sec. 5 / StyleGAN2-ADA's
``ema_kimg`` and ``ema_rampup``), shared by every GAN of the suite."""
from __future__ import annotations

import tensorflow as tf


def ema_beta(step_counter, batch: int, ema_kimg: float, ema_rampup: float):
    """beta = 0.5 ** (batch / ema_nimg), ema_nimg = min(ema_kimg * 1000, rampup * images seen)."""
    batch = float(batch)
    ema_nimg = tf.constant(ema_kimg * 1000.0)
    if ema_rampup > 0:
        seen = tf.cast(step_counter + 1, tf.float32) * batch
        ema_nimg = tf.minimum(ema_nimg, seen * ema_rampup)
    return tf.pow(0.5, batch / tf.maximum(ema_nimg, 1e-8))


def update_ema(ema_weights, weights, beta):
    """ema <- w + beta * (ema - w) for every pair of weights."""
    beta = tf.cast(beta, tf.float32)
    for ema, weight in zip(ema_weights, weights):
        w = tf.convert_to_tensor(weight)
        ema.assign(w + beta * (tf.convert_to_tensor(ema) - w))
