"""StyleGAN2's building blocks as Keras layers (Karras et al. 2020, "Analyzing and
Improving the Image Quality of StyleGAN", CVPR; referred to below as "StyleGAN2").

Every weighted layer uses the equalised learning rate of Karras et al. (2018,
"Progressive Growing of GANs", sec. 4.1): weights are stored as N(0, 1) / lr_mul
and scaled by lr_mul / sqrt(fan_in) at run time, so Adam's step is the same size
for every layer. All weights take an explicit initialiser seed (a run is a pure
function of its seed) and an ``aggregation`` (the EMA copy of the generator is
updated inside the replica step, which needs "only_first_replica").
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf

#: Leaky ReLU slope and the gain that restores unit variance after it (StyleGAN2's
#: ``bias_act`` defaults: alpha 0.2, gain sqrt(2)).
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


def lrelu(x):
    """sqrt(2) * leaky_relu(x, 0.2)."""
    # max(x, 0.2 x) rather than tf.nn.leaky_relu: grappler's remapper fails on the
    # LeakyReluGrad that the gradient penalties' double backprop creates.
    return tf.maximum(x, LRELU_SLOPE * x) * LRELU_GAIN


def _normal(seed):
    return keras.initializers.RandomNormal(0.0, 1.0, seed=seed)


class EqualizedDense(keras.layers.Layer):
    """y = act(x @ (W * lr_mul / sqrt(fan_in)) + b * lr_mul): [b, in] -> [b, units]."""

    def __init__(self, units, *, lr_mul=1.0, bias_init=0.0, activate=True, seed=None,
                 aggregation="none", **kwargs):
        super().__init__(**kwargs)
        self.units, self.lr_mul, self.bias_init = int(units), float(lr_mul), float(bias_init)
        self.activate, self.seed, self.aggregation = activate, seed, aggregation

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.weight_gain = self.lr_mul / math.sqrt(fan_in)
        self.kernel = self.add_weight(
            name="kernel", shape=(fan_in, self.units),
            initializer=keras.initializers.RandomNormal(0.0, 1.0 / self.lr_mul, seed=self.seed),
            aggregation=self.aggregation)
        self.bias = self.add_weight(
            name="bias", shape=(self.units,),
            initializer=keras.initializers.Constant(self.bias_init / self.lr_mul),
            aggregation=self.aggregation)

    def call(self, x):
        y = tf.matmul(x, self.kernel * self.weight_gain) + self.bias * self.lr_mul
        return lrelu(y) if self.activate else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)


class EqualizedConv2D(keras.layers.Layer):
    """Equalised-lr 'same' convolution (+ bias, + lrelu): [b, H, W, in] -> [b, H, W, filters]."""

    def __init__(self, filters, kernel_size, *, use_bias=True, activate=True, seed=None,
                 aggregation="none", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.use_bias, self.activate, self.seed, self.aggregation = (
            use_bias, activate, seed, aggregation)

    def build(self, input_shape):
        fan_in = self.kernel_size ** 2 * int(input_shape[-1])
        self.weight_gain = 1.0 / math.sqrt(fan_in)
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, self.kernel_size, int(input_shape[-1]),
                                  self.filters),
            initializer=_normal(self.seed), aggregation=self.aggregation)
        self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros",
                                     aggregation=self.aggregation) if self.use_bias else None)

    def call(self, x):
        y = tf.nn.conv2d(x, self.kernel * self.weight_gain, 1, "SAME")
        if self.bias is not None:
            y = y + self.bias
        return lrelu(y) if self.activate else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)


def upsample(x):
    """[b, H, W, C] -> [b, 2H, 2W, C], bilinear.

    StyleGAN2 upsamples with a transposed convolution followed by the [1, 3, 3, 1]
    FIR filter; bilinear x2 interpolation with half-pixel centres *is* that filter
    applied to the zero-stuffed image (up to the border rows), at a lower cost.
    """
    height, width = x.shape[1], x.shape[2]
    return tf.image.resize(x, [2 * height, 2 * width], method="bilinear")


def downsample(x):
    """[b, H, W, C] -> [b, H/2, W/2, C] by 2x2 averaging (StyleGAN2 blurs with
    [1, 3, 3, 1] before a stride-2 conv; the box filter is its cheaper cousin)."""
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


class ModulatedConv2D(keras.layers.Layer):
    """StyleGAN2's modulated (and demodulated) convolution, sec. 2.2, eqs. 1-3.

    Inputs: x [b, H, W, in] and the style vectors ws [b, num_ws, w_dim]; this
    layer reads ws[:, w_index]. Output [b, H', W', filters] (H' = 2H with
    ``up``). No bias, noise or activation (see :class:`NoiseBiasActivation`).

    eq. 1 (modulation):   w'_ijk = s_i * w_ijk,  s = affine(w) (bias init 1)
    eq. 3 (demodulation): w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk^2 + eps)

    ``mode`` chooses between two implementations of the same function:
    "per_sample_weights" builds every example's weights and runs one grouped
    convolution over the batch (the textbook form); "input_scaling" uses the
    identity conv(x, s * w) = conv(s * x, w) and scales the output channels by
    the demodulation coefficients, so one ordinary convolution with the shared
    weights serves the whole batch (StyleGAN2's ``fused_modconv=False`` path).
    """

    MODES = ("input_scaling", "per_sample_weights")

    def __init__(self, filters, kernel_size, w_index, *, demodulate=True, up=False,
                 mode="input_scaling", seed=None, aggregation="none", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"unknown modconv mode {mode!r}; known: {self.MODES}")
        self.filters, self.kernel_size, self.w_index = int(filters), int(kernel_size), int(w_index)
        self.demodulate, self.up, self.mode = demodulate, up, mode
        self.seed, self.aggregation = seed, aggregation

    def build(self, input_shapes):
        x_shape, ws_shape = input_shapes
        in_channels = int(x_shape[-1])
        self.weight_gain = 1.0 / math.sqrt(self.kernel_size ** 2 * in_channels)
        # The style affine A of fig. 2: w [b, w_dim] -> s [b, in], bias init 1 so s ~ 1.
        self.affine = EqualizedDense(in_channels, bias_init=1.0, activate=False,
                                     seed=None if self.seed is None else self.seed + 7919,
                                     aggregation=self.aggregation, name="affine")
        self.affine.build(ws_shape[:1] + ws_shape[2:])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, self.kernel_size, in_channels, self.filters),
            initializer=_normal(self.seed), aggregation=self.aggregation)

    def styles(self, ws):
        """s = A(w): [b, in]."""
        return self.affine(ws[:, self.w_index])

    def call(self, inputs):
        x, ws = inputs
        styles = self.styles(ws)                        # [b, in]
        weight = self.kernel * self.weight_gain          # [k, k, in, out]
        if self.mode == "input_scaling":
            return self._input_scaling(x, styles, weight)
        return self._per_sample_weights(x, styles, weight)

    def _input_scaling(self, x, styles, weight):
        x = x * styles[:, None, None, :]                 # modulate the inputs (eq. 1)
        if self.up:
            x = upsample(x)
        y = tf.nn.conv2d(x, weight, 1, "SAME")           # [b, H, W, out]
        if self.demodulate:
            # sigma_j = sqrt(sum_{i,k} (s_i w_ijk)^2) = sqrt(s^2 @ sum_k w^2)   (eq. 2)
            sigma2 = tf.matmul(tf.square(styles), tf.reduce_sum(tf.square(weight), [0, 1]))
            y = y * tf.math.rsqrt(sigma2 + 1e-8)[:, None, None, :]
        return y

    def _per_sample_weights(self, x, styles, weight):
        batch = tf.shape(x)[0]
        k, cin, cout = self.kernel_size, weight.shape[2], self.filters
        w = weight[None] * styles[:, None, None, :, None]          # [b, k, k, in, out]
        if self.demodulate:
            w = w * tf.math.rsqrt(tf.reduce_sum(tf.square(w), [1, 2, 3], keepdims=True) + 1e-8)
        if self.up:
            x = upsample(x)
        height, width = x.shape[1], x.shape[2]
        # Batch into channels: one grouped convolution, group g = example g.
        x = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, height, width, -1])  # [1, H, W, b*in]
        w = tf.reshape(tf.transpose(w, [1, 2, 3, 0, 4]), [k, k, cin, -1])      # [k, k, in, b*out]
        y = tf.nn.conv2d(x, w, 1, "SAME")                                      # [1, H, W, b*out]
        y = tf.reshape(y, [height, width, batch, cout])
        return tf.transpose(y, [2, 0, 1, 3])

    def compute_output_shape(self, input_shapes):
        x_shape = input_shapes[0]
        scale = 2 if self.up else 1
        spatial = [None if d is None else d * scale for d in x_shape[1:3]]
        return (x_shape[0], *spatial, self.filters)


class NoiseBiasActivation(keras.layers.Layer):
    """x + strength * noise + bias, then lrelu (StyleGAN2 fig. 2d, "B" and "b").

    Inputs: x [b, H, W, C], noise [b, H, W, 1] (per-pixel, shared over channels);
    ``strength`` is learned per layer and starts at 0.
    """

    def __init__(self, *, use_noise=True, activate=True, aggregation="none", **kwargs):
        super().__init__(**kwargs)
        self.use_noise, self.activate, self.aggregation = use_noise, activate, aggregation

    def build(self, input_shapes):
        x_shape = input_shapes[0] if self.use_noise else input_shapes
        if self.use_noise:
            self.strength = self.add_weight(name="noise_strength", shape=(), initializer="zeros",
                                            aggregation=self.aggregation)
        self.bias = self.add_weight(name="bias", shape=(int(x_shape[-1]),), initializer="zeros",
                                    aggregation=self.aggregation)

    def call(self, inputs):
        if self.use_noise:
            x, noise = inputs
            x = x + self.strength * noise
        else:
            x = inputs
        x = x + self.bias
        return lrelu(x) if self.activate else x

    def compute_output_shape(self, input_shapes):
        return input_shapes[0] if self.use_noise else input_shapes


class ConstantInput(keras.layers.Layer):
    """The learned 4x4 constant that starts the synthesis network (StyleGAN, sec. 2).

    Input: ws [b, num_ws, w_dim] (only its batch size is used). Output [b, r, r, C].
    """

    def __init__(self, channels, resolution=4, *, seed=None, aggregation="none", **kwargs):
        super().__init__(**kwargs)
        self.channels, self.resolution = int(channels), int(resolution)
        self.seed, self.aggregation = seed, aggregation

    def build(self, input_shape):
        self.const = self.add_weight(
            name="const", shape=(1, self.resolution, self.resolution, self.channels),
            initializer=_normal(self.seed), aggregation=self.aggregation)

    def call(self, ws):
        return tf.tile(self.const, [tf.shape(ws)[0], 1, 1, 1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.resolution, self.resolution, self.channels)


class MinibatchStdDev(keras.layers.Layer):
    """Appends the minibatch standard deviation as extra feature maps.

    Karras et al. (2018), sec. 3, as generalised in StyleGAN2 (``mbstd_group_size``,
    ``mbstd_num_channels``): the batch is split into groups of ``group_size``
    *consecutive* examples (so a replica's slice holds whole groups and N
    replicas compute what one device does); within a group, the std of every
    feature is averaged over (H, W, C/F) into F numbers appended to each example.
    [b, H, W, C] -> [b, H, W, C + F].
    """

    def __init__(self, group_size=4, num_channels=1, **kwargs):
        super().__init__(**kwargs)
        self.group_size, self.num_channels = int(group_size), int(num_channels)

    def _group(self, x):
        batch = x.shape[0]
        if batch is not None:
            return math.gcd(int(batch), self.group_size)
        n = tf.shape(x)[0]
        g = tf.minimum(self.group_size, n)
        return tf.where(tf.equal(n % g, 0), g, 1)

    def call(self, x):
        _, height, width, channels = x.shape
        f = self.num_channels
        g = self._group(x)
        y = tf.reshape(x, [-1, g, height, width, f, channels // f])   # [n, G, H, W, F, c]
        y = y - tf.reduce_mean(y, axis=1, keepdims=True)
        y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=1) + 1e-8)       # [n, H, W, F, c]
        y = tf.reduce_mean(y, axis=[1, 2, 4])                          # [n, F]
        y = tf.repeat(y, g, axis=0)                                    # [b, F]
        y = tf.tile(y[:, None, None, :], [1, height, width, 1])        # [b, H, W, F]
        return tf.concat([x, y], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.num_channels)
