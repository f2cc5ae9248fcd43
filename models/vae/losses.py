"""The VAE family's objectives, chosen by name from :data:`LOSSES`.

Every loss has one signature::

    loss(out: VAEOutput, model, config) -> dict[str, scalar]

``out`` holds the replica's slice of the batch; ``model`` supplies the
distribution-aware reductions (``replica_mean`` for per-example terms,
``gather``/``replica_share`` for statistics of the whole global batch such as
MMD). The dict's ``"loss"`` is what is minimised; the other entries are its terms,
logged as they are. Reconstruction is the per-example *sum* of squared errors
over pixels in [-1, 1] (a Gaussian decoder with fixed variance 1/2, constants
dropped); ``mse`` is the per-pixel mean, the scale of the thesis's numbers.
"""
from __future__ import annotations

import dataclasses
import typing

import tensorflow as tf

from models.losses import LossRegistry
from models.shared.distributions import gaussian_kl


@dataclasses.dataclass
class BatchLatents:
    """The latents of the whole global batch, as constants: what a micro-batch's step
    (gradient accumulation, or a compiled step) computes a batch-spanning term on.
    z, z_prior [B, z_dim] (every micro-batch of every replica, in global-batch order);
    parts: the micro-batches per replica (k)."""
    z: tf.Tensor
    z_prior: tf.Tensor
    parts: int


@dataclasses.dataclass
class VAEOutput:
    """One forward pass. Shapes: x, x_hat [b, H, W, C]; mu, log_var, z [b, z_dim].

    batch / rows: with accumulation (or XLA), the whole batch's latents and the global
    rows [b] of this pass's examples in them (``global_mmd``); None otherwise."""
    x: tf.Tensor
    x_hat: tf.Tensor
    mu: tf.Tensor
    log_var: tf.Tensor
    z: tf.Tensor
    z_prior: tf.Tensor  # samples of the prior p(z), [b, z_dim]
    batch: typing.Optional[BatchLatents] = None
    rows: typing.Optional[tf.Tensor] = None


# ----------------------------------------------------------------- terms
def squared_error(x, x_hat):
    """sum_pixels (x - x_hat)^2 per example: [b]."""
    return tf.reduce_sum(tf.square(x - x_hat), axis=[1, 2, 3])


def mean_squared_error(x, x_hat):
    """Per-pixel mean squared error per example (thesis eq. 1.13): [b]."""
    return tf.reduce_mean(tf.square(x - x_hat), axis=[1, 2, 3])


def squared_distances(a, b):
    """||a_i - b_j||^2 for all pairs: [n, m]."""
    a2 = tf.reduce_sum(tf.square(a), axis=1, keepdims=True)
    b2 = tf.reduce_sum(tf.square(b), axis=1, keepdims=True)
    return tf.maximum(a2 - 2.0 * tf.matmul(a, b, transpose_b=True) + tf.transpose(b2), 0.0)


def gaussian_kernel(d2, dim, scale):
    """RBF kernel exp(-||a-b||^2 / (2 dim sigma^2)) as in InfoVAE's MMD."""
    return tf.exp(-d2 / (2.0 * dim * scale ** 2))


def imq_kernel(d2, dim, scale):
    """Inverse multiquadratic kernel sum_s C_s / (C_s + ||a-b||^2), C = 2 dim sigma^2.

    Tolstikhin et al. (2018), section 4: C = 2 d sigma_z^2, summed over the
    scales their experiments use so that no single bandwidth has to be right.
    """
    c = 2.0 * dim * scale ** 2
    return tf.add_n([s * c / (s * c + d2) for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)])


def mmd(a, b, kernel, scale=1.0, unbiased=True):
    """Squared maximum mean discrepancy between samples a [n, d] and b [m, d].

    Gretton et al. (2012), eq. 3 (unbiased, the U-statistic used by WAE and
    InfoVAE) or eq. 5 (biased V-statistic, exactly 0 for identical samples).
    """
    dim = tf.cast(tf.shape(a)[1], a.dtype)
    k_aa = kernel(squared_distances(a, a), dim, scale)
    k_bb = kernel(squared_distances(b, b), dim, scale)
    k_ab = kernel(squared_distances(a, b), dim, scale)
    if not unbiased:
        return tf.reduce_mean(k_aa) + tf.reduce_mean(k_bb) - 2.0 * tf.reduce_mean(k_ab)
    n = tf.cast(tf.shape(a)[0], a.dtype)
    m = tf.cast(tf.shape(b)[0], a.dtype)
    off_aa = (tf.reduce_sum(k_aa) - tf.linalg.trace(k_aa)) / (n * (n - 1.0))
    off_bb = (tf.reduce_sum(k_bb) - tf.linalg.trace(k_bb)) / (m * (m - 1.0))
    return off_aa + off_bb - 2.0 * tf.reduce_mean(k_ab)


