"""Differentiable augmentations for the discriminator's inputs.

Both pipelines are pure functions of the images and of per-example random numbers
drawn by the caller (the model draws them with its stateless ``uniform`` /
``normal``, so a run stays a function of seed and step). Every op is
differentiable with respect to the images: the generator is trained through them.

* :func:`diff_augment`: DiffAugment (Zhao, Liu, Lin, Zhu & Han 2020,
  "Differentiable Augmentation for Data-Efficient GAN Training", sec. 3 and
  their reference policy): colour (brightness, saturation, contrast),
  translation (1/8 of the image, zero fill), cutout (a square of half the size).
* :func:`ada_augment`: the "bgc" pipeline of adaptive discriminator augmentation
  (Karras, Aittala, Hellsten, Laine, Lehtinen & Aila 2020, "Training Generative
  Adversarial Networks with Limited Data", sec. 2.3 and appendix B): pixel
  blitting (x-flip, 90-degree rotations, integer translation), general geometric
  transforms (isotropic scaling, rotation, anisotropic scaling, fractional
  translation) and colour transforms (brightness, contrast, luma flip, hue
  rotation, saturation), each applied to each example with probability p.
  The geometric ops are folded into one inverse affine matrix and applied by a
  single bilinear resampling with reflection at the borders; the colour ops into
  one 4x4 matrix. (ADA's anti-aliasing upsampling filter is left out.)
* :func:`ada_adjust`: ADA's update of p from the overfitting heuristic r_t.
* :class:`AdaptiveAugmentation`: ADA's state (p and its accumulators) and its update,
  mixed into the GAN and face-GAN models.

Shared by the GAN family (both pipelines) and thesis 003's face GAN (ADA).
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf

DIFFAUGMENT_OPS = ("color", "translation", "cutout")
#: Per-example uniforms :func:`diff_augment` reads: colour 3, translation 2, cutout 2.
DIFFAUGMENT_UNIFORMS = 7
#: Per-example random numbers :func:`ada_augment` reads.
ADA_UNIFORMS = 21
ADA_NORMALS = 7


class _Columns:
    """Hands out successive columns [b] of a per-example random tensor [b, K]."""

    def __init__(self, values):
        self.values, self.next = values, 0

    def __call__(self):
        if self.next >= self.values.shape[1]:
            raise ValueError(f"an augmentation needs more than {self.values.shape[1]} "
                             f"random numbers per example")
        column = self.values[:, self.next]
        self.next += 1
        return column


def parse_policy(policy: str) -> tuple:
    """"color,translation" -> ("color", "translation"); unknown ops are errors."""
    ops = tuple(op.strip() for op in policy.split(",") if op.strip())
    unknown = sorted(set(ops) - set(DIFFAUGMENT_OPS))
    if unknown:
        raise ValueError(f"unknown DiffAugment op(s) {unknown}; known: {DIFFAUGMENT_OPS}")
    return ops


# ------------------------------------------------------------------ DiffAugment
def _shift_matrices(shift, size):
    """One-hot [b, size, size] with M[i, j] = 1 iff j = i - shift (zero fill)."""
    rows = tf.range(size, dtype=tf.float32)
    source = rows[None, :, None] - shift[:, None, None]           # [b, size, 1]
    return tf.cast(tf.equal(rows[None, None, :], source), tf.float32)


def translate(images, dy, dx):
    """Shift each image by integer (dy, dx) pixels [b], filling with zeros."""
    _, height, width, _ = images.shape
    rows = _shift_matrices(dy, height)                              # [b, H, H]
    cols = _shift_matrices(dx, width)                               # [b, W, W]
    out = tf.einsum("bij,bjwc->biwc", rows, images)
    return tf.einsum("bkw,bhwc->bhkc", cols, out)


def cutout(images, cy, cx, size):
    """Zero a size x size square centred at integer (cy, cx) [b] (clipped at borders)."""
    _, height, width, _ = images.shape
    ys = tf.range(height, dtype=tf.float32)[None, :] - cy[:, None] + size // 2   # [b, H]
    xs = tf.range(width, dtype=tf.float32)[None, :] - cx[:, None] + size // 2    # [b, W]
    inside_y = tf.cast((ys >= 0) & (ys < size), tf.float32)
    inside_x = tf.cast((xs >= 0) & (xs < size), tf.float32)
    mask = 1.0 - inside_y[:, :, None] * inside_x[:, None, :]                     # [b, H, W]
    return images * mask[..., None]


def _uniform_int(u, low, high):
    """An integer in [low, high] from u in [0, 1), as float: [b]."""
    return tf.minimum(tf.floor(u * (high - low + 1)) + low, high)


def diff_augment(images, policy, uniforms, translation_ratio=0.125, cutout_ratio=0.5):
    """DiffAugment(images) with the ops of ``policy`` (a tuple from :func:`parse_policy`).

    images [b, H, W, C] in [-1, 1]; uniforms [b, DIFFAUGMENT_UNIFORMS] in [0, 1).
    """
    u = _Columns(uniforms)
    _, height, width, _ = images.shape
    x = images
    if "color" in policy:
        brightness, saturation, contrast = u(), u(), u()
        x = x + (brightness - 0.5)[:, None, None, None]
        mean_c = tf.reduce_mean(x, axis=3, keepdims=True)
        x = (x - mean_c) * (2.0 * saturation)[:, None, None, None] + mean_c
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - mean) * (contrast + 0.5)[:, None, None, None] + mean
    else:
        u(), u(), u()
    if "translation" in policy:
        sy, sx = int(height * translation_ratio + 0.5), int(width * translation_ratio + 0.5)
        x = translate(x, _uniform_int(u(), -sy, sy), _uniform_int(u(), -sx, sx))
    else:
        u(), u()
    if "cutout" in policy:
        size = int(min(height, width) * cutout_ratio + 0.5)
        x = cutout(x, _uniform_int(u(), 0, height - 1), _uniform_int(u(), 0, width - 1), size)
    return x


# ------------------------------------------------------------------------- ADA
def _eye(batch, n):
    return tf.eye(n, batch_shape=[batch])


def _matrices(rows):
    """Stack a nested list of [b] tensors / floats into [b, n, n]."""
    batch_ref = next(v for row in rows for v in row if isinstance(v, tf.Tensor))
    ones = tf.ones_like(batch_ref)
    return tf.stack([tf.stack([v * ones for v in row], axis=-1) for row in rows], axis=-2)


def _translate2d(tx, ty):
    return _matrices([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def _scale2d(sx, sy):
    return _matrices([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])


def _rotate2d(theta):
    c, s = tf.cos(theta), tf.sin(theta)
    return _matrices([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _exp2(x):
    return tf.pow(2.0, x)


def _gate(u, probability, value, identity):
    """value where u < probability else identity (per example)."""
    return tf.where(u < probability, value, identity)


def ada_geometric_inverse(p, u, n, height, width):
    """The inverse 2-D transform [b, 3, 3] (pixel units, origin at the image centre)
    mapping output pixels to input pixels: G^-1 = T_1^-1 @ T_2^-1 @ ... (ADA, app. B)."""
    batch = tf.shape(u.values)[0]
    g = _eye(batch, 3)
    zero, one = tf.zeros([batch]), tf.ones([batch])
    # x-flip: scale x by 1 - 2i, i in {0, 1}.
    i = _gate(u(), p, tf.floor(u() * 2.0), zero)
    g = g @ _scale2d(1.0 - 2.0 * i, one)
    # 90-degree rotations: k in {0, 1, 2, 3}.
    k = _gate(u(), p, tf.floor(u() * 4.0), zero)
    g = g @ _rotate2d(-k * (math.pi / 2))
    # integer translation, up to 1/8 of the image, rounded to whole pixels.
    gate = u()
    tx = _gate(gate, p, tf.round((u() * 2.0 - 1.0) * 0.125 * width), zero)
    ty = _gate(gate, p, tf.round((u() * 2.0 - 1.0) * 0.125 * height), zero)
    g = g @ _translate2d(-tx, -ty)
    # isotropic scaling: lognormal, std 0.2 octaves.
    s = _gate(u(), p, _exp2(n() * 0.2), one)
    g = g @ _scale2d(1.0 / s, 1.0 / s)
    # rotation before and after the anisotropic scaling, each with 1 - sqrt(1 - p).
    p_rot = 1.0 - tf.sqrt(tf.maximum(1.0 - p, 0.0))
    theta = _gate(u(), p_rot, (u() * 2.0 - 1.0) * math.pi, zero)
    g = g @ _rotate2d(-theta)
    a = _gate(u(), p, _exp2(n() * 0.2), one)
    g = g @ _scale2d(1.0 / a, a)
    theta = _gate(u(), p_rot, (u() * 2.0 - 1.0) * math.pi, zero)
    g = g @ _rotate2d(-theta)
    # fractional translation: normal, std 1/8 of the image.
    gate = u()
    fx = _gate(gate, p, n() * 0.125 * width, zero)
    fy = _gate(gate, p, n() * 0.125 * height, zero)
    return g @ _translate2d(-fx, -fy)


def _reflect(coord, size):
    """Reflect continuous pixel coordinates into [0, size - 1] (mirror padding)."""
    period = 2.0 * (size - 1)
    c = tf.math.floormod(coord, period)
    return (size - 1) - tf.abs(c - (size - 1))


def resample(images, g_inv):
    """Bilinear resampling: out[y, x] = images[g_inv @ (x, y, 1)] with reflection.

    images [b, H, W, C]; g_inv [b, 3, 3] in centred pixel coordinates.
    Differentiable with respect to the images (a gather and a weighted sum).
    """
    _, height, width, channels = images.shape
    ys, xs = tf.meshgrid(tf.range(height, dtype=tf.float32) - (height - 1) / 2.0,
                         tf.range(width, dtype=tf.float32) - (width - 1) / 2.0, indexing="ij")
    grid = tf.stack([tf.reshape(xs, [-1]), tf.reshape(ys, [-1]), tf.ones([height * width])])
    src = tf.einsum("bij,jn->bin", g_inv, grid)                       # [b, 3, HW]
    sx = _reflect(src[:, 0] + (width - 1) / 2.0, width)               # [b, HW]
    sy = _reflect(src[:, 1] + (height - 1) / 2.0, height)
    x0, y0 = tf.floor(sx), tf.floor(sy)
    wx, wy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0 = tf.clip_by_value(x0, 0.0, width - 1.0)
    y0 = tf.clip_by_value(y0, 0.0, height - 1.0)
    x1, y1 = tf.minimum(x0 + 1.0, width - 1.0), tf.minimum(y0 + 1.0, height - 1.0)
    flat = tf.reshape(images, [-1, height * width, channels])

    def pick(yy, xx):
        return tf.gather(flat, tf.cast(yy * width + xx, tf.int32), batch_dims=1)  # [b, HW, C]

    out = ((1 - wy) * ((1 - wx) * pick(y0, x0) + wx * pick(y0, x1))
           + wy * ((1 - wx) * pick(y1, x0) + wx * pick(y1, x1)))
    return tf.reshape(out, [-1, height, width, channels])


def ada_color_matrix(p, u, n):
    """The 4x4 colour transform [b, 4, 4] acting on (r, g, b, 1) (ADA, app. B)."""
    batch = tf.shape(u.values)[0]
    c = _eye(batch, 4)
    zero, one = tf.zeros([batch]), tf.ones([batch])
    luma = tf.constant([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3.0)        # the luma axis v
    vv = tf.tensordot(luma, luma, axes=0)                              # v v^T [4, 4]
    # brightness: add N(0, 0.2^2).
    b = _gate(u(), p, n() * 0.2, zero)
    c = _matrices([[1.0, 0.0, 0.0, b], [0.0, 1.0, 0.0, b], [0.0, 0.0, 1.0, b],
                   [0.0, 0.0, 0.0, 1.0]]) @ c
    # contrast: scale by lognormal, std 0.5 octaves.
    s = _gate(u(), p, _exp2(n() * 0.5), one)
    c = _matrices([[s, 0.0, 0.0, 0.0], [0.0, s, 0.0, 0.0], [0.0, 0.0, s, 0.0],
                   [0.0, 0.0, 0.0, 1.0]]) @ c
    # luma flip: Householder reflection I - 2 v v^T, i in {0, 1}.
    i = _gate(u(), p, tf.floor(u() * 2.0), zero)
    c = (tf.eye(4)[None] - 2.0 * vv[None] * i[:, None, None]) @ c
    # hue rotation about v by theta in [-pi, pi] (Rodrigues).
    theta = _gate(u(), p, (u() * 2.0 - 1.0) * math.pi, zero)
    cos, sin = tf.cos(theta)[:, None, None], tf.sin(theta)[:, None, None]
    # [v]_x, the cross-product matrix of v = (1, 1, 1) / sqrt(3).
    k = tf.constant([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) / math.sqrt(3.0)
    rot3 = cos * tf.eye(3)[None] + sin * k[None] + (1.0 - cos) * vv[None, :3, :3]
    rot = tf.concat([tf.concat([rot3, tf.zeros([batch, 3, 1])], 2),
                     tf.tile(tf.constant([[[0.0, 0.0, 0.0, 1.0]]]), [batch, 1, 1])], 1)
    c = rot @ c
    # saturation: scale the chroma plane by lognormal, std 1 octave.
    s = _gate(u(), p, _exp2(n() * 1.0), one)
    c = (vv[None] + (tf.eye(4)[None] - vv[None]) * s[:, None, None]) @ c
    return c


def apply_color(images, c):
    """y = C[:3, :3] x + C[:3, 3] per pixel; grey images use the mean gain and offset."""
    if images.shape[-1] == 3:
        return tf.einsum("bij,bhwj->bhwi", c[:, :3, :3], images) + c[:, None, None, :3, 3]
    gain = tf.reduce_mean(c[:, :3, :3], axis=[1, 2])
    offset = tf.reduce_mean(c[:, :3, 3], axis=1)
    return images * gain[:, None, None, None] + offset[:, None, None, None]


def ada_augment(images, p, uniforms, normals):
    """ADA's "bgc" augmentation with probability p (a scalar in [0, 1]).

    images [b, H, W, C] in [-1, 1]; uniforms [b, ADA_UNIFORMS] in [0, 1);
    normals [b, ADA_NORMALS] ~ N(0, 1). With p = 0 the output equals the input
    (up to float rounding of the identity resampling).
    """
    _, height, width, _ = images.shape
    u, n = _Columns(uniforms), _Columns(normals)
    p = tf.cast(p, tf.float32)
    g_inv = ada_geometric_inverse(p, u, n, height, width)
    c = ada_color_matrix(p, u, n)
    return apply_color(resample(images, g_inv), c)


# ADA's controller (Karras et al. 2020b, sec. 3): every N steps,
# r_t = E[sign(D_train)] over those steps, and p moves by
# sign(r_t - target) * (batch * N) / (ada_kimg * 1000), clipped to [0, 1], so p
# can go from 0 to 1 in ada_kimg thousand images (500k in the paper).
def ada_adjust(p, sign_sum, count, target, images_per_update, ada_kimg):
    """The new p from the accumulated sum of sign(D(real)) over ``count`` images."""
    r_t = sign_sum / tf.maximum(count, 1.0)
    step = tf.sign(r_t - target) * images_per_update / (ada_kimg * 1000.0)
    return tf.clip_by_value(p + step, 0.0, 1.0)


class AdaptiveAugmentation:
    """ADA's state and update for a ``GenerativeModel`` whose config has ``ada_target``,
    ``ada_interval`` and ``ada_kimg`` (mixed in before ``GenerativeModel``).

    The state is three float variables of the model, ``ada_p``, ``ada_sign_sum`` and
    ``ada_count`` (attributes of the model, so checkpoints name them so), made by
    :meth:`make_ada_state` and saved with the model's checkpoint.
    """

    def make_ada_state(self):
        """ADA's p and the running sum of sign(D(real)) (and its count) since the last
        update; one value on every replica ("only_first_replica")."""
        def state(name):
            return keras.Variable(0.0, dtype="float32", trainable=False, autocast=False,
                                  aggregation="only_first_replica", name=name)
        self.ada_p = state("ada_p")
        self.ada_sign_sum = state("ada_sign_sum")
        self.ada_count = state("ada_count")

    def update_ada(self, d_real):
        """Accumulate sign(D(real)) [b] over the global batch; every ``ada_interval``
        steps move p (:func:`ada_adjust`) and reset the accumulators. Every replica
        computes the same numbers (the signs are all-gathered)."""
        cfg = self.config
        # an output that overflowed (a float16 step its loss scaling skips) counts as 0,
        # so one such step cannot turn p into NaN for the rest of the run
        signs = tf.where(tf.math.is_finite(d_real), tf.sign(d_real), tf.zeros_like(d_real))
        sign_sum = self.ada_sign_sum + tf.reduce_sum(self.gather(signs))
        count = self.ada_count + float(self.global_batch_size)
        update = tf.equal((self.step_counter + 1) % cfg.ada_interval, 0)
        p = tf.convert_to_tensor(self.ada_p)
        new_p = ada_adjust(p, sign_sum, count, cfg.ada_target,
                           float(self.global_batch_size * cfg.ada_interval), cfg.ada_kimg)
        self.ada_p.assign(tf.where(update, new_p, p))
        self.ada_sign_sum.assign(tf.where(update, 0.0, sign_sum))
        self.ada_count.assign(tf.where(update, 0.0, count))
