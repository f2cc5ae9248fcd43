"""The diffusion family's networks, as plain Functional models built from a few layers.

- ``build_encoder`` / ``build_decoder``: the KL-regularised convolutional
  autoencoder of latent diffusion (Rombach et al. 2022, sec. 3.1), without its
  attention, perceptual and adversarial terms (a CPU-sized first stage); the decoder,
  the residual block, the fast convolution and the group counts are shared with the
  autoregressive family's VQ-VAE (``models.shared.blocks``).
- ``build_unet``: the denoiser eps_theta(z_t, t, y) (Ho et al. 2020, appendix B;
  Dhariwal & Nichol 2021): residual blocks with group norm, self-attention at the
  lowest resolutions, a sinusoidal time embedding to which a learned class
  embedding is added, fed to every block by adaptive group norm (scale and shift).
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers, ops

from models.shared.blocks import (ResidualBlock, SameConv2D, check_levels, downsamplings,
                                  group_count)


class SinusoidalEmbedding(layers.Layer):
    """t [b] (int or float) -> [b, dim]: the Transformer's sinusoidal position code
    of the timestep (Vaswani et al. 2017; DDPM appendix B)."""

    def __init__(self, dim: int, max_period: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.max_period = dim, max_period

    def call(self, t):
        half = self.dim // 2
        # frequencies exp(-log(max_period) * k / half), k = 0..half-1: [half]
        freqs = ops.exp(-math.log(self.max_period) * ops.arange(half, dtype="float32") / half)
        angles = ops.cast(ops.reshape(t, [-1, 1]), "float32") * freqs[None, :]  # [b, half]
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


class SelfAttention(layers.Layer):
    """GN, then multi-head self-attention over the h*w positions, added back
    (DDPM's AttnBlock, with heads). Projections are plain 2-D matmuls and the output
    projection starts at zero (the block starts as the identity); written out rather
    than ``layers.MultiHeadAttention``, whose einsum gradients cost about as much as
    the rest of a latent U-Net's train step on a CPU."""

    def __init__(self, heads: int, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads

    def build(self, input_shape):
        width = int(input_shape[-1])
        if width % self.heads:
            raise ValueError(f"attention width {width} is not divisible by {self.heads} heads")
        self.norm = layers.GroupNormalization(group_count(width), epsilon=1e-5)
        self.qkv = self.add_weight(shape=(width, 3 * width), initializer="glorot_uniform",
                                   name="qkv_kernel")
        self.qkv_bias = self.add_weight(shape=(3 * width,), initializer="zeros", name="qkv_bias")
        self.out = self.add_weight(shape=(width, width), initializer="zeros", name="out_kernel")
        self.out_bias = self.add_weight(shape=(width,), initializer="zeros", name="out_bias")

    def call(self, x):
        b, h, w, c = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2], x.shape[-1]
        n, d = h * w, c // self.heads
        tokens = tf.reshape(self.norm(x), [-1, c])                       # [b*n, c]
        qkv = tf.matmul(tokens, self.qkv) + self.qkv_bias                # [b*n, 3c]
        qkv = tf.transpose(tf.reshape(qkv, [b, n, 3, self.heads, d]), [2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]                                 # [b, heads, n, d]
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(d)        # [b, heads, n, n]
        # the softmax in float32 whatever the compute dtype (mixed precision)
        weights = tf.cast(tf.nn.softmax(tf.cast(scores, tf.float32)), v.dtype)
        mixed = tf.reshape(tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3]), [-1, c])
        return x + tf.reshape(tf.matmul(mixed, self.out) + self.out_bias, [b, h, w, c])


def build_encoder(image_shape, latent_shape, widths, name="encoder") -> keras.Model:
    """x [b, H, W, C] in [-1, 1] -> (mean, log_var), each [b, s, s, c].

    One residual block per level; a stride-2 convolution between levels, so
    log2(H / s) downsamplings use the first log2(H / s) + 1 widths.
    """
    n_down = downsamplings(image_shape[0], latent_shape[0])
    widths = check_levels(widths, n_down + 1, "the autoencoder")
    x_in = keras.Input(image_shape, name="images")
    h = SameConv2D(widths[0], 3, name="stem")(x_in)
    for level, width in enumerate(widths):
        h = ResidualBlock(width, name=f"res{level}")(h)
        if level < n_down:
            h = layers.Conv2D(widths[level + 1], 3, strides=2, padding="same",
                              name=f"down{level}")(h)
    h = ops.silu(layers.GroupNormalization(group_count(widths[-1]), name="out_norm")(h))
    moments = SameConv2D(2 * latent_shape[-1], 3, name="moments")(h)
    mean, log_var = layers.Lambda(lambda m: ops.split(m, 2, axis=-1), name="split")(moments)
    return keras.Model(x_in, [mean, log_var], name=name)


