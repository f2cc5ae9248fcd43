"""StyleGAN2's building blocks as Keras layers (Karras et al. 2020, "Analyzing and
Improving the Image Quality of StyleGAN", CVPR; referred to below as "StyleGAN2").

Every weighted layer uses the equalised learning rate of Karras et al. (2018,
"Progressive Growing of GANs", sec. 4.1): weights are stored as N(0, 1) / lr_mul
and scaled by lr_mul / sqrt(fan_in) at run time, so Adam's step is the same size
for every layer. All weights take an explicit initialiser seed (a run is a pure
function of its seed) and an ``aggregation`` (the EMA copy of the generator is
updated inside the replica step, which needs "only_first_replica").

Activation gains are folded into the weights: StyleGAN2's activation is
sqrt(2) * lrelu(z), and since lrelu(c z) = c lrelu(z) for c > 0, every layer
computes lrelu(c * z) with c (the sqrt(2), and the residual 1/sqrt(2) of the
discriminator) multiplied into its kernel and bias scales: the same function,
one pass over the activations fewer per layer.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf

#: Leaky ReLU slope and the gain that restores unit variance after it (StyleGAN2's
#: ``bias_act`` defaults: alpha 0.2, gain sqrt(2)).
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


@tf.custom_gradient
def leaky_relu(x):
    """leaky_relu(x, 0.2) whose gradient reads the *output* (sign(y) = sign(x)).

    TF's own gradient reads the input, which grappler's remapper fuses away into
    a fused conv + bias + activation; with the double backprop of the gradient
    penalties it then fails ("fanout ... exist for missing node"). tf.maximum
    avoids that but its gradient (GreaterEqual + 2 SelectV2) costs ~4 passes.
    """
    y = tf.nn.leaky_relu(x, LRELU_SLOPE)
    # The slope's derivative is 0 almost everywhere: stop_gradient says so, and keeps
    # a second-order backprop from differentiating the forward LeakyRelu op again.
    slope_source = tf.stop_gradient(y)

    def grad(dy):
        return tf.raw_ops.LeakyReluGrad(gradients=dy, features=slope_source, alpha=LRELU_SLOPE)
    return y, grad


def conv2d(x, kernel, dtype="float32"):
    """'same' stride-1 convolution computed in ``dtype`` ("float32" or "bfloat16";
    the result has x's dtype either way, weights stay float32: mixed precision).
    bfloat16 runs on oneDNN's AMX / AVX512-BF16 kernels, 2-3x faster on CPUs that
    have them (and the TPU's native matmul precision). "float32" means "the layer's
    own compute dtype": under a run's mixed precision policy (``--precision``) x and
    the kernel already arrive in bfloat16 / float16."""
    if dtype == "float32":
        return tf.nn.conv2d(x, kernel, 1, "SAME")
    return tf.cast(tf.nn.conv2d(tf.cast(x, dtype), tf.cast(kernel, dtype), 1, "SAME"), x.dtype)


def _normal(seed):
    return keras.initializers.RandomNormal(0.0, 1.0, seed=seed)


class EqualizedDense(keras.layers.Layer):
    """y = act(scale * (x @ (W * lr_mul / sqrt(fan_in)) + b * lr_mul)): [b, in] -> [b, units].

    act = sqrt(2) * lrelu when ``activate`` (its gain folded into the scales).
    """

    def __init__(self, units, *, lr_mul=1.0, bias_init=0.0, activate=True, scale=1.0, seed=None,
                 aggregation="none", **kwargs):
        super().__init__(**kwargs)
        self.units, self.lr_mul, self.bias_init = int(units), float(lr_mul), float(bias_init)
        self.activate, self.seed, self.aggregation = activate, seed, aggregation
        self.pre_gain = float(scale) * (LRELU_GAIN if activate else 1.0)

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
        y = (tf.matmul(x, self.kernel * (self.weight_gain * self.pre_gain))
             + self.bias * (self.lr_mul * self.pre_gain))
        return leaky_relu(y) if self.activate else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)


class EqualizedConv2D(keras.layers.Layer):
    """Equalised-lr 'same' convolution: y = act(scale * (conv(x, W / sqrt(fan_in)) + b)).

    [b, H, W, in] -> [b, H, W, filters]; act = sqrt(2) * lrelu when ``activate``.
    """

    def __init__(self, filters, kernel_size, *, use_bias=True, activate=True, scale=1.0,
                 seed=None, aggregation="none", conv_dtype="float32", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.conv_dtype = int(filters), int(kernel_size), conv_dtype
        self.use_bias, self.activate, self.seed, self.aggregation = (
            use_bias, activate, seed, aggregation)
        self.pre_gain = float(scale) * (LRELU_GAIN if activate else 1.0)

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
        y = conv2d(x, self.kernel * (self.weight_gain * self.pre_gain), self.conv_dtype)
        if self.bias is not None:
            y = y + self.bias * self.pre_gain
        return leaky_relu(y) if self.activate else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)


def upsample(x):
    """[b, H, W, C] -> [b, 2H, 2W, C], bilinear.

    StyleGAN2 upsamples with a transposed convolution followed by the [1, 3, 3, 1]
    FIR filter; bilinear x2 interpolation with half-pixel centres *is* that filter
    applied to the zero-stuffed image (up to the border rows), at a lower cost.
    """
    height, width = x.shape[1], x.shape[2]
    # (resize returns float32 for any input: back to x's dtype under mixed precision)
    return tf.cast(tf.image.resize(x, [2 * height, 2 * width], method="bilinear"), x.dtype)


def downsample(x):
    """[b, H, W, C] -> [b, H/2, W/2, C] by 2x2 averaging (StyleGAN2 blurs with
    [1, 3, 3, 1] before a stride-2 conv; the box filter is its cheaper cousin)."""
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


class ModulatedConv2D(keras.layers.Layer):
    """StyleGAN2's modulated (and demodulated) convolution, sec. 2.2, eqs. 1-3.

    Inputs: x [b, H, W, in] and the style vectors ws [b, num_ws, w_dim]; this
    layer reads ws[:, w_index]. Output [b, H', W', filters] (H' = 2H with
    ``up``), times ``output_gain`` (the folded activation gain of the
    :class:`NoiseBiasActivation` that follows). No bias, noise or activation.

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
                 output_gain=1.0, mode="input_scaling", seed=None, aggregation="none",
                 conv_dtype="float32", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"unknown modconv mode {mode!r}; known: {self.MODES}")
        self.filters, self.kernel_size, self.w_index = int(filters), int(kernel_size), int(w_index)
        self.demodulate, self.up, self.mode = demodulate, up, mode
        self.output_gain = float(output_gain)
        self.seed, self.aggregation, self.conv_dtype = seed, aggregation, conv_dtype

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
        if not self.demodulate:
            return conv2d(x, weight * self.output_gain, self.conv_dtype)
        y = conv2d(x, weight, self.conv_dtype)           # [b, H, W, out]
        # sigma_j = sqrt(sum_{i,k} (s_i w_ijk)^2) = sqrt(s^2 @ sum_k w^2)   (eq. 2)
        sigma2 = tf.matmul(tf.square(styles), tf.reduce_sum(tf.square(weight), [0, 1]))
        return y * (self.output_gain * tf.math.rsqrt(sigma2 + 1e-8))[:, None, None, :]

    def _per_sample_weights(self, x, styles, weight):
        batch = tf.shape(x)[0]
        k, cin, cout = self.kernel_size, weight.shape[2], self.filters
        w = weight[None] * styles[:, None, None, :, None]          # [b, k, k, in, out]
        if self.demodulate:
            w = w * tf.math.rsqrt(tf.reduce_sum(tf.square(w), [1, 2, 3], keepdims=True) + 1e-8)
        w = w * self.output_gain
        if self.up:
            x = upsample(x)
        height, width = x.shape[1], x.shape[2]
        # Batch into channels: one grouped convolution, group g = example g.
        x = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, height, width, -1])  # [1, H, W, b*in]
        w = tf.reshape(tf.transpose(w, [1, 2, 3, 0, 4]), [k, k, cin, -1])      # [k, k, in, b*out]
        y = conv2d(x, w, self.conv_dtype)                                      # [1, H, W, b*out]
        y = tf.reshape(y, [height, width, batch, cout])
        return tf.transpose(y, [2, 0, 1, 3])

    def compute_output_shape(self, input_shapes):
        x_shape = input_shapes[0]
        scale = 2 if self.up else 1
        spatial = [None if d is None else d * scale for d in x_shape[1:3]]
        return (x_shape[0], *spatial, self.filters)


