"""The face GAN's objectives, one per mode, chosen by name from :data:`LOSSES`.

One signature: ``loss(l_real [b], l_fake [b], n_real [b], n_fake [b]) -> {"d_loss",
"d_real_loss", "d_fake_loss", "g_loss"}``, per example, on the discriminator's logits for
real and generated images; ``n_*`` are the label noise of the discriminator's targets
(``label_noise * U[0, 1)``, zero when the mode has none). The generator's term is also
available alone as ``loss.generator(l_fake)``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import tensorflow as tf

from models.losses import LossRegistry
from models.shared.adversarial import (non_saturating_fake, non_saturating_generator,
                                       non_saturating_real)


@dataclasses.dataclass(frozen=True)
class FaceLoss:
    """D's per-example terms ``discriminator(l_real, l_fake, n_real, n_fake) -> (real, fake)``
    (d_loss = their mean or sum, as ``combine``) and G's ``generator(l_fake)``."""
    discriminator: Callable
    generator: Callable
    combine: Callable

    def __call__(self, l_real, l_fake, n_real, n_fake) -> dict:
        real, fake = self.discriminator(l_real, l_fake, n_real, n_fake)
        return {"d_loss": self.combine(real, fake), "d_real_loss": real, "d_fake_loss": fake,
                "g_loss": self.generator(l_fake)}


def bce(targets, logits):
    """Keras' binary cross-entropy of a sigmoid output, computed from its logit (as Keras
    does): -(y log s(l) + (1 - y) log(1 - s(l))). For targets above 1 (the listing's noisy
    'generated' labels) it is unbounded below: D is paid for ever larger fake logits."""
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)


# The listing (appendix 4): D is trained on [generated; real] with labels 1 (generated) and
# 0 (real) plus 0.05 * U[0, 1), mean binary cross-entropy over the 2b images; the combined
# model trains G towards label 0 (= "real" in this coding): -log(1 - D(G(z))) = softplus(l),
# which is Goodfellow et al.'s (2014) non-saturating loss with the labels swapped.
def _listing_discriminator(l_real, l_fake, n_real, n_fake):
    return bce(0.0 + n_real, l_real), bce(1.0 + n_fake, l_fake)


def _listing_generator(l_fake):
    return bce(tf.zeros_like(l_fake), l_fake)


def _mean_of_two(real, fake):  # the mean over the concatenated batch of 2b images
    return 0.5 * (real + fake)


LISTING_BCE = FaceLoss(discriminator=_listing_discriminator, generator=_listing_generator,
                       combine=_mean_of_two)


# Non-saturating (Goodfellow et al. 2014, sec. 3; the GAN family's ``ns``, from the same
# shared terms): L_D = softplus(-l_real) + softplus(l_fake), L_G = softplus(-l_fake); no
# label noise.
def _ns_discriminator(l_real, l_fake, n_real, n_fake):
    return non_saturating_real(l_real), non_saturating_fake(l_fake)


def _sum_of_two(real, fake):
    return real + fake


NS = FaceLoss(discriminator=_ns_discriminator, generator=non_saturating_generator,
              combine=_sum_of_two)

LOSSES = LossRegistry("faces", {"faithful": LISTING_BCE, "fixed": NS}, noun="face GAN mode")
