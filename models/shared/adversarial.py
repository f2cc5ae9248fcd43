"""The non-saturating adversarial objective's per-example terms, shared by both GANs.

Goodfellow et al. (2014), "Generative Adversarial Nets", eq. 1 and sec. 3 (G maximises
log D(G(z))); thesis eqs. 2.7-2.8 with D = sigmoid(logit):
L_D = -log D(x) - log(1 - D(G(z))) = softplus(-l_real) + softplus(l_fake),
L_G = -log D(G(z)) = softplus(-l_fake).
The GAN family's ``ns`` objective and the face GAN's ``fixed`` mode are built from them.
"""
from __future__ import annotations

import tensorflow as tf


def softplus_neg(d):
    """softplus(-d) = -log sigmoid(d): [b]."""
    return tf.nn.softplus(-d)


def non_saturating_real(l_real):
    """D's term on real images' logits: softplus(-l_real) [b]."""
    return softplus_neg(l_real)


def non_saturating_fake(l_fake):
    """D's term on generated images' logits: softplus(l_fake) [b]."""
    return tf.nn.softplus(l_fake)


def non_saturating_generator(l_fake):
    """G's term: softplus(-l_fake) [b]."""
    return softplus_neg(l_fake)
