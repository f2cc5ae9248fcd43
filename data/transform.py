"""Image standardisation shared by every source.

All sources hand over uint8 images with 1 (gray) or 3 (RGB) channels; this
module brings them to ``image_size x image_size x channels`` uint8:

* gray -> RGB repeats the channel; RGB -> gray uses ITU-R 601 luma weights;
* resizing is bilinear with antialiasing (``tf.image.resize``; when
  enlarging, plain bilinear, which is the same filter), then rounded and
  clipped back to uint8;
* images already at the target size are passed through untouched.
"""

import numpy as np
import tensorflow as tf

from data.errors import DatasetError

_LUMA = (0.299, 0.587, 0.114)
_CHUNK = 2048  # images per tf call when standardising numpy arrays


def check_channels(num_channels, what: str) -> None:
    """Refuse images that are neither gray (1) nor RGB (3)."""
    if num_channels not in (1, 3):
        raise DatasetError(f"{what}: images have {num_channels} channels; only 1 (gray) or "
                           f"3 (RGB) channels are supported: convert the images first")


def center_crop_square(image: tf.Tensor) -> tf.Tensor:
    """[..., H, W, C] -> [..., S, S, C] with S = min(H, W), centred."""
    shape = tf.shape(image)
    h, w = image.shape[-3], image.shape[-2]
    if h is None or w is None:  # dynamic shapes
        h, w = shape[-3], shape[-2]
        side = tf.minimum(h, w)
    else:
        side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[..., top:top + side, left:left + side, :]


def standardize(images: tf.Tensor, image_size: int, channels: int) -> tf.Tensor:
    """uint8 [..., H, W, C] (C in 1, 3) -> uint8 [..., image_size, image_size, channels]."""
    in_channels = images.shape[-1]
    h, w = images.shape[-3], images.shape[-2]
    need_resize = h != image_size or w != image_size  # also True for unknown (None) sizes
    need_gray = in_channels == 3 and channels == 1
    if need_resize or need_gray:
        x = tf.cast(images, tf.float32)
        if need_gray:
            x = tf.reduce_sum(x * tf.constant(_LUMA), axis=-1, keepdims=True)
        if need_resize:
            # Antialiasing only changes anything when shrinking (for enlarging, TF's
            # antialiased kernel equals plain bilinear but runs ~10x slower).
            shrink = h is None or w is None or h > image_size or w > image_size
            x = tf.image.resize(x, [image_size, image_size], method="bilinear",
                                antialias=shrink)
        images = tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8)
    if in_channels == 1 and channels == 3:
        images = tf.repeat(images, 3, axis=-1)
    return images


def standardize_array(images: np.ndarray, image_size: int, channels: int, what: str) -> np.ndarray:
    """Numpy version of :func:`standardize` for whole splits: uint8 [N, H, W, C] in,
    uint8 [N, image_size, image_size, channels] out (processed in chunks)."""
    if images.ndim != 4:
        raise DatasetError(f"{what}: expected images of shape [N, H, W, C], got {images.shape}")
    check_channels(images.shape[-1], what)
    if images.dtype != np.uint8:
        raise DatasetError(f"{what}: expected uint8 pixels, got {images.dtype}")
    if images.shape[1:] == (image_size, image_size, channels):
        return images
    with tf.device("/CPU:0"):
        parts = [standardize(tf.constant(images[i:i + _CHUNK]), image_size, channels).numpy()
                 for i in range(0, len(images), _CHUNK)]
    if not parts:
        return np.zeros((0, image_size, image_size, channels), np.uint8)
    return np.concatenate(parts, axis=0)
