"""The autoregressive family's networks.

- ``build_encoder``: the VQ-VAE encoder x -> z_e (van den Oord et al. 2017, sec. 4.1:
  strided convolutions and residual blocks), built from the residual block the
  diffusion family's autoencoder uses too; its decoder is that autoencoder's decoder
  (``models.shared.blocks.build_decoder``), the same mirror of the encoder.
- ``TransformerPrior``: a decoder-only transformer (GPT-2, Radford et al. 2019:
  pre-norm blocks, causal multi-head self-attention, 4x MLP with GELU, a final layer
  norm, learned positions) over [label token] + image tokens, with a key/value cache
  so sampling one token costs one position's work, not the whole prefix's.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers, ops

from models.shared.blocks import ResidualBlock, group_count

_NEG = -1e9  # logit of a masked attention position (exp underflows to exactly 0)


def build_encoder(image_shape, grid, code_dim: int, widths, name="vq_encoder") -> keras.Model:
    """x [b, H, W, C] in [-1, 1] -> z_e [b, h, w, code_dim].

    One residual block per level (outputs named ``res<level>``, the features the
    perceptual loss compares), a stride-2 convolution between levels: log2(H / h)
    downsamplings use the first log2(H / h) + 1 widths.
    """
    n_down = (image_shape[0] // grid[0]).bit_length() - 1
    widths = tuple(widths)[:n_down + 1]
    x_in = keras.Input(image_shape, name="images")
    h = layers.Conv2D(widths[0], 3, padding="same", name="stem")(x_in)
    for level, width in enumerate(widths):
        h = ResidualBlock(width, name=f"res{level}")(h)
        if level < n_down:
            h = layers.Conv2D(widths[level + 1], 3, strides=2, padding="same",
                              name=f"down{level}")(h)
    h = ops.silu(layers.GroupNormalization(group_count(widths[-1]), name="out_norm")(h))
    z_e = layers.Conv2D(code_dim, 1, name="to_code")(h)
    return keras.Model(x_in, z_e, name=name)


def feature_model(encoder: keras.Model, levels: int) -> keras.Model:
    """The encoder's residual-block outputs [b, H / 2^l, W / 2^l, width_l], l < levels."""
    return keras.Model(encoder.input, [encoder.get_layer(f"res{l}").output for l in range(levels)],
                       name=f"{encoder.name}_features")


def attend(q, k, v, mask):
    """Scaled dot-product attention (Vaswani et al. 2017, eq. 1).

    q [b, heads, tq, dh], k and v [b, heads, tk, dh], mask [tq, tk] bool (True: may
    attend) -> [b, heads, tq, dh].
    """
    scores = tf.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(int(q.shape[-1]))
    # masked and normalised in float32 whatever the compute dtype (mixed precision:
    # _NEG is out of float16's range)
    scores = tf.where(mask[None, None], tf.cast(scores, tf.float32), _NEG)
    return tf.einsum("bhqk,bhkd->bhqd", tf.cast(tf.nn.softmax(scores, axis=-1), v.dtype), v)


class Block(layers.Layer):
    """x + Attn(LN(x)), then x + MLP(LN(x)): GPT-2's pre-norm block. The output
    projections start at N(0, 0.02 / sqrt(2 depth)) (GPT-2's residual scaling)."""

    def __init__(self, width: int, heads: int, depth: int, **kwargs):
        super().__init__(**kwargs)
        self.width, self.heads = width, heads
        init = keras.initializers.RandomNormal(stddev=0.02)
        out_init = keras.initializers.RandomNormal(stddev=0.02 / math.sqrt(2 * depth))
        self.norm1 = layers.LayerNormalization(epsilon=1e-5)
        self.qkv = layers.Dense(3 * width, kernel_initializer=init)
        self.proj = layers.Dense(width, kernel_initializer=out_init)
        self.norm2 = layers.LayerNormalization(epsilon=1e-5)
        self.fc = layers.Dense(4 * width, kernel_initializer=init)
        self.fc_out = layers.Dense(width, kernel_initializer=out_init)

    def build(self, input_shape):
        for layer, dim in ((self.norm1, self.width), (self.qkv, self.width),
                           (self.proj, self.width), (self.norm2, self.width),
                           (self.fc, self.width), (self.fc_out, 4 * self.width)):
            layer.build((None, None, dim))

    def _qkv(self, x):
        """x [b, t, d] -> q, k, v each [b, heads, t, d / heads]."""
        b, t = tf.shape(x)[0], tf.shape(x)[1]
        qkv = tf.reshape(self.qkv(self.norm1(x)), [b, t, 3, self.heads, self.width // self.heads])
        q, k, v = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))
        return q, k, v

    def _finish(self, x, attended):
        """Merge the heads of attended [b, heads, t, dh], add to x [b, t, d], then the MLP."""
        b, t = tf.shape(x)[0], tf.shape(x)[1]
        merged = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [b, t, self.width])
        x = x + self.proj(merged)
        return x + self.fc_out(ops.gelu(self.fc(self.norm2(x)), approximate=True))

    def call(self, x):
        """x [b, t, d] -> [b, t, d]; position i attends to positions <= i."""
        q, k, v = self._qkv(x)
        t = tf.shape(x)[1]
        causal = tf.linalg.band_part(tf.ones([t, t], tf.bool), -1, 0)
        return self._finish(x, attend(q, k, v, causal))

    def step(self, x, cache_k, cache_v, position):
        """One position with the cache: x [b, 1, d] at ``position`` (scalar int32);
        cache_k / cache_v [b, heads, T, dh] hold the keys/values of positions < position.
        Returns (out [b, 1, d], cache_k, cache_v with this position's written)."""
        q, k, v = self._qkv(x)
        slot = tf.one_hot(position, tf.shape(cache_k)[2], dtype=k.dtype)[None, None, :, None]
        cache_k = cache_k + slot * k  # each slot is written once, from zeros: exact
        cache_v = cache_v + slot * v
        mask = (tf.range(tf.shape(cache_k)[2]) <= position)[None, :]  # [1, T]
        return self._finish(x, attend(q, cache_k, cache_v, mask)), cache_k, cache_v