class NoiseBiasActivation(keras.layers.Layer):
    """x + strength * noise + bias, then sqrt(2) * lrelu (StyleGAN2 fig. 2d, "B", "b").

    Inputs: x [b, H, W, C], noise [b, H, W, 1] (per-pixel, shared over channels);
    ``strength`` is learned per layer and starts at 0. With ``activate`` the
    activation gain is folded in: the preceding modulated conv already scaled x
    by ``gain`` (its ``output_gain``) and here strength and bias are scaled by it.
    """

    def __init__(self, *, use_noise=True, activate=True, aggregation="none", **kwargs):
        super().__init__(**kwargs)
        self.use_noise, self.activate, self.aggregation = use_noise, activate, aggregation
        self.gain = LRELU_GAIN if activate else 1.0

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
            x = x + (self.strength * self.gain) * noise
        else:
            x = inputs
        x = x + self.bias * self.gain
        return leaky_relu(x) if self.activate else x

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
    [b, H, W, C] -> [b, H, W, C + F]. A batch the group size does not divide uses
    groups of gcd(batch, group_size) (StyleGAN2: min(group_size, batch)). With gradient
    accumulation the layer sees one micro-batch: the same groups as the whole batch
    when group_size divides the micro-batch, else smaller groups (StyleGAN2-ADA's
    ``batch_gpu`` rounds do the same). The statistics are computed in float32.
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
        # the statistics in float32 whatever the compute dtype (mixed precision)
        y = tf.reshape(tf.cast(x, tf.float32), [-1, g, height, width, f, channels // f])
        y = y - tf.reduce_mean(y, axis=1, keepdims=True)
        y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=1) + 1e-8)       # [n, H, W, F, c]
        y = tf.reduce_mean(y, axis=[1, 2, 4])                          # [n, F]
        y = tf.repeat(y, g, axis=0)                                    # [b, F]
        y = tf.tile(y[:, None, None, :], [1, height, width, 1])        # [b, H, W, F]
        return tf.concat([x, tf.cast(y, x.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.num_channels)
