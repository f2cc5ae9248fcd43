"""Thesis 003's networks, exactly as appendices 2 (generator) and 3 (discriminator) list them.

Generator, latent 32: Dense(128*16*16) -> LeakyReLU -> Reshape(16, 16, 128) ->
Conv2D(256, 5, same) -> LeakyReLU -> 2 x [Conv2DTranspose(256, 4, strides 2, same) ->
LeakyReLU] -> 2 x [Conv2D(512, 5, same) -> LeakyReLU] -> Conv2D(3, 7, same, tanh): 64x64x3.

Discriminator: Conv2D(256, 3) -> LeakyReLU -> 4 x [Conv2D(256, 4, strides 2) -> LeakyReLU]
-> Flatten -> Dropout(0.4) -> Dense(1). The listing ends in a sigmoid; here D returns the
logit and the losses apply the sigmoid inside the cross-entropy (what Keras itself does for a
sigmoid output, via its ``_keras_logits``), so the parameters are the listing's exactly.
Widths are divided by ``channel_divisor`` for CPU profiles (1 = the thesis's).
"""
from __future__ import annotations

import keras

IMAGE_SHAPE = (64, 64, 3)
# (layer kind, width, kernel, strides) after the 16x16x128 reshape (appendix 2)
_G_LAYERS = (("conv", 256, 5, 1), ("deconv", 256, 4, 2), ("deconv", 256, 4, 2),
             ("conv", 512, 5, 1), ("conv", 512, 5, 1))
_D_DOWNSAMPLINGS = 4  # appendix 3: four Conv2D(256, 4, strides=2)


def build_generator(latent_size=32, *, channels=3, slope=0.3, divisor=1, seed=0,
                    name="generator") -> keras.Model:
    """z [b, latent] -> images [b, 64, 64, channels] in (-1, 1) (tanh)."""
    init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + i)  # noqa: E731
    z = keras.Input((latent_size,), name="z")
    base = 128 // divisor
    x = keras.layers.Dense(base * 16 * 16, kernel_initializer=init(0))(z)
    x = keras.layers.LeakyReLU(slope)(x)
    x = keras.layers.Reshape((16, 16, base))(x)
    for i, (kind, width, kernel, strides) in enumerate(_G_LAYERS, 1):
        layer = keras.layers.Conv2DTranspose if kind == "deconv" else keras.layers.Conv2D
        x = layer(width // divisor, kernel, strides=strides, padding="same",
                  kernel_initializer=init(i))(x)
        x = keras.layers.LeakyReLU(slope)(x)
    x = keras.layers.Conv2D(channels, 7, padding="same", activation="tanh",
                            kernel_initializer=init(9))(x)
    return keras.Model(z, x, name=name)


def build_discriminator(image_shape=IMAGE_SHAPE, *, slope=0.3, dropout=0.4, divisor=1, seed=0,
                        name="discriminator") -> keras.Model:
    """images [b, 64, 64, C] -> logits [b, 1] (the listing's sigmoid lives in the losses)."""
    init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + 50 + i)  # noqa: E731
    width = 256 // divisor
    images = keras.Input(image_shape, name="images")
    x = keras.layers.Conv2D(width, 3, kernel_initializer=init(0))(images)
    x = keras.layers.LeakyReLU(slope)(x)
    for i in range(1, _D_DOWNSAMPLINGS + 1):
        x = keras.layers.Conv2D(width, 4, strides=2, kernel_initializer=init(i))(x)
        x = keras.layers.LeakyReLU(slope)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(dropout, seed=seed * 100 + 99)(x)
    logits = keras.layers.Dense(1, kernel_initializer=init(9))(x)
    return keras.Model(images, logits, name=name)
