"""The discriminator's gradient regularisers' pieces, shared by both GANs.

Each is differentiable (recorded by any outer tape), so a penalty built from them
can itself be minimised: the GAN family's WGAN-GP gradient penalty
(``models.gan.losses.gradient_penalty``) and R1, used by the GAN and face-GAN families.
"""
from __future__ import annotations

import tensorflow as tf

from models.shared.precision import to_float32


def input_gradients(critic, x):
    """d critic(x) / dx for each example: [b, H, W, C] (recorded by any outer tape,
    so the penalties built on it can themselves be differentiated)."""
    # Watch x only: the critic's weight gradients are not needed here.
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        total = tf.reduce_sum(to_float32(critic(x)))  # (a half-precision critic's output)
    return tape.gradient(total, x)


def squared_norm(g):
    """||g_i||^2 per example: [b]."""
    return tf.reduce_sum(tf.square(g), axis=list(range(1, len(g.shape))))


# R1: Mescheder, Geiger & Nowozin (2018), "Which Training Methods for GANs do
# actually Converge?", eq. 9: R1 = gamma / 2 * E_{p_D}[||grad_x D(x)||^2], on real
# data only. StyleGAN2 applies it lazily (sec. 3.1), see the GAN family's model.
def r1_penalty(critic, real, gamma):
    """gamma / 2 * ||grad_x D(x)||^2 per example: [b]."""
    return 0.5 * gamma * squared_norm(input_gradients(critic, real))
