"""The tokenizer's vector quantiser as pure functions (testable by hand).

van den Oord, Vinyals & Kavukcuoglu (2017), "Neural Discrete Representation
Learning" (VQ-VAE): z_q = e_k with k = argmin_j ||z_e - e_j||, the straight-through
estimator copies the decoder's gradient from z_q to z_e (sec. 3.1), and the
codebook follows an exponential moving average of the encoder outputs assigned to
each code instead of a codebook loss (appendix A.1). Dead codes are restarted at
random encoder outputs, as Jukebox does (Dhariwal et al. 2020, sec. 3.2 / their
``update_k``: a code whose EMA usage is below a threshold is replaced).
"""
from __future__ import annotations

import tensorflow as tf


def nearest_codes(z, codebook):
    """Index of the nearest code of every vector: z [..., D], codebook [K, D] -> [...] int32.

    ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2; ||z||^2 does not change the argmin.
    """
    flat = tf.reshape(z, [-1, tf.shape(z)[-1]])  # [N, D]
    distances = (-2.0 * tf.matmul(flat, codebook, transpose_b=True)
                 + tf.reduce_sum(tf.square(codebook), axis=1)[None, :])  # [N, K]
    codes = tf.argmin(distances, axis=1, output_type=tf.int32)
    return tf.reshape(codes, tf.shape(z)[:-1])


def straight_through(z_e, z_q):
    """z_q in the forward pass, identity gradient to z_e and none to z_q (VQ-VAE eq. 3's
    "copy gradients from decoder input z_q(x) to encoder output z_e(x)")."""
    return z_e + tf.stop_gradient(z_q - z_e)


def code_statistics(codes, num_codes: int):
    """(counts [K], perplexity, fraction of codes used) of the codes of a batch [...].

    perplexity = exp(H(p)) of the batch's code histogram p (K when every code is
    equally used, 1 when one code takes everything).
    """
    counts = tf.reduce_sum(tf.one_hot(tf.reshape(codes, [-1]), num_codes, dtype=tf.float32),
                           axis=0)
    p = counts / tf.maximum(tf.reduce_sum(counts), 1.0)
    entropy = -tf.reduce_sum(tf.where(p > 0, p * tf.math.log(tf.maximum(p, 1e-30)), 0.0))
    used = tf.reduce_mean(tf.cast(counts > 0, tf.float32))
    return counts, tf.exp(entropy), used


def ema_codebook_update(ema_count, ema_sum, z, codes, decay, threshold, restart_vectors):
    """One EMA step of the codebook (VQ-VAE appendix A.1) with Jukebox's restarts.

    ema_count [K]: N_i, the moving average of the number of vectors assigned to code i;
    ema_sum [K, D]: m_i, the moving average of their sum; z [N, D]: this step's encoder
    outputs (the whole global batch); codes [N]: their nearest codes; restart_vectors
    [K, D]: a random encoder output per code, used where the code is dead.

        N_i <- decay N_i + (1 - decay) n_i          (n_i: vectors assigned to code i)
        m_i <- decay m_i + (1 - decay) sum_{j: k_j = i} z_j
        e_i <- m_i / N_i  if N_i >= threshold, else restart_vectors_i

    Returns (ema_count [K], ema_sum [K, D], codebook [K, D], dead [K] bool).
    """
    num_codes = tf.shape(ema_count)[0]
    onehot = tf.one_hot(codes, num_codes, dtype=z.dtype)  # [N, K]
    count = decay * ema_count + (1.0 - decay) * tf.reduce_sum(onehot, axis=0)
    total = decay * ema_sum + (1.0 - decay) * tf.matmul(onehot, z, transpose_a=True)
    dead = count < threshold
    centroids = total / tf.maximum(count, 1e-12)[:, None]
    codebook = tf.where(dead[:, None], restart_vectors, centroids)
    return count, total, codebook, dead
