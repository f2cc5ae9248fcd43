"""The autoregressive family's objectives, chosen by name from :data:`LOSSES`.

Every prior loss has one signature and returns per-example values (the model
reduces them to the replica's share of the global-batch mean)::

    loss(logits [b, n, K], codes [b, n] int32, images [b, H, W, C], tokenizer, config) -> [b]

``logits[:, i]`` is the prior's prediction of code i from the label and codes < i
(teacher forcing); ``codes`` are the tokenizer's codes of ``images``. The token terms
are means over the n positions (the scale of one token); only ``perceptual`` reads
``images`` and the frozen ``tokenizer``: it is marked ``needs_images``, and the
others are given ``images=None`` when the prior trains on codes cached once per fit.
"""
from __future__ import annotations

import tensorflow as tf

from models.losses import LossRegistry


def token_cross_entropy(logits, codes):
    """-log p(c_i | y, c_<i) averaged over the positions: [b] (nats per token)."""
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=codes, logits=logits)  # [b, n]
    return tf.reduce_mean(nll, axis=1)


# Cross-entropy: the next-token negative log-likelihood, the objective of GPT
# (Radford et al. 2018/2019) and of DALL-E's transformer (Ramesh et al. 2021, sec. 2.2,
# the image-token cross-entropy); maximum likelihood of the prior. The thesis's baseline.
def cross_entropy(logits, codes, images, tokenizer, config):
    """Mean over the n positions of -log softmax(logits_i)[c_i]: [b]."""
    return token_cross_entropy(logits, codes)


def brier(logits, codes):
    """sum_k (p_ik - [c_i = k])^2 averaged over the positions: [b]; p_i = softmax(logits_i)."""
    p = tf.nn.softmax(logits, axis=-1)  # [b, n, K]
    target = tf.one_hot(codes, tf.shape(logits)[-1], dtype=p.dtype)
    return tf.reduce_mean(tf.reduce_sum(tf.square(p - target), axis=-1), axis=1)


# MSE as the Brier score: Brier (1950), "Verification of forecasts expressed in terms of
# probability"; a strictly proper scoring rule (Gneiting & Raftery 2007, "Strictly
# Proper Scoring Rules, Prediction, and Estimation", sec. 3.2).
def mse(logits, codes, images, tokenizer, config):
    """The squared error between the predicted distribution and the one-hot target,
    sum_k (p_ik - [c_i = k])^2, averaged over the positions: [b], in [0, 2].

    Why this reading of "MSE" and not a regression on token ids: code ids are names,
    not quantities (code 17 is no nearer to code 18 than to code 90), so a squared
    error on ids would reward predicting the average of unrelated codes, and a single
    regressed number is not a distribution the sampler could draw from. The Brier
    score is the mean squared error of the *probabilities*; being strictly proper,
    its minimiser is the true conditional p(c_i | y, c_<i), so a prior trained with it
    is still a sampleable autoregressive model. Its gradient vanishes for confident
    wrong predictions (unlike cross-entropy's), which is what the comparison measures.
    """
    return brier(logits, codes)


def feature_distance(features_a, features_b):
    """sum_l mean_{h,w} || f_l(a) / |f_l(a)| - f_l(b) / |f_l(b)| ||^2 over the layers l:
    [b]. LPIPS's distance (Zhang et al. 2018, eq. 1) with unit channel weights
    (their untrained "baseline" weighting), on the given features [b, h_l, w_l, c_l]."""
    total = 0.0
    for a, b in zip(features_a, features_b, strict=True):
        a = a * tf.math.rsqrt(tf.reduce_sum(tf.square(a), axis=-1, keepdims=True) + 1e-10)
        b = b * tf.math.rsqrt(tf.reduce_sum(tf.square(b), axis=-1, keepdims=True) + 1e-10)
        total += tf.reduce_mean(tf.reduce_sum(tf.square(a - b), axis=-1), axis=[1, 2])
    return total


def soft_reconstruction(logits, tokenizer):
    """The frozen tokenizer's decoding of the expected code vectors: [b, H, W, C].

    E_p[e] = softmax(logits_i) @ codebook at every position (a differentiable stand-in
    for the sampled codes, as in soft-to-hard / Gumbel-free relaxations of VQ models),
    reshaped to the code grid and decoded.
    """
    p = tf.nn.softmax(logits, axis=-1)  # [b, n, K]
    expected = tf.einsum("bnk,kd->bnd", p, tf.stop_gradient(tokenizer.codebook_tensor()))
    h, w = tokenizer.grid
    return tokenizer.decode(tf.reshape(expected, [-1, h, w, expected.shape[-1]]))


# Perceptual: the next-token cross-entropy plus a perceptual distance between the
# image and the frozen decoder's rendering of the predicted code distribution, in the
# manner of the perceptual losses of Johnson et al. (2016) and of LPIPS (Zhang et al.
# 2018, eq. 1) as VQGAN uses it (Esser et al. 2021, eq. 4). The feature network is the
# frozen tokenizer's own encoder (its residual levels: trained on this dataset, part of
# the run, so the loss needs nothing outside the run folder; the suite's evaluator is
# kept for scoring, so a loss never optimises the metric network).
def perceptual(logits, codes, images, tokenizer, config):
    """CE + perceptual_weight x feature_distance(features(D(E_p[e])), features(x)): [b].

    The weight is ``config.perceptual_weight`` (1.0 by default: a distance of unit
    vectors, 0 to 4 per level, beside about log K nats of cross-entropy at the start).
    """
    soft = soft_reconstruction(logits, tokenizer)
    distance = feature_distance(tokenizer.features(soft),
                                [tf.stop_gradient(f) for f in tokenizer.features(images)])
    return token_cross_entropy(logits, codes) + config.perceptual_weight * distance


perceptual.needs_images = True


def needs_images(loss) -> bool:
    """Whether a prior loss reads the images (else it is given codes only)."""
    return bool(getattr(loss, "needs_images", False))


LOSSES = LossRegistry("autoregressive", {
    "cross_entropy": cross_entropy,
    "mse": mse,
    "perceptual": perceptual,
})


# ------------------------------------------------------------ the first stage
# The VQ-VAE objective (van den Oord et al. 2017, eq. 3) with the EMA codebook of their
# appendix A.1 (so no codebook term): log p(x | z_q) as a squared error, plus
# beta ||z_e - sg[e]||^2, the commitment term (beta = commitment_weight, 0.25).
def tokenizer_terms(x, x_hat, z_e, z_q, config) -> dict:
    """Per-example terms [b]: the objective ("loss"), the per-pixel squared error
    ("mse", the thesis's scale) and the per-element commitment error."""
    mse_ = tf.reduce_mean(tf.reshape(tf.square(x - x_hat), [tf.shape(x)[0], -1]), axis=1)
    commit = tf.reduce_mean(
        tf.reshape(tf.square(z_e - tf.stop_gradient(z_q)), [tf.shape(z_e)[0], -1]), axis=1)
    return {"loss": mse_ + config.commitment_weight * commit, "mse": mse_, "commitment": commit}
