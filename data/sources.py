"""Dataset resolution and the :class:`ImageSource` every model trains on.

Name resolution in :func:`open_dataset`:

1. ``synthetic`` and ``folder:PATH`` are read directly (see their modules).
2. For ``cifar10``, ``cifar100``, ``fashion_mnist``, ``mnist``: official files
   in ``data_dir`` (or ``data_dir/<name>/``, ``data_dir/<name with ->/``) are
   used first, without touching tfds or the network: CIFAR python tarballs or
   their extracted folders, MNIST-style idx files.
3. Otherwise tfds (``celeb_a`` always goes here): a prepared copy in
   ``data_dir`` (tfds' default when None), else ``download_and_prepare`` when
   ``download=True``.
4. If tfds cannot provide it (offline it fails within seconds: the download
   host is probed first), read-only system copies are tried (Debian's
   ``/usr/share/datasets/fashion-mnist``), with a line on stderr saying so;
   failing that, DatasetError says what to download and where to put it.

``ImageSource`` keeps a split decoded in memory as uint8 HWC and converts to
float32 in [-1, 1] (``x / 127.5 - 1``) only inside the pipelines it returns.
Order of ``batches()``: epoch ``e`` with ``shuffle_seed=s`` visits the examples
in ``numpy.random.default_rng([s, e]).permutation(N)`` -- a uniform shuffle
of the whole split (what a full-buffer shuffle gives) that depends on
nothing but ``(s, e)``, so a resumed run with ``skip_batches=k`` sees exactly
the batches ``k, k+1, ...`` of the uninterrupted run.
"""

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from data import catalog, celeba, cifar, folder, idx, synthetic, tfds_source
from data.errors import DatasetError
from data.transform import standardize_array

_OPEN_KEYS = ("image_size", "channels", "data_dir", "limit", "download", "seed")
_BATCH_KEYS = ("shuffle_seed", "epoch", "skip_batches", "drop_remainder", "repeat")
_GATHER_CHUNK = 1024  # examples per gather in elements()


def native_channels(name: str) -> int:
    """1 for the gray datasets (Fashion-MNIST, MNIST), 3 for every other name: the
    number of channels a dataset trains and is scored in unless asked otherwise.
    A model painting three identical channels spends capacity on colour it never sees."""
    if isinstance(name, str) and name.startswith(catalog.FOLDER_PREFIX):
        return 3
    return 1 if _canonical(name) in catalog.GRAY_DATASETS else 3


def known_datasets() -> list:
    """Names open_dataset accepts ('folder:PATH' stands for any image folder)."""
    return [*catalog.TFDS_NAMES, catalog.SYNTHETIC, catalog.FOLDER_PREFIX + "PATH"]


