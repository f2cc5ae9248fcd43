"""Datasets read through TensorFlow Datasets (the path most users take).

``tfds.builder(name, data_dir=data_dir)``; ``download_and_prepare`` runs only
when the data is not prepared yet and ``download=True``; any failure there
(no network, missing optional dependency, ...) becomes :class:`TfdsUnavailable`
so the caller can try other offline copies and then explain what to
download.  Images are decoded, centre-cropped to a square (CelebA only: its
178x218 frames become 178x178), converted and resized per element, then
collected into uint8 numpy arrays.  CelebA has no class label: label 0 and
``class_names == ['face']``.
"""

import numpy as np
import tensorflow as tf

from data.catalog import CELEB_A_CLASS_NAMES
from data.errors import DatasetError
from data.raw import RawSplit
from data.transform import center_crop_square, check_channels, standardize

_BATCH = 512  # elements per numpy chunk while materialising


class TfdsUnavailable(DatasetError):
    """tfds has no prepared copy and could not (or was not allowed to) make one."""


def _builder(name: str, data_dir):
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise TfdsUnavailable(f"tensorflow_datasets is not installed ({error})") from error
    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as error:
        raise TfdsUnavailable(f"tfds.builder({name!r}) failed: {error}") from error


def prepare(name: str, data_dir, download: bool):
    """A builder whose data is prepared, or TfdsUnavailable saying why not."""
    builder = _builder(name, data_dir)
    if builder.is_prepared():
        return builder
    if not download:
        raise TfdsUnavailable(f"tfds has no prepared copy in {builder.data_dir} and "
                              f"download=False")
    try:
        builder.download_and_prepare()
    except Exception as error:  # network errors, missing extras, ...
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise TfdsUnavailable(f"tfds download_and_prepare failed ({type(error).__name__}: "
                              f"{first_line})") from error
    return builder


def load(name: str, builder, split: str, image_size: int, channels: int,
         limit: int | None = None) -> RawSplit:
    """Decode `split` of a prepared builder into uint8 [N, S, S, channels], int32 [N]."""
    features = builder.info.features
    check_channels(features["image"].shape[-1], f"tfds {name}")
    has_label = "label" in features
    class_names = list(features["label"].names) if has_label else list(CELEB_A_CLASS_NAMES)
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except Exception as error:
        raise DatasetError(f"tfds {name}: cannot read split {split!r} ({error})") from error
    if limit is not None:
        ds = ds.take(limit)

    def convert(example):  # dict -> (uint8 [S, S, channels], int32 [])
        image = example["image"]
        if name == "celeb_a":
            image = center_crop_square(image)
        image = standardize(image, image_size, channels)
        label = tf.cast(example["label"], tf.int32) if has_label else tf.constant(0, tf.int32)
        return image, label

    ds = ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    images, labels = [], []
    for image_batch, label_batch in ds.batch(_BATCH).prefetch(2).as_numpy_iterator():
        images.append(image_batch)
        labels.append(label_batch)
    if not images:
        raise DatasetError(f"tfds {name}: split {split!r} is empty")
    version = f"{name}:{builder.info.version}"
    return RawSplit(np.concatenate(images), np.concatenate(labels), class_names,
                    f"tfds {version} (data_dir={builder.data_dir})")
