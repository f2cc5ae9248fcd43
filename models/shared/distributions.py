"""Closed forms of the Gaussian terms the families' objectives share."""
from __future__ import annotations

import tensorflow as tf


def gaussian_kl(mean, log_var):
    """KL(N(mean, diag(exp(log_var))) || N(0, I)) per example, summed over all of an
    example's elements: [b] for inputs [b, ...].

    Closed form of Kingma & Welling (2014), appendix B (thesis eq. 2.5):
    0.5 * sum_j (sigma_j^2 + mean_j^2 - 1 - log sigma_j^2).
    """
    kl = 0.5 * (tf.exp(log_var) + tf.square(mean) - 1.0 - log_var)
    return tf.reduce_sum(tf.reshape(kl, [tf.shape(kl)[0], -1]), axis=1)
