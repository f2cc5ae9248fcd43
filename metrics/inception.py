"""The FID Inception network ``inception-2015-12-05`` in Keras.

This is the TensorFlow graph released in December 2015 (``classify_image_graph_def.pb``
inside ``inception-2015-12-05.tgz``) that TTUR, TF-GAN, torch-fidelity, pytorch-fid and
StudioGAN all measure FID/IS/KID with.  It is *not* ``keras.applications.InceptionV3``:

* the branch pool of the last block (``mixed_10`` = torchvision's ``Mixed_7c``) is a
  3x3 max pool, not an average pool;
* the 3x3 average pools do not count the padding (TF ``SAME`` average pooling, i.e.
  ``count_include_pad=False``);
* every batch norm has epsilon 1e-3 and carries a scale (gamma);
* the head maps the 2048-d ``pool_3`` to 1008 logits (not 1000).

The network is built from the block table below (one loop, no copied stacks).  Every
conv unit is named after its TF scope (``mixed_9/tower/mixed/conv`` becomes the Keras
layers ``mixed_9.tower.mixed.conv.conv2d`` / ``.batchnorm``) and knows the
torchvision-style name the ``.pth`` ports use (``Mixed_7b.branch3x3_2a``), so the weight
loaders in :mod:`.weights` derive their name tables from the same source.

Input of the Keras model: ``[B, 299, 299, 3]`` already preprocessed, i.e.
``(x - 128) / 128`` for ``x`` in 0..255 resized with TF1 bilinear resizing; use
:func:`preprocess` for that.  Outputs: ``{'pool_3': [B, 2048], 'logits_unbiased': [B, 1008]}``.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, Union

import keras
import tensorflow as tf

NETWORK_NAME = "inception-2015-12-05"
INPUT_SIZE = 299
BN_EPSILON = 1e-3
POOL3_DIM = 2048
NUM_LOGITS = 1008


# --------------------------------------------------------------------------------------
# Block definitions (data)
# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Conv:
    """Conv (no bias) -> batch norm (eps 1e-3, with gamma) -> ReLU."""

    scope: str  # TF scope relative to the block, e.g. 'tower/conv_1'
    torch: str  # torchvision module name relative to the block, e.g. 'branch5x5_2'
    filters: int
    kernel: tuple
    strides: int = 1
    padding: str = "same"


@dataclasses.dataclass(frozen=True)
class Pool:
    kind: str  # 'avg' (padding excluded from the mean) or 'max'
    size: int = 3
    strides: int = 1
    padding: str = "same"
    scope: str = "pool"


@dataclasses.dataclass(frozen=True)
class Fork:
    """Parallel convs on one input, concatenated (the ``mixed`` sub-blocks of mixed_9/10)."""

    scope: str
    convs: tuple


Step = Union[Conv, Pool, Fork]


def _block_a(pool_features: int) -> tuple:
    return (
        (Conv("conv", "branch1x1", 64, (1, 1)),),
        (Conv("tower/conv", "branch5x5_1", 48, (1, 1)),
         Conv("tower/conv_1", "branch5x5_2", 64, (5, 5))),
        (Conv("tower_1/conv", "branch3x3dbl_1", 64, (1, 1)),
         Conv("tower_1/conv_1", "branch3x3dbl_2", 96, (3, 3)),
         Conv("tower_1/conv_2", "branch3x3dbl_3", 96, (3, 3))),
        (Pool("avg", scope="tower_2/pool"),
         Conv("tower_2/conv", "branch_pool", pool_features, (1, 1))),
    )


def _block_b() -> tuple:
    return (
        (Conv("conv", "branch3x3", 384, (3, 3), 2, "valid"),),
        (Conv("tower/conv", "branch3x3dbl_1", 64, (1, 1)),
         Conv("tower/conv_1", "branch3x3dbl_2", 96, (3, 3)),
         Conv("tower/conv_2", "branch3x3dbl_3", 96, (3, 3), 2, "valid")),
        (Pool("max", 3, 2, "valid", scope="pool"),),
    )


def _block_c(c7: int) -> tuple:
    return (
        (Conv("conv", "branch1x1", 192, (1, 1)),),
        (Conv("tower/conv", "branch7x7_1", c7, (1, 1)),
         Conv("tower/conv_1", "branch7x7_2", c7, (1, 7)),
         Conv("tower/conv_2", "branch7x7_3", 192, (7, 1))),
        (Conv("tower_1/conv", "branch7x7dbl_1", c7, (1, 1)),
         Conv("tower_1/conv_1", "branch7x7dbl_2", c7, (7, 1)),
         Conv("tower_1/conv_2", "branch7x7dbl_3", c7, (1, 7)),
         Conv("tower_1/conv_3", "branch7x7dbl_4", c7, (7, 1)),
         Conv("tower_1/conv_4", "branch7x7dbl_5", 192, (1, 7))),
        (Pool("avg", scope="tower_2/pool"),
         Conv("tower_2/conv", "branch_pool", 192, (1, 1))),
    )


def _block_d() -> tuple:
    return (
        (Conv("tower/conv", "branch3x3_1", 192, (1, 1)),
         Conv("tower/conv_1", "branch3x3_2", 320, (3, 3), 2, "valid")),
        (Conv("tower_1/conv", "branch7x7x3_1", 192, (1, 1)),
         Conv("tower_1/conv_1", "branch7x7x3_2", 192, (1, 7)),
         Conv("tower_1/conv_2", "branch7x7x3_3", 192, (7, 1)),
         Conv("tower_1/conv_3", "branch7x7x3_4", 192, (3, 3), 2, "valid")),
        (Pool("max", 3, 2, "valid", scope="pool"),),
    )


def _block_e(pool_kind: str) -> tuple:
    return (
        (Conv("conv", "branch1x1", 320, (1, 1)),),
        (Conv("tower/conv", "branch3x3_1", 384, (1, 1)),
         Fork("tower/mixed", (Conv("tower/mixed/conv", "branch3x3_2a", 384, (1, 3)),
                              Conv("tower/mixed/conv_1", "branch3x3_2b", 384, (3, 1))))),
        (Conv("tower_1/conv", "branch3x3dbl_1", 448, (1, 1)),
         Conv("tower_1/conv_1", "branch3x3dbl_2", 384, (3, 3)),
         Fork("tower_1/mixed", (Conv("tower_1/mixed/conv", "branch3x3dbl_3a", 384, (1, 3)),
                                Conv("tower_1/mixed/conv_1", "branch3x3dbl_3b", 384, (3, 1))))),
        (Pool(pool_kind, scope="tower_2/pool"),
         Conv("tower_2/conv", "branch_pool", 192, (1, 1))),
    )


# The stem: a plain sequence at the top level of the graph.
STEM: tuple = (
    Conv("conv", "Conv2d_1a_3x3", 32, (3, 3), 2, "valid"),
    Conv("conv_1", "Conv2d_2a_3x3", 32, (3, 3), 1, "valid"),
    Conv("conv_2", "Conv2d_2b_3x3", 64, (3, 3), 1, "same"),
    Pool("max", 3, 2, "valid", scope="pool"),
    Conv("conv_3", "Conv2d_3b_1x1", 80, (1, 1), 1, "valid"),
    Conv("conv_4", "Conv2d_4a_3x3", 192, (3, 3), 1, "valid"),
    Pool("max", 3, 2, "valid", scope="pool_1"),
)

# (TF scope, torchvision name, branches); the branches are concatenated in this order,
# which is the order of the original graph's ``<block>/join`` concat.
BLOCKS: tuple = (
    ("mixed", "Mixed_5b", _block_a(32)),
    ("mixed_1", "Mixed_5c", _block_a(64)),
    ("mixed_2", "Mixed_5d", _block_a(64)),
    ("mixed_3", "Mixed_6a", _block_b()),
    ("mixed_4", "Mixed_6b", _block_c(128)),
    ("mixed_5", "Mixed_6c", _block_c(160)),
    ("mixed_6", "Mixed_6d", _block_c(160)),
    ("mixed_7", "Mixed_6e", _block_c(192)),
    ("mixed_8", "Mixed_7a", _block_d()),
    ("mixed_9", "Mixed_7b", _block_e("avg")),
    ("mixed_10", "Mixed_7c", _block_e("max")),  # the max-pool quirk of this graph
)

HEAD_SCOPE = "softmax"  # TF: softmax/weights [2048, 1008], softmax/biases [1008]
HEAD_TORCH = "fc"  # torch: fc.weight [1008, 2048], fc.bias [1008]


@dataclasses.dataclass(frozen=True)
class ConvUnit:
    """A conv unit with its full names: TF scope, torch prefix and Keras layer names."""

    tf_scope: str
    torch_prefix: str
    spec: Conv

    @property
    def conv_layer(self) -> str:
        return keras_name(self.tf_scope) + ".conv2d"

    @property
    def bn_layer(self) -> str:
        return keras_name(self.tf_scope) + ".batchnorm"


def keras_name(tf_scope: str) -> str:
    """Keras 3 forbids '/' in layer names: 'mixed/tower/conv' -> 'mixed.tower.conv'."""
    return tf_scope.replace("/", ".")


def _steps_units(steps, block_scope: str | None, block_torch: str | None) -> Iterator[ConvUnit]:
    for step in steps:
        convs = step.convs if isinstance(step, Fork) else (step,)
        for conv in convs:
            if isinstance(conv, Conv):
                scope = f"{block_scope}/{conv.scope}" if block_scope else conv.scope
                prefix = f"{block_torch}.{conv.torch}" if block_torch else conv.torch
                yield ConvUnit(scope, prefix, conv)


def conv_units() -> list[ConvUnit]:
    """All 94 conv units of the network, in graph order."""
    units = list(_steps_units(STEM, None, None))
    for scope, torch_name, branches in BLOCKS:
        for branch in branches:
            units.extend(_steps_units(branch, scope, torch_name))
    return units


# --------------------------------------------------------------------------------------
# Keras layers
# --------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="genbench")
class UnbiasedLogits(keras.layers.Layer):
    """The 2048 -> 1008 ``softmax`` layer of the graph, returning ``x @ W`` without the bias.

    The bias is held (so that every tensor of the checkpoint has a home) and exposed by
    :meth:`biased`, but the Inception Score uses the logits without it, as OpenAI's
    improved-gan ``inception_score.py`` (which reads ``softmax/logits/MatMul``'s weight) does.
    """

    def __init__(self, units: int = NUM_LOGITS, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(name="weights", shape=(int(input_shape[-1]), self.units),
                                      initializer="glorot_uniform", trainable=False)
        self.bias = self.add_weight(name="biases", shape=(self.units,), initializer="zeros",
                                    trainable=False)

    def call(self, x):
        return keras.ops.matmul(x, self.kernel)

    def biased(self, x):
        return keras.ops.matmul(x, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _apply_conv(x, conv: Conv, scope: str):
    name = keras_name(scope)
    x = keras.layers.Conv2D(conv.filters, conv.kernel, strides=conv.strides, padding=conv.padding,
                            use_bias=False, trainable=False, name=name + ".conv2d")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, center=True, scale=True,
                                        trainable=False, name=name + ".batchnorm")(x)
    return keras.layers.ReLU(name=name + ".relu")(x)


def _apply_pool(x, pool: Pool, scope: str):
    # Keras AveragePooling2D(padding='same') lowers to tf.nn.avg_pool, which averages over
    # the valid (unpadded) window elements only: count_include_pad=False, as the graph does.
    layer = keras.layers.AveragePooling2D if pool.kind == "avg" else keras.layers.MaxPooling2D
    return layer(pool.size, strides=pool.strides, padding=pool.padding,
                 name=keras_name(scope))(x)


def _apply_steps(x, steps, block_scope: str | None):
    def full(scope):
        return f"{block_scope}/{scope}" if block_scope else scope

    for step in steps:
        if isinstance(step, Conv):
            x = _apply_conv(x, step, full(step.scope))
        elif isinstance(step, Pool):
            x = _apply_pool(x, step, full(step.scope))
        elif isinstance(step, Fork):
            outs = [_apply_conv(x, c, full(c.scope)) for c in step.convs]
            x = keras.layers.Concatenate(axis=-1, name=keras_name(full(step.scope)) + ".join")(outs)
        else:  # pragma: no cover - the table only holds the three kinds
            raise TypeError(step)
    return x


def build_fid_inception(name: str = "fid_inception_2015_12_05") -> keras.Model:
    """The ``inception-2015-12-05`` graph as a plain Keras Functional model (random weights).

    Load weights with :func:`metrics.weights.load_inception_weights`.
    """
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="input_299")
    x = _apply_steps(inputs, STEM, None)
    for scope, _torch_name, branches in BLOCKS:
        outs = [_apply_steps(x, branch, scope) for branch in branches]
        x = keras.layers.Concatenate(axis=-1, name=keras_name(scope) + ".join")(outs)
    # pool_3: the graph's 8x8 VALID average pool over the 8x8 map = a global average.
    pool3 = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)
    logits = UnbiasedLogits(NUM_LOGITS, name=HEAD_SCOPE)(pool3)
    return keras.Model(inputs, {"pool_3": pool3, "logits_unbiased": logits}, name=name)


# --------------------------------------------------------------------------------------
# Preprocessing: [-1, 1] images of any size -> the graph's 299x299 input
# --------------------------------------------------------------------------------------
def tf1_resize_bilinear(images, size=(INPUT_SIZE, INPUT_SIZE)):
    """TF1 bilinear resize: align_corners=False and *no* half-pixel centres.

    Identical to ``tf.compat.v1.image.resize_bilinear(images, size, half_pixel_centers=False)``,
    the resize op (``ResizeBilinear``) inside the 2015 graph; source coordinate of output
    pixel ``i`` is ``i * in_size / out_size``.  ``tf.image.resize`` (TF2) uses half-pixel
    centres and gives different pixels.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    return tf.raw_ops.ResizeBilinear(images=images, size=tf.constant(size, tf.int32),
                                     align_corners=False, half_pixel_centers=False)


def to_uint8_range(images, quantize: bool = True):
    """[-1, 1] float images -> float 0..255 (rounded to integers when ``quantize``).

    Rounding makes generated images look like what every reference implementation feeds
    the network (uint8 pixels); real images decoded from uint8 come back exactly.
    """
    x = (tf.convert_to_tensor(images, tf.float32) + 1.0) * 127.5
    x = tf.clip_by_value(x, 0.0, 255.0)
    return tf.round(x) if quantize else x


def gray_to_rgb(images):
    images = tf.convert_to_tensor(images)
    channels = images.shape[-1]
    if channels == 3:
        return images
    if channels == 1:
        return tf.tile(images, [1, 1, 1, 3])
    raise ValueError(f"images must have 1 or 3 channels, got shape {images.shape}")


def preprocess(images, quantize: bool = True):
    """float32 [-1, 1] NHWC (1 or 3 channels, any size) -> the graph's input (x - 128) / 128."""
    x = to_uint8_range(gray_to_rgb(images), quantize)
    x = tf1_resize_bilinear(x)
    return (x - 128.0) / 128.0