def global_mmd(out: VAEOutput, model, kernel, scale):
    """MMD between q(z) and p(z) on the whole global batch, as this replica's share.

    The samples are all-gathered so N replicas estimate the same statistic as one
    device; each replica contributes 1/N of it (the gradients are summed).

    With the whole batch's latents given (``out.batch``: gradient accumulation or a
    compiled step, ``models.vae.model``), the MMD is computed on them with this pass's
    rows replaced by its live latents: its value is the whole batch's MMD, its gradient
    the whole batch's MMD's gradient through this pass's latents alone. The term
    returned has the value share / k (the k micro-batches of N replicas sum to the MMD
    once) and that gradient in full (their gradients sum to the whole batch's): exact,
    not an estimator over smaller groups.
    """
    if out.batch is None:
        return model.replica_share(mmd(model.gather(out.z), model.gather(out.z_prior),
                                       kernel, scale))
    z = tf.tensor_scatter_nd_update(tf.stop_gradient(out.batch.z), out.rows[:, None], out.z)
    value = mmd(z, out.batch.z_prior, kernel, scale)
    share = model.replica_share(value) / float(out.batch.parts)
    return tf.stop_gradient(share) + (value - tf.stop_gradient(value))


# ---------------------------------------------------------------- objectives
# ELBO: Kingma & Welling (2014), "Auto-Encoding Variational Bayes", eq. 10:
# -ELBO = E_q[-log p(x|z)] + KL(q(z|x) || p(z)); thesis: "ELBO = MSE + KL".
def elbo(out: VAEOutput, model, config):
    recon = model.replica_mean(squared_error(out.x, out.x_hat))
    kl = model.replica_mean(gaussian_kl(out.mu, out.log_var))
    return {"loss": recon + config.kl_weight * kl, "recon": recon, "kl": kl,
            "mse": model.replica_mean(mean_squared_error(out.x, out.x_hat))}


# InfoVAE: Zhao, Song & Ermon (2019), "InfoVAE: Balancing Learning and Inference
# in Variational Autoencoders", eq. 6 with D = MMD (section 4):
# L = E[-log p(x|z)] + (1 - alpha) KL(q(z|x) || p(z)) + (alpha + lambda - 1) MMD(q(z), p(z)).
# alpha > 0 rewards mutual information between x and z (the thesis's "MI loss").
def mutual_information(out: VAEOutput, model, config):
    recon = model.replica_mean(squared_error(out.x, out.x_hat))
    kl = model.replica_mean(gaussian_kl(out.mu, out.log_var))
    divergence = global_mmd(out, model, gaussian_kernel, config.latent_scale)
    loss = (recon + (1.0 - config.mi_alpha) * kl
            + (config.mi_alpha + config.mi_lambda - 1.0) * divergence)
    return {"loss": loss, "recon": recon, "kl": kl, "mmd": divergence,
            "mse": model.replica_mean(mean_squared_error(out.x, out.x_hat))}


# WAE-MMD: Tolstikhin, Bousquet, Gelly & Schoelkopf (2018), "Wasserstein
# Auto-Encoders", Algorithm 2: c(x, G(z)) = ||x - G(z)||^2 plus lambda * MMD_k(Q_Z, P_Z)
# with the inverse multiquadratic kernel. The encoder is deterministic (z = mu).
def wasserstein_autoencoder(out: VAEOutput, model, config):
    recon = model.replica_mean(squared_error(out.x, out.x_hat))
    divergence = global_mmd(out, model, imq_kernel, config.latent_scale)
    return {"loss": recon + config.wae_lambda * divergence, "recon": recon, "mmd": divergence,
            "mse": model.replica_mean(mean_squared_error(out.x, out.x_hat))}


wasserstein_autoencoder.deterministic_encoder = True
# The objectives with a term over the whole batch (MMD): their steps gather the batch's
# latents first when they accumulate or compile (``global_mmd``).
mutual_information.spans_batch = True
wasserstein_autoencoder.spans_batch = True


def spans_batch(loss) -> bool:
    """Whether an objective has a term over the whole batch (``global_mmd``)."""
    return bool(getattr(loss, "spans_batch", False))

LOSSES = LossRegistry("vae", {
    "elbo": elbo,
    "mi": mutual_information,
    "wae": wasserstein_autoencoder,
})