class TransformerPrior(keras.Model):
    """p(c_1..c_n | y) = prod_i p(c_i | y, c_<i) over the codes c of an image and its label y.

    Inputs of ``call``: labels [b] int (0..num_classes, num_classes = the null label)
    and the first n - 1 codes [b, n - 1] int (0..K-1); output: logits [b, n, K] where
    row i predicts code i from the label and codes < i.
    """

    def __init__(self, num_codes: int, num_classes: int, length: int, width: int, depth: int,
                 heads: int, **kwargs):
        super().__init__(**kwargs)
        self.num_codes, self.length, self.width = num_codes, length, width
        self.heads, self.depth = heads, depth
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.code_embedding = layers.Embedding(num_codes, width, embeddings_initializer=init,
                                               name="code_embedding")
        self.label_embedding = layers.Embedding(num_classes + 1, width,
                                                embeddings_initializer=init,
                                                name="label_embedding")
        self.positions = self.add_weight(shape=(length, width), initializer=init,
                                         name="positions")
        # One attribute per block (not a list): tf.train.Checkpoint follows attributes,
        # and Keras 3 hides a list of layers from it.
        for i in range(depth):
            setattr(self, f"block{i}", Block(width, heads, depth, name=f"block{i}"))
        self.norm = layers.LayerNormalization(epsilon=1e-5, name="final_norm")
        self.head = layers.Dense(num_codes, kernel_initializer=init, name="head")

    @property
    def blocks(self) -> list:
        return [getattr(self, f"block{i}") for i in range(self.depth)]

    def build(self, input_shape=None):
        self.code_embedding.build((None,))
        self.label_embedding.build((None,))
        for block in self.blocks:
            block.build((None, None, self.width))
        self.norm.build((None, None, self.width))
        self.head.build((None, None, self.width))
        self.built = True

    def embed(self, labels, codes):
        """labels [b], codes [b, t - 1] -> [b, t, d]: the label token, then the codes, plus positions."""
        x = tf.concat([self.label_embedding(labels)[:, None], self.code_embedding(codes)], axis=1)
        return x + tf.cast(self.positions, x.dtype)[None, :tf.shape(x)[1]]

    def call(self, inputs, training=False):
        labels, codes = inputs
        x = self.embed(tf.cast(labels, tf.int32), tf.cast(codes, tf.int32))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    def empty_cache(self, batch):
        """Zero keys and values for every block: a list of depth pairs [b, heads, n, dh]."""
        shape = [batch, self.heads, self.length, self.width // self.heads]
        dtype = self.compute_dtype  # the keys and values' dtype under mixed precision
        return [(tf.zeros(shape, dtype), tf.zeros(shape, dtype)) for _ in self.blocks]

    def step(self, labels, previous_code, position, cache):
        """The logits [b, K] of code ``position`` (scalar int32), given the cache of the
        positions before it: position 0 reads the label [b], later ones the previous code
        [b]. Returns (logits, cache)."""
        token = tf.where(position == 0, self.label_embedding(labels),
                         self.code_embedding(tf.maximum(previous_code, 0)))
        x = (token + tf.cast(tf.gather(tf.convert_to_tensor(self.positions), position),
                             token.dtype)[None])[:, None]
        new_cache = []
        for block, (k, v) in zip(self.blocks, cache):
            x, k, v = block.step(x, k, v, position)
            new_cache.append((k, v))
        return tf.cast(self.head(self.norm(x))[:, 0], tf.float32), new_cache
