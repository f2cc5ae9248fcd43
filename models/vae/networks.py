"""Convolutional encoder and decoder for the VAE family, as plain Functional models."""
from __future__ import annotations

import keras
from keras import layers


def build_encoder(image_shape, latent_size: int, widths, stochastic: bool = True) -> keras.Model:
    """x [B, H, W, C] in [-1, 1] -> (mu [B, z], log_var [B, z]), or mu alone when not
    ``stochastic`` (WAE's deterministic encoder has no variance head).

    One stride-2 convolution per width halves the resolution:
    32x32 -> 16x16 -> 8x8 -> 4x4 for three widths.
    """
    x_in = keras.Input(image_shape, name="images")
    h = x_in
    for i, width in enumerate(widths):
        h = layers.Conv2D(width, 4, strides=2, padding="same", name=f"down{i}")(h)
        h = layers.LeakyReLU(0.2, name=f"down{i}_act")(h)
    h = layers.Flatten(name="flatten")(h)
    mu = layers.Dense(latent_size, name="mu")(h)
    if not stochastic:
        return keras.Model(x_in, mu, name="encoder")
    log_var = layers.Dense(latent_size, name="log_var")(h)
    return keras.Model(x_in, [mu, log_var], name="encoder")


def build_decoder(image_shape, latent_size: int, widths) -> keras.Model:
    """z [B, z] -> x_hat [B, H, W, C] in [-1, 1] (tanh), mirroring the encoder."""
    height, width, channels = image_shape
    factor = 2 ** len(widths)
    if height % factor or width % factor:
        raise ValueError(f"image size {height}x{width} is not divisible by 2**{len(widths)} "
                         f"(one halving per width in {tuple(widths)})")
    z_in = keras.Input((latent_size,), name="z")
    h = layers.Dense((height // factor) * (width // factor) * widths[-1], name="project")(z_in)
    h = layers.LeakyReLU(0.2, name="project_act")(h)
    h = layers.Reshape((height // factor, width // factor, widths[-1]), name="reshape")(h)
    for i, width_i in enumerate(reversed(widths)):
        h = layers.Conv2DTranspose(width_i, 4, strides=2, padding="same", name=f"up{i}")(h)
        h = layers.LeakyReLU(0.2, name=f"up{i}_act")(h)
    x_hat = layers.Conv2D(channels, 3, padding="same", activation="tanh", name="to_image")(h)
    return keras.Model(z_in, x_hat, name="decoder")
