"""Datasets read through TensorFlow Datasets (the path most users take).

``tfds.builder(name, data_dir=data_dir)``; ``download_and_prepare`` runs only
when the data is not prepared yet, ``download=True`` and the download host
answers within seconds (offline, tfds would retry for minutes); a failed
download's partial files are removed; any failure there
(no network, missing optional dependency, ...) becomes :class:`TfdsUnavailable`
so the caller can try other offline copies and then explain what to
download.  Images are decoded, centre-cropped to a square (CelebA only: its
178x218 frames become 178x178), converted and resized per element, then
collected into uint8 numpy arrays.  CelebA has no class label: label 0 and
``class_names == ['face']``.
"""

import os
import shutil
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import tensorflow as tf

from data.catalog import CELEB_A_CLASS_NAMES, CIFAR_URLS, IDX_BASE_URLS
from data.errors import DatasetError
from data.raw import RawSplit
from data.transform import check_channels, standardize

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
    # Offline, tfds retries each download for minutes before giving up: look first.
    host = DOWNLOAD_HOSTS.get(name)
    if host is not None and not reachable(*host):
        raise TfdsUnavailable(f"offline: {host[0]} cannot be reached, so nothing was "
                              f"downloaded")
    root = Path(builder.data_dir_root)
    before = _tree(root)
    try:
        builder.download_and_prepare()
    except Exception as error:  # network errors, missing extras, ...
        _remove_new(root, before)
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise TfdsUnavailable(f"tfds download_and_prepare failed ({type(error).__name__}: "
                              f"{first_line})") from error
    return builder


# Where tfds downloads each dataset from (host, port), probed before a download.
DOWNLOAD_HOSTS = {
    name: (urlparse(url).hostname, 443 if urlparse(url).scheme == "https" else 80)
    for name, url in {**CIFAR_URLS, **IDX_BASE_URLS}.items()
}
DOWNLOAD_HOSTS["celeb_a"] = ("drive.google.com", 443)
PROBE_SECONDS = 5.0


def reachable(host: str, port: int, timeout: float = PROBE_SECONDS) -> bool:
    """Whether a TCP connection to host:port opens within ``timeout`` seconds (name
    lookup included, which socket timeouts do not bound, hence the thread)."""
    outcome = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


def _tree(root: Path) -> set:
    return {Path(d) / f for d, dirs, files in os.walk(root) for f in [*dirs, *files]}


def _remove_new(root: Path, before: set) -> None:
    """Delete what a failed download left under ``root`` (partial and .tmp files, empty
    folders), deepest first; what was there before is kept."""
    for path in sorted(_tree(root) - before, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


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
        if name == "celeb_a":  # thesis 003: PIL crop box (0, 15, 178, 193), then an
            # antialiased Lanczos shrink (PIL's thumbnail filter), as data/celeba.py
            image = image[15:193, 0:178]
            image = tf.cast(tf.clip_by_value(tf.round(tf.image.resize(
                tf.cast(image, tf.float32), [image_size, image_size], method="lanczos3",
                antialias=True)), 0.0, 255.0), tf.uint8)
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
