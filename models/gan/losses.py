"""The GAN family's adversarial objectives, chosen by name from :data:`LOSSES`,
and WGAN-GP's gradient penalty (R1 and the gradient pieces are shared with the face
GAN: ``models.shared.regularizers``).

Every objective has one signature::

    loss(d_real [b], d_fake [b]) -> {"d_loss", "d_real_loss", "d_fake_loss", "g_loss"}: [b] each

on the discriminator's raw outputs (logits / critic values) for real and
generated images. Each is a :class:`GANLoss`: the discriminator minimises
``real(d_real) + fake(d_fake)`` (plus the objective's own ``penalty``, if it has
one), the generator minimises ``generator(d_fake)``. The training step reduces
the per-example values with ``model.replica_mean``. The thesis's "training loss"
is ``g_loss`` and its "validation loss" ``d_loss``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import tensorflow as tf

from models.losses import LossRegistry
from models.shared.adversarial import (non_saturating_fake, non_saturating_generator,
                                       non_saturating_real)
from models.shared.regularizers import input_gradients, squared_norm


@dataclasses.dataclass(frozen=True)
class GANLoss:
    """One adversarial objective: per-example terms of D's and G's losses.

    real: d_real [b] -> [b], fake: d_fake [b] -> [b], generator: d_fake [b] -> [b].
    penalty: ``(critic, real, fake, eps, config) -> [b]``, a regulariser that is
        part of the objective's definition (WGAN-GP's gradient penalty), or None.
    d_steps: discriminator steps per generator step in the paper that defines the
        objective (``GANConfig.d_steps`` overrides it).
    """
    real: Callable
    fake: Callable
    generator: Callable
    penalty: Optional[Callable] = None
    d_steps: int = 1

    def __call__(self, d_real, d_fake) -> dict:
        d_real_loss, d_fake_loss = self.real(d_real), self.fake(d_fake)
        return {"d_loss": d_real_loss + d_fake_loss, "d_real_loss": d_real_loss,
                "d_fake_loss": d_fake_loss, "g_loss": self.generator(d_fake)}


# ------------------------------------------------------------------ gradient penalty
# Gradient penalty: Gulrajani et al. (2017), "Improved Training of Wasserstein
# GANs", eq. 3 / Algorithm 1: lambda * (||grad_x D(x_hat)||_2 - 1)^2 at
# x_hat = eps * x_real + (1 - eps) * x_fake, eps ~ U[0, 1] per example; lambda = 10.
def gradient_penalty(critic, real, fake, eps, weight=10.0):
    """[b]; eps [b] in [0, 1]."""
    eps = tf.reshape(eps, [-1] + [1] * (len(real.shape) - 1))
    x_hat = eps * real + (1.0 - eps) * fake
    norm = tf.sqrt(squared_norm(input_gradients(critic, x_hat)) + 1e-12)
    return weight * tf.square(norm - 1.0)


def wgan_gradient_penalty(critic, real, fake, eps, config):
    return gradient_penalty(critic, real, fake, eps, config.gp_weight)


# -------------------------------------------------------------------- objectives
# Wasserstein: Arjovsky et al. (2017), "Wasserstein GAN", sec. 3, with Gulrajani et al.'s (2017)
# gradient penalty (eq. 3): L_D = D(G(z)) - D(x) + lambda * GP, L_G = -D(G(z)).
# The thesis's baseline "Wasserstein loss with regularisation". Gulrajani et al.'s
# Algorithm 1 takes n_critic = 5 critic steps (each on a fresh real batch and fresh
# noise) per generator step.
def _negate(d):
    return -d


def _identity(d):
    return d


WASSERSTEIN_GP = GANLoss(real=_negate, fake=_identity, generator=_negate,
                         penalty=wgan_gradient_penalty, d_steps=5)


# Hinge: Lim & Ye (2017), "Geometric GAN", sec. 3 (the SVM margin loss);
# Miyato et al. (2018), "Spectral Normalization for GANs", sec. 4 (hinge objective):
# L_D = max(0, 1 - D(x)) + max(0, 1 + D(G(z))), L_G = -D(G(z)).
def _hinge_real(d):
    return tf.nn.relu(1.0 - d)


def _hinge_fake(d):
    return tf.nn.relu(1.0 + d)


HINGE = GANLoss(real=_hinge_real, fake=_hinge_fake, generator=_negate)


# LSGAN: Mao et al. (2017), "Least Squares Generative Adversarial Networks",
# eq. 2 with the 0-1 coding a = 0, b = c = 1 (sec. 3.2.2):
# L_D = 1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2, L_G = 1/2 (D(G(z)) - 1)^2.
def _half_squared_error_to_one(d):
    return 0.5 * tf.square(d - 1.0)


def _half_squared(d):
    return 0.5 * tf.square(d)


LSGAN = GANLoss(real=_half_squared_error_to_one, fake=_half_squared,
                generator=_half_squared_error_to_one)


# Non-saturating: Goodfellow et al. (2014), eq. 1 and sec. 3; its terms are shared with
# the face GAN (``models.shared.adversarial``).
NON_SATURATING = GANLoss(real=non_saturating_real, fake=non_saturating_fake,
                         generator=non_saturating_generator)


LOSSES = LossRegistry("gan", {
    "wasserstein_gp": WASSERSTEIN_GP,
    "hinge": HINGE,
    "lsgan": LSGAN,
    "ns": NON_SATURATING,
})