class Patchify(layers.Layer):
    """[b, s, s, c] -> [b, s/p, s/p, p*p*c]: each p x p patch becomes one position
    (``inverse=True``: [b, s', s', p*p*c] -> [b, s'p, s'p, c])."""

    def __init__(self, patch: int, inverse: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.patch, self.inverse = int(patch), bool(inverse)

    def call(self, x):
        p, s = self.patch, x.shape[1]
        if self.inverse:
            c = x.shape[-1] // (p * p)
            x = ops.reshape(x, [-1, s, s, p, p, c])
            x = ops.transpose(x, [0, 1, 3, 2, 4, 5])  # [b, s', p, s', p, c]
            return ops.reshape(x, [-1, s * p, s * p, c])
        c = x.shape[-1]
        x = ops.reshape(x, [-1, s // p, p, s // p, p, c])
        x = ops.transpose(x, [0, 1, 3, 2, 4, 5])  # [b, s/p, s/p, p, p, c]
        return ops.reshape(x, [-1, s // p, s // p, p * p * c])

    def get_config(self):
        return {**super().get_config(), "patch": self.patch, "inverse": self.inverse}


class ScaledInput(layers.Layer):
    """[z_t [b, ...], t [b] int32] -> table[t] * z_t, with a fixed per-step ``table`` [T]."""

    def __init__(self, table, **kwargs):
        super().__init__(**kwargs)
        self.table = [float(v) for v in table]

    def call(self, z, t):
        scale = ops.take(ops.convert_to_tensor(self.table, dtype=z.dtype), t)  # [b]
        return z * ops.reshape(scale, [-1] + [1] * (len(z.shape) - 1))

    def get_config(self):
        return {**super().get_config(), "table": self.table}


def build_unet(latent_shape, widths, blocks: int, attention_side: int, heads: int,
               num_classes: int, patch: int = 1, eps_skip=None, name="unet") -> keras.Model:
    """[z_t [b, s, s, c], t [b] int32, y [b] int32] -> eps_hat [b, s, s, c].

    y = num_classes is the null label (classifier-free guidance). With ``patch``
    p > 1 the latent is first folded into p x p patches ([b, s/p, s/p, p*p*c]) and
    the prediction unfolded at the end. Only when the (folded) input has more channels
    than the first level's width, two skips (else the U-Net is plain), because
    widths[0] features cannot carry them and at high noise eps ~ z_t must be copied
    almost exactly (DDIM multiplies the error there): the output layer also sees the
    input, and ``eps_skip`` (a [T] table, sqrt(1 - alpha_bar_t)) adds eps_skip[t] * z_t,
    the linear least-squares estimate of eps from z_t for unit-variance latents, which
    the network then corrects (EDM's c_skip, Karras et al. 2022, in eps form).
    Levels run at sides s/p, s/2p, ... (one per width); ``blocks`` residual blocks per
    level down, ``blocks + 1`` up (with skip concatenations), self-attention after each
    block at sides <= ``attention_side``, and a residual-attention-residual middle.
    """
    side = latent_shape[0] // patch
    if latent_shape[0] % patch:
        raise ValueError(f"a latent side of {latent_shape[0]} is not a multiple of the "
                         f"denoiser's patch size {patch}")
    if side % (2 ** (len(widths) - 1)):
        raise ValueError(f"a latent side of {side} cannot be halved {len(widths) - 1} times "
                         f"(unet_widths {tuple(widths)}); use fewer widths")
    z_in = keras.Input(latent_shape, name="z_t")
    t_in = keras.Input((), dtype="int32", name="t")
    y_in = keras.Input((), dtype="int32", name="y")
    emb_dim = 4 * widths[0]
    emb = SinusoidalEmbedding(widths[0], name="time_sinusoid")(t_in)
    emb = layers.Dense(emb_dim, activation="silu", name="time_fc0")(emb)
    emb = layers.Dense(emb_dim, name="time_fc1")(emb)
    label = layers.Embedding(num_classes + 1, emb_dim, name="label_embedding")(y_in)
    emb = layers.Add(name="time_plus_label")([emb, label])  # [b, emb_dim]

    def attend(h, current_side, tag):
        return SelfAttention(heads, name=f"attn_{tag}")(h) if current_side <= attention_side else h

    patch_input = Patchify(patch, name="patchify")(z_in) if patch > 1 else z_in
    h = SameConv2D(widths[0], 3, name="stem")(patch_input)
    skips, current = [h], side
    for level, width in enumerate(widths):
        for b in range(blocks):
            h = ResidualBlock(width, conditioned=True, name=f"down{level}_res{b}")([h, emb])
            h = attend(h, current, f"down{level}_{b}")
            skips.append(h)
        if level < len(widths) - 1:
            h = layers.Conv2D(width, 3, strides=2, padding="same", name=f"down{level}")(h)
            current //= 2
            skips.append(h)
    h = ResidualBlock(widths[-1], conditioned=True, name="mid_res0")([h, emb])
    h = SelfAttention(heads, name="mid_attn")(h)
    h = ResidualBlock(widths[-1], conditioned=True, name="mid_res1")([h, emb])
    for level in reversed(range(len(widths))):
        for b in range(blocks + 1):
            h = layers.Concatenate(name=f"up{level}_cat{b}")([h, skips.pop()])
            h = ResidualBlock(widths[level], conditioned=True, name=f"up{level}_res{b}")([h, emb])
            h = attend(h, current, f"up{level}_{b}")
        if level > 0:
            h = layers.UpSampling2D(2, interpolation="nearest", name=f"up{level}")(h)
            h = SameConv2D(widths[level], 3, name=f"up{level}_conv")(h)
            current *= 2
    h = ops.silu(layers.GroupNormalization(group_count(widths[0]), name="out_norm")(h))
    wide_input = patch_input.shape[-1] > widths[0]
    if wide_input:
        # Without this skip every eps_hat would pass through widths[0] features per
        # position: a rank bottleneck for p*p*c > widths[0] outputs.
        h = layers.Concatenate(name="input_skip")([h, patch_input])
    # Zero-initialised output: the untrained model predicts eps_hat = 0 (DDPM's init).
    eps = SameConv2D(latent_shape[-1] * patch * patch, 3, kernel_initializer="zeros",
                     name="to_eps")(h)
    if patch > 1:
        eps = Patchify(patch, inverse=True, name="unpatchify")(eps)
    if eps_skip is not None and wide_input:
        linear = ScaledInput(eps_skip, name="scaled_z_t")(z_in, t_in)  # [b, s, s, c]
        eps = layers.Add(name="eps_skip")([eps, linear])
    return keras.Model([z_in, t_in, y_in], eps, name=name)
