"""StyleGAN2's networks for small images, as plain Functional models.

Karras et al. (2020), "Analyzing and Improving the Image Quality of StyleGAN":
the generator of fig. 2d with the skip (ToRGB-sum) outputs of fig. 7 and the
residual discriminator of fig. 7. Widths follow StyleGAN2's rule
``channels(r) = min(channel_base // r, channel_max)`` (``GANConfig.channels``).
"""
from __future__ import annotations

import itertools
import math

import keras
import tensorflow as tf

from models.gan.layers import (LRELU_GAIN, ConstantInput, EqualizedConv2D, EqualizedDense,
                               MinibatchStdDev, ModulatedConv2D, NoiseBiasActivation, downsample,
                               upsample)


def _resolutions(image_size: int) -> list[int]:
    """[4, 8, ..., image_size]; the size must be a power of two >= 8."""
    log2 = int(round(math.log2(image_size)))
    if image_size < 8 or 2 ** log2 != image_size:
        raise ValueError(f"StyleGAN2 needs a square power-of-two image size >= 8, got {image_size}")
    return [2 ** k for k in range(2, log2 + 1)]


def num_ws(image_size: int) -> int:
    """Number of style vectors the synthesis network reads: two per resolution
    (StyleGAN2's ``num_ws``; each ToRGB shares the next block's first w)."""
    return 2 * len(_resolutions(image_size))


def noise_shapes(image_size: int) -> list[tuple]:
    """Per-example shapes of the per-pixel noise inputs, in input order:
    one at 4x4, two at every higher resolution."""
    shapes = []
    for res in _resolutions(image_size):
        shapes += [(res, res, 1)] * (1 if res == 4 else 2)
    return shapes


def build_mapping(latent_size: int, w_dim: int, num_layers: int, lr_mul: float = 0.01, *,
                  seed: int = 0, aggregation: str = "none", name: str = "mapping") -> keras.Model:
    """z [b, latent_size] -> w [b, w_dim] (StyleGAN, sec. 2: an MLP of ``num_layers``
    fully connected layers with lrelu, learning rate x0.01, after normalising z)."""
    z_in = keras.Input((latent_size,), name="z")
    # Normalise z's second moment (StyleGAN's ``normalize_2nd_moment``).
    h = keras.layers.Lambda(
        lambda z: z * tf.math.rsqrt(tf.reduce_mean(tf.square(z), axis=1, keepdims=True) + 1e-8),
        name="normalize")(z_in)
    for i in range(num_layers):
        h = EqualizedDense(w_dim, lr_mul=lr_mul, seed=seed + i, aggregation=aggregation,
                           name=f"fc{i}")(h)
    return keras.Model(z_in, h, name=name)


def build_synthesis(image_shape, config, *, seed: int = 0, aggregation: str = "none",
                    name: str = "synthesis") -> keras.Model:
    """[ws [b, num_ws, w_dim], noise_0 [b, 4, 4, 1], ...] -> images [b, H, W, C].

    Learned 4x4 constant; per resolution r >= 8 an upsampling modulated conv and
    a modulated conv, each followed by per-pixel noise, bias and lrelu; a ToRGB
    (1x1 modulated conv, no demodulation) per resolution whose outputs are
    upsampled and summed (the "skip" generator). Style w[2i-1], w[2i] drive block
    i's convolutions and w[2i+1] its ToRGB. No output nonlinearity (StyleGAN2
    leaves the image unbounded; the sampler clips to [-1, 1]).
    """
    size, _, channels = image_shape
    resolutions = _resolutions(size)
    n_ws = num_ws(size)
    seeds = itertools.count(seed * 1000)
    ws_in = keras.Input((n_ws, config.w_dim), name="ws")
    noise_in = [keras.Input(shape, name=f"noise{i}") for i, shape in enumerate(noise_shapes(size))]
    noises = iter(noise_in)
    kw = dict(aggregation=aggregation)
    conv_kw = dict(mode=config.modconv, conv_dtype=config.conv_dtype, **kw)

    def styled_conv(h, filters, w_index, up, tag):
        # The activation's sqrt(2) gain is applied by the conv (output_gain) and to the
        # noise strength and bias (NoiseBiasActivation): see layers.py.
        h = ModulatedConv2D(filters, 3, w_index, up=up, output_gain=LRELU_GAIN, seed=next(seeds),
                            name=f"{tag}_conv", **conv_kw)([h, ws_in])
        return NoiseBiasActivation(name=f"{tag}_act", **kw)([h, next(noises)])

    def to_rgb(h, w_index, tag):
        y = ModulatedConv2D(channels, 1, w_index, demodulate=False, seed=next(seeds),
                            name=f"{tag}_torgb", **conv_kw)([h, ws_in])
        return NoiseBiasActivation(use_noise=False, activate=False, name=f"{tag}_rgb_bias",
                                   **kw)(y)

    h = ConstantInput(config.channels(4), seed=next(seeds), name="const", **kw)(ws_in)
    h = styled_conv(h, config.channels(4), 0, False, "b4")
    image = to_rgb(h, 1, "b4")
    for i, res in enumerate(resolutions[1:], start=1):
        h = styled_conv(h, config.channels(res), 2 * i - 1, True, f"b{res}_0")
        h = styled_conv(h, config.channels(res), 2 * i, False, f"b{res}_1")
        image = keras.layers.Lambda(upsample, name=f"b{res}_img_up")(image)
        image = keras.layers.Add(name=f"b{res}_skip")([image, to_rgb(h, 2 * i + 1, f"b{res}")])
    return keras.Model([ws_in, *noise_in], image, name=name)


