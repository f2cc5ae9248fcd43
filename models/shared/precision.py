"""Mixed precision inside a family's step: the precision a model was built in, dynamic
loss scaling for float16, and the float32 boundary of losses, logs and samples.

A model is built under a Keras dtype policy that the trainer sets for the build and
restores afterwards (``training.runtime.precision_policy``): ``float32``,
``mixed_bfloat16`` or ``mixed_float16``. Under a mixed policy every layer the model
builds computes in bfloat16 / float16 and keeps its weights in float32 (Keras
autocasts the weights inside a layer's call); the model reads its precision from its
own policy (:func:`precision_of`), never from a global of the suite. What stays
float32 whatever the policy:

- the weights, hence the optimiser slots and the EMA copies (float32 variables);
- the normalisation statistics (Keras' GroupNormalization and LayerNormalization
  compute their moments in float32 for half-precision inputs; the GAN's
  minibatch-stddev does so explicitly);
- the losses and the logs: every network output is cast to float32 (:func:`to_float32`)
  before a loss reads it, and ``GenerativeModel.replica_mean/replica_share`` cast too;
- the samples (``generate`` returns float32 images).

float16 (5 exponent bits) needs loss scaling: :func:`loss_scaled` wraps an optimiser in
Keras 3's ``keras.optimizers.LossScaleOptimizer`` (dynamic: initial scale 2^15,
doubled after 2000 finite steps, halved on an overflow, whose step is skipped: no
weight, slot or iteration moves). A step multiplies its loss by :func:`loss_scale`
before differentiating and hands the scaled gradients to the optimiser (which unscales
them), through :func:`agree_on_overflow` so that every replica skips the same steps.
bfloat16 has float32's exponent range and is not scaled.
"""
from __future__ import annotations

import keras
import tensorflow as tf

#: Keras dtype policy -> the suite's precision name
POLICY_PRECISIONS = {"float32": "float32", "mixed_bfloat16": "bfloat16",
                     "mixed_float16": "float16"}


def precision_of(policy) -> str:
    """The suite's precision name of a Keras dtype policy (or policy name)."""
    name = getattr(policy, "name", policy)
    if name not in POLICY_PRECISIONS:
        raise ValueError(f"the dtype policy {name!r} is not one the suite trains in; known: "
                         f"{', '.join(POLICY_PRECISIONS)} (set by training.runtime."
                         f"precision_policy)")
    return POLICY_PRECISIONS[name]


def to_float32(x):
    """A network output (or a nested structure of them) as float32; integer tensors and
    float32 ones are returned as they are (the cast is then no op at all)."""
    def cast(t):
        t = tf.convert_to_tensor(t)
        return tf.cast(t, tf.float32) if t.dtype in (tf.float16, tf.bfloat16) else t
    return tf.nest.map_structure(cast, x)


def _scaler(optimizer):
    """The LossScaleOptimizer inside ``optimizer`` (itself, or an extragradient's base)."""
    for candidate in (optimizer, getattr(optimizer, "base", None)):
        if isinstance(candidate, keras.optimizers.LossScaleOptimizer):
            return candidate
    return None


def loss_scaled(optimizer, precision: str):
    """``optimizer`` with dynamic loss scaling when ``precision`` is float16, else as it
    is. An extragradient wrapper (``common.optimizers.Extragradient``) keeps its place:
    its base optimiser is wrapped, so the look-ahead and the update are both scaled."""
    if precision != "float16":
        return optimizer
    if hasattr(optimizer, "base") and hasattr(optimizer, "extrapolate"):
        optimizer.base = keras.optimizers.LossScaleOptimizer(optimizer.base)
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def loss_scale(optimizer):
    """The current loss scale of ``optimizer`` (a float32 tensor), or None when it does
    not scale: a step computes the gradients of ``scale_loss(loss, loss_scale(opt))``."""
    scaler = _scaler(optimizer)
    if scaler is None:
        return None
    return tf.convert_to_tensor(scaler.dynamic_scale) if scaler.built else \
        tf.constant(float(scaler.initial_scale), tf.float32)


def scale_loss(loss, scale):
    """loss * scale (scale None: the loss itself, the float32 graph unchanged)."""
    return loss if scale is None else loss * tf.cast(scale, loss.dtype)


def current_scale(optimizer) -> float | None:
    """The loss scale as a Python float (None: not scaled); for logs and tests."""
    scale = loss_scale(optimizer)
    return None if scale is None else float(scale)


def agree_on_overflow(optimizer, grads):
    """The gradients a loss-scaled optimiser may apply: when any replica's are not finite,
    every replica's become NaN, so that every replica skips the step (Keras'
    LossScaleOptimizer decides from the first replica's gradients alone). Unscaled
    optimisers and single replicas get ``grads`` back unchanged."""
    if _scaler(optimizer) is None:
        return grads
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return grads
    finite = [tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None]
    bad = tf.cast(tf.logical_not(tf.reduce_all(tf.stack(finite))), tf.float32)
    bad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, bad)
    poison = tf.where(bad > 0, tf.constant(float("nan")), tf.constant(1.0))
    return [None if g is None else g * tf.cast(poison, g.dtype) for g in grads]