class ImageSource:
    """A decoded, in-memory, unbatched split.

    Attributes: ``name``, ``split``, ``class_names``, ``num_examples`` (after
    ``limit``), ``image_shape`` = (size, size, channels), ``provenance``.
    """

    def __init__(self, name: str, split: str, images: np.ndarray, labels: np.ndarray,
                 class_names, provenance: str):
        # images: uint8 [N, S, S, C]; labels: int32 [N]
        if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(labels):
            raise DatasetError(f"{name}/{split}: bad arrays {images.shape} {images.dtype}, "
                               f"{len(labels)} labels")
        self.name = name
        self.split = split
        self.class_names = list(class_names)
        self.num_examples = int(images.shape[0])
        self.image_shape = tuple(int(d) for d in images.shape[1:])
        self.provenance = provenance
        self._fingerprints = {}  # count -> sha256 hex
        with tf.device("/CPU:0"):  # the pipelines gather from these on the host
            self._images = tf.convert_to_tensor(images)  # uint8 [N, S, S, C]
            self._labels = tf.convert_to_tensor(np.asarray(labels, np.int32))  # int32 [N]

    def __repr__(self) -> str:
        return (f"ImageSource({self.name!r}, split={self.split!r}, n={self.num_examples}, "
                f"shape={self.image_shape}, classes={len(self.class_names)}, "
                f"from {self.provenance})")

    def arrays(self):
        """(uint8 [N, S, S, C], int32 [N]) numpy copies of the cached split."""
        return self._images.numpy(), self._labels.numpy()

    def fingerprint(self, count: int | None = None) -> str:
        """SHA-256 (hex) of the first ``count`` (default: all) images' uint8 pixels and
        shape: names exactly the images a statistic was computed from (the metrics'
        reference cache is keyed by it)."""
        count = self.num_examples if count is None else min(int(count), self.num_examples)
        cached = self._fingerprints.get(count)
        if cached is None:
            images = self._images[:count].numpy()
            digest = hashlib.sha256(repr(images.shape).encode())
            digest.update(np.ascontiguousarray(images).tobytes())
            cached = self._fingerprints[count] = digest.hexdigest()
        return cached

    def steps_per_epoch(self, batch_size: int, drop_remainder: bool = False) -> int:
        """Batches in one epoch of batches(batch_size, drop_remainder=...)."""
        _check_int("batch_size", batch_size, minimum=1)
        full, rest = divmod(self.num_examples, batch_size)
        return full + (1 if rest and not drop_remainder else 0)

    def _gather(self, index):
        """int64 [B] -> (float32 [B, S, S, C] in [-1, 1], int32 [B])."""
        images = tf.gather(self._images, index)
        return tf.cast(images, tf.float32) / 127.5 - 1.0, tf.gather(self._labels, index)

    def elements(self) -> tf.data.Dataset:
        """(image float32 [S, S, C] in [-1, 1], label int32 []) in file order, unbatched."""
        ds = tf.data.Dataset.range(self.num_examples).batch(_GATHER_CHUNK)
        ds = ds.map(self._gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.unbatch().apply(tf.data.experimental.assert_cardinality(self.num_examples))
        return _deterministic(ds.prefetch(tf.data.AUTOTUNE))

    def batches(self, batch_size: int, *, shuffle_seed: int | None = None, epoch: int = 0,
                skip_batches: int = 0, drop_remainder: bool = False, repeat: bool = False
                ) -> tf.data.Dataset:
        """(images float32 [B, S, S, C] in [-1, 1], labels int32 [B]), prefetched.

        Epoch ``epoch`` is shuffled by ``(shuffle_seed, epoch)`` (no shuffle when
        ``shuffle_seed`` is None); ``repeat=True`` continues with epochs
        ``epoch+1, epoch+2, ...``, each shuffled by its own number, batches never
        spanning two epochs.  ``skip_batches`` drops that many batches from the
        start of the stream (it may reach into later epochs when repeating).
        """
        _check_int("batch_size", batch_size, minimum=1)
        _check_int("epoch", epoch, minimum=0)
        _check_int("skip_batches", skip_batches, minimum=0)
        if shuffle_seed is not None:
            _check_int("shuffle_seed", shuffle_seed, minimum=0)
        per_epoch = self.steps_per_epoch(batch_size, drop_remainder)
        if per_epoch == 0:
            raise DatasetError(f"batch_size={batch_size} with drop_remainder=True leaves no "
                               f"batch from {self.num_examples} examples: use a smaller batch")
        n, seed = self.num_examples, shuffle_seed

        def epoch_order(e):  # int64 [] -> int64 [N]
            return np.random.default_rng([seed, int(e)]).permutation(n).astype(np.int64)

        def index_batches(e):  # epoch number -> Dataset of int64 [B]
            if seed is None:
                order = tf.range(n, dtype=tf.int64)
            else:
                order = tf.numpy_function(epoch_order, [e], tf.int64, stateful=False)
                order = tf.ensure_shape(order, [n])
            ds = tf.data.Dataset.from_tensor_slices(order)
            return ds.batch(batch_size, drop_remainder=drop_remainder)

        epochs = tf.data.Dataset.counter(epoch) if repeat else tf.data.Dataset.range(epoch,
                                                                                      epoch + 1)
        ds = epochs.flat_map(index_batches).skip(skip_batches)
        cardinality = tf.data.INFINITE_CARDINALITY if repeat else max(per_epoch - skip_batches, 0)
        ds = ds.apply(tf.data.experimental.assert_cardinality(cardinality))
        ds = ds.map(self._gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return _deterministic(ds.prefetch(tf.data.AUTOTUNE))


class FeatureSource(ImageSource):
    """A split whose images are replaced by fixed features of each one (e.g. a frozen
    encoder's outputs or a tokenizer's codes, computed once), batched exactly like the
    split: ``batches()`` yields (features [B, *feature_shape], labels int32 [B]) in the
    order ``source.batches()`` would visit the images, so resume and replica
    sharding are unchanged. ``image_shape`` stays the images' (what models check).
    Float features are kept as float32, integer ones (codes) as int32.
    """

    def __init__(self, source: ImageSource, features):
        # features: [N, *feature_shape], row i a function of image i only
        features = np.asarray(features)
        if np.issubdtype(features.dtype, np.integer):
            if features.size and (features.min() < np.iinfo(np.int32).min
                                  or features.max() > np.iinfo(np.int32).max):
                raise DatasetError(f"{source.name}/{source.split}: integer features out of "
                                   f"the int32 range")
            features = features.astype(np.int32)
        else:
            features = features.astype(np.float32)
        if len(features) != source.num_examples:
            raise DatasetError(f"{source.name}/{source.split}: {len(features)} feature rows "
                               f"for {source.num_examples} images")
        self.name, self.split = source.name, source.split
        self.class_names = list(source.class_names)
        self.num_examples = source.num_examples
        self.image_shape = source.image_shape
        self.feature_shape = tuple(int(d) for d in features.shape[1:])
        self.provenance = source.provenance
        self._source = source
        with tf.device("/CPU:0"):
            self._features = tf.convert_to_tensor(features)  # [N, *feature_shape]
            self._labels = source._labels  # int32 [N]

    @classmethod
    def computed(cls, source: ImageSource, fn, batch_size: int = 500) -> "FeatureSource":
        """``fn`` (images [B, H, W, C] -> features [B, ...], e.g. a frozen first stage)
        run once over the split in file order, compiled: the FeatureSource of its outputs."""
        compiled = tf.function(fn, autograph=False)
        return cls(source, np.concatenate([compiled(images).numpy()
                                           for images, _ in source.batches(batch_size)]))

    def __repr__(self) -> str:
        return f"FeatureSource({self._source!r}, features {self.feature_shape})"

    def arrays(self):
        """(features [N, *feature_shape] (float32 or int32), labels int32 [N]) numpy copies."""
        return self._features.numpy(), self._labels.numpy()

    def fingerprint(self, count: int | None = None) -> str:
        """The fingerprint of the images the features were computed from."""
        return self._source.fingerprint(count)

    def _gather(self, index):
        """int64 [B] -> (features [B, *feature_shape], int32 [B])."""
        return tf.gather(self._features, index), tf.gather(self._labels, index)


def _deterministic(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Deterministic order, and no tf.data autotuning: destroying an autotuned
    iterator that was read for minutes (the trainer makes one per epoch) waits for
    its optimisation thread's sleep, measured at 18-50 s per epoch on 2 cores, in
    which nothing trains. Autotuning changes buffer sizes, never the values."""
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = False
    return ds.with_options(options)


def _check_int(what: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DatasetError(f"{what} must be an integer >= {minimum}, got {value!r}")


def _check_open_args(image_size, channels, limit, seed, data_dir) -> Path | None:
    _check_int("image_size", image_size, minimum=1)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DatasetError(f"channels must be 1 (gray) or 3 (RGB), got {channels!r}")
    if limit is not None:
        _check_int("limit", limit, minimum=1)
    _check_int("seed", seed, minimum=0)
    if data_dir is None:
        return None
    path = Path(os.fspath(data_dir)).expanduser()
    if path.is_file() and path.suffix.lower() == ".zip":  # CelebA's img_align_celeba.zip
        return path
    if not path.is_dir():
        raise DatasetError(f"the data folder {str(data_dir)!r} (--data-dir) does not exist or "
                           f"is not a folder: create it and put the dataset files there, or "
                           f"leave --data-dir out (Python: data_dir=None) to use tfds' default "
                           f"folder")
    return path


def _canonical(name) -> str:
    if not isinstance(name, str):
        raise DatasetError(f"dataset name must be a string, got {name!r}")
    key = name.strip().lower()
    key = catalog.ALIASES.get(key, key)
    if key not in catalog.SPLITS:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: "
                           f"{', '.join(known_datasets())}")
    return key


def _check_split(name: str, split, allowed) -> None:
    if split not in allowed:
        raise DatasetError(f"unknown split {split!r} for {name}; use one of {list(allowed)}")


def _search_dirs(data_dir: Path | None, name: str) -> list:
    """data_dir/<name>/, data_dir/<name-with-dashes>/, data_dir -- those that exist."""
    if data_dir is None:
        return []
    dirs = [data_dir / name, data_dir / name.replace("_", "-"), data_dir]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def _load_offline(name: str, dirs, split: str, limit):
    """RawSplit from official files in `dirs`, or None when there are none."""
    if name in cifar.LAYOUT:
        path = cifar.find(name, dirs)
        return cifar.load(name, path, split, limit) if path else None
    if name in ("mnist", "fashion_mnist"):
        directory = idx.find(dirs, split)
        names = (catalog.MNIST_CLASS_NAMES if name == "mnist"
                 else catalog.FASHION_MNIST_CLASS_NAMES)
        return idx.load(name, directory, split, names, limit) if directory else None
    return None


def _load_named(name: str, split: str, data_dir: Path | None, download: bool,
                image_size: int, channels: int, limit):
    if name == "celeb_a" and celeba.find(data_dir) is not None:  # the official JPEGs
        return celeba.load(celeba.find(data_dir), split, image_size, channels, limit)
    if data_dir is not None and data_dir.is_file():
        raise DatasetError(f"the data folder {data_dir} (--data-dir) is a file; only CelebA "
                           f"reads a zip (img_align_celeba.zip): pass a folder for {name}")
    offline = _load_offline(name, _search_dirs(data_dir, name), split, limit)
    if offline is not None:
        return offline
    try:
        builder = tfds_source.prepare(name, None if data_dir is None else str(data_dir),
                                      download)
    except tfds_source.TfdsUnavailable as unavailable:
        system_dirs = [Path(d) for d in catalog.SYSTEM_DIRS.get(name, []) if Path(d).is_dir()]
        offline = _load_offline(name, system_dirs, split, limit)
        if offline is not None:  # said out loud: a different copy than the one asked for
            where = f"data_dir {data_dir}" if data_dir else "data_dir (none given)"
            print(f"[data] {catalog.PRETTY[name]} is not in {where} and tfds could not provide "
                  f"it ({unavailable}); using the system copy in "
                  f"{', '.join(map(str, system_dirs))}", file=sys.stderr, flush=True)
            return offline
        where = f"data_dir {data_dir}" if data_dir else "data_dir (none given)"
        raise DatasetError(f"{catalog.PRETTY[name]} not found in {where} and tfds could not "
                           f"provide it ({unavailable}): {catalog.how_to_get(name)}"
                           ) from unavailable
    return tfds_source.load(name, builder, split, image_size, channels, limit)


def _folder_root(spec: str, data_dir: Path | None) -> Path:
    text = spec[len(catalog.FOLDER_PREFIX):]
    if not text:
        raise DatasetError("folder dataset needs a path: use 'folder:PATH'")
    root = Path(text).expanduser()
    if not root.is_absolute() and data_dir is not None and (data_dir / root).is_dir():
        root = data_dir / root  # relative paths may live under data_dir
    if not root.is_dir():
        raise DatasetError(f"folder dataset {text!r}: {root} is not a directory")
    return root


def open_dataset(name: str, split: str = "train", *, image_size: int = 32, channels: int = 3,
                 data_dir: str | None = None, limit: int | None = None, download: bool = True,
                 seed: int = 0) -> ImageSource:
    """Resolve `name`, decode `split` into memory and return its ImageSource.

    `seed` only affects ``synthetic``.  `limit` keeps the first N examples.
    """
    data_path = _check_open_args(image_size, channels, limit, seed, data_dir)
    if isinstance(name, str) and name.startswith(catalog.FOLDER_PREFIX):
        root = _folder_root(name, data_path)
        _check_split(name, split, catalog.FOLDER_SPLITS)
        raw = folder.load(root, split, image_size, channels, limit)
        key = name
    else:
        key = _canonical(name)
        _check_split(key, split, catalog.SPLITS[key])
        if key == catalog.SYNTHETIC:
            raw = synthetic.load(split, seed, image_size, limit)
        else:
            raw = _load_named(key, split, data_path, download, image_size, channels, limit)
    images, labels = raw.images, raw.labels
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    images = standardize_array(images, image_size, channels, f"{key}/{split} ({raw.provenance})")
    return ImageSource(key, split, images, labels, raw.class_names, raw.provenance)


def load_dataset(name: str, split: str = "train", batch_size: int = 128, **kwargs):
    """One call: ``(open_dataset(name, split, ...).batches(batch_size, ...), class_names)``.

    Keyword arguments go to open_dataset (image_size, channels, data_dir,
    limit, download, seed) or to batches (shuffle_seed, epoch, skip_batches,
    drop_remainder, repeat).
    """
    unknown = sorted(set(kwargs) - set(_OPEN_KEYS) - set(_BATCH_KEYS))
    if unknown:
        raise DatasetError(f"load_dataset got unknown arguments {unknown}; accepted: "
                           f"{list(_OPEN_KEYS + _BATCH_KEYS)}")
    source = open_dataset(name, split, **{k: v for k, v in kwargs.items() if k in _OPEN_KEYS})
    ds = source.batches(batch_size, **{k: v for k, v in kwargs.items() if k in _BATCH_KEYS})
    return ds, source.class_names