def build_discriminator(image_shape, config, *, seed: int = 0,
                        name: str = "discriminator") -> keras.Model:
    """images [b, H, W, C] -> logits [b]: StyleGAN2's discriminator (fig. 7c).

    FromRGB (1x1 conv) at full resolution, then per resolution r > 4 a block:
    conv3x3 at r -> 2x2 average pool -> conv3x3 at r/2. ``config.d_architecture``
    "resnet" adds the skip path pool -> 1x1 conv, summed with the block and scaled by
    1/sqrt(2) (StyleGAN2's default); "orig" is the plain block (StyleGAN2-ADA's
    ``cifar`` configuration). At 4x4: minibatch stddev, conv3x3, fully connected,
    and a linear output.
    """
    if config.d_architecture not in ("resnet", "orig"):
        raise ValueError(f"d_architecture must be 'resnet' or 'orig', got "
                         f"{config.d_architecture!r}")
    resnet = config.d_architecture == "resnet"
    size = image_shape[0]
    resolutions = _resolutions(size)[::-1]           # [size, ..., 8, 4]
    seeds = itertools.count(seed * 1000 + 500)
    ch = config.channels
    dt = config.conv_dtype
    x_in = keras.Input(tuple(image_shape), name="images")
    h = EqualizedConv2D(ch(size), 1, seed=next(seeds), conv_dtype=dt, name="fromrgb")(x_in)
    # resnet: (main + skip) / sqrt(2), folded into both branches
    residual = 1.0 / math.sqrt(2.0) if resnet else 1.0
    for res in resolutions[:-1]:
        if resnet:
            skip = EqualizedConv2D(ch(res // 2), 1, use_bias=False, activate=False,
                                   scale=residual, seed=next(seeds), conv_dtype=dt,
                                   name=f"b{res}_skip")(
                keras.layers.Lambda(downsample, name=f"b{res}_skip_pool")(h))
        h = EqualizedConv2D(ch(res), 3, seed=next(seeds), conv_dtype=dt, name=f"b{res}_conv0")(h)
        h = keras.layers.Lambda(downsample, name=f"b{res}_pool")(h)
        h = EqualizedConv2D(ch(res // 2), 3, scale=residual, seed=next(seeds), conv_dtype=dt,
                            name=f"b{res}_conv1")(h)
        if resnet:
            h = keras.layers.Add(name=f"b{res}_residual")([h, skip])
    h = MinibatchStdDev(config.mbstd_group, config.mbstd_channels, name="mbstd")(h)
    h = EqualizedConv2D(ch(4), 3, seed=next(seeds), conv_dtype=dt, name="b4_conv")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = EqualizedDense(ch(4), seed=next(seeds), name="b4_fc")(h)
    logits = EqualizedDense(1, activate=False, seed=next(seeds), name="out")(h)
    logits = keras.layers.Reshape((), name="logits")(logits)
    return keras.Model(x_in, logits, name=name)
