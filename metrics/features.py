"""Streaming feature extraction: batches in, float64 statistics out.

Images arrive as an iterable of batches (float32 NHWC in [-1, 1], any size, 1 or 3
channels; a batch may also be an ``(images, labels)`` tuple or a tf.data dataset of
them).  Each batch goes through the feature network under the current
``tf.distribute`` strategy and is folded into running accumulators; only the features
kept for KID / precision-recall (a bounded number) stay in memory, never the images.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

from .errors import MetricsError
from .stats import InceptionScoreAccumulator, RunningMoments

# How many features per side are kept for KID and precision/recall.
MAX_KEPT_FEATURES = 10_000
# 2: keyed and checked by the count and fingerprint of the images used (and a .sha256).
STATS_FORMAT = 2


# --------------------------------------------------------------------------------------
# Feature networks
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class FeatureNetwork:
    """A per-replica function ``images [-1, 1] -> (features, logits)`` and its identity.

    ``label`` is what reports show (``inception-2015-12-05``, ``evaluator:<ds>:<acc>``);
    ``cache_key`` names the reference statistics computed with it.
    """

    label: str
    cache_key: str
    feature_dim: int
    num_classes: int
    fn: Callable
    max_batch: int = 64
    logits_are_meaningful: bool = True
    weights_sha256: str | None = None  # of the weights file; every metric records it


class Progress:
    """A progress line on stderr, at most every ``every`` seconds (and at the end)."""

    def __init__(self, label: str, total: int | None, every: float = 15.0, enabled: bool = True):
        self.label, self.total, self.every, self.enabled = label, total, every, enabled
        self.start = self.last = time.perf_counter()

    def update(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not final and now - self.last < self.every):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        of = f"/{self.total}" if self.total else ""
        eta = ""
        if self.total and not final and rate > 0:
            eta = f", ~{(self.total - done) / rate:.0f} s left"
        print(f"[metrics] {self.label}: {done}{of} images, {rate:.1f} img/s{eta}",
              file=sys.stderr, flush=True)


class FeatureRunner:
    """Runs a :class:`FeatureNetwork` on batches under the current distribution strategy."""

    def __init__(self, network: FeatureNetwork, strategy=None):
        self.network = network
        self.strategy = strategy or tf.distribute.get_strategy()
        self.replicas = int(self.strategy.num_replicas_in_sync)
        self.chunk = network.max_batch * self.replicas  # max_batch images per replica per step
        self._steps: dict = {}  # one traced function per image shape (H, W, C)

    def _step_for(self, shape):
        step = self._steps.get(shape)
        if step is None:
            def run(x):
                return self.strategy.run(self.network.fn, args=(x,))

            step = self._steps[shape] = tf.function(run, reduce_retracing=True)
        return step

    def _distribute(self, images: tf.Tensor):
        if self.replicas == 1:
            return images
        per = images.shape[0] // self.replicas
        chunks = [images[i * per:(i + 1) * per] for i in range(self.replicas)]
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: chunks[ctx.replica_id_in_sync_group])

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
        images = tf.convert_to_tensor(images, tf.float32)
        n = int(images.shape[0])
        features, logits = [], []
        for start in range(0, n, self.chunk):
            chunk = images[start:start + self.chunk]
            size = int(chunk.shape[0])
            pad = (-size) % self.replicas
            if pad:  # equal shares per replica; the padding rows are dropped below
                chunk = tf.concat([chunk, tf.repeat(chunk[-1:], pad, axis=0)], axis=0)
            step = self._step_for(tuple(int(d) for d in chunk.shape[1:]))
            out_f, out_l = step(self._distribute(chunk))
            out_f = tf.concat(self.strategy.experimental_local_results(out_f), axis=0)
            out_l = tf.concat(self.strategy.experimental_local_results(out_l), axis=0)
            features.append(out_f.numpy()[:size])
            logits.append(out_l.numpy()[:size])
        return np.concatenate(features), np.concatenate(logits)


def uint8_batches(images: np.ndarray, batch_size: int = 250):
    """Batches of uint8 images [N, H, W, C] back in [-1, 1], float32: what ``collect``
    consumes (the inverse of ``training.artifacts.to_uint8``, which samples.npz holds)."""
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size].astype(np.float32) / 127.5 - 1.0


def _images_of(batch):
    if isinstance(batch, dict):
        batch = batch.get("image", batch.get("images"))
    elif isinstance(batch, (tuple, list)):
        batch = batch[0]
    if batch is None:
        raise MetricsError("a batch holds no images")
    images = tf.convert_to_tensor(batch)
    if images.dtype != tf.float32:
        images = tf.cast(images, tf.float32)
    if images.shape.rank == 3:  # one image per batch or [B, H, W] gray
        images = images[..., None] if images.shape[-1] not in (1, 3) else images[None]
    if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
        raise MetricsError(f"image batches must be NHWC with 1 or 3 channels, got {images.shape}")
    return images


def _check_range(images: tf.Tensor, where: str) -> None:
    lo = float(tf.reduce_min(images))
    hi = float(tf.reduce_max(images))
    if lo < -1.5 or hi > 1.5 or not np.isfinite([lo, hi]).all():
        raise MetricsError(f"{where}: pixel values span [{lo:.3g}, {hi:.3g}]; the metrics expect "
                           "float images in [-1, 1]")


# --------------------------------------------------------------------------------------
# Kept features for KID / precision-recall
# --------------------------------------------------------------------------------------
class FirstN:
    """Keeps the first ``capacity`` rows (i.i.d. samples need no more care)."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.parts: list = []
        self.count = 0

    def add(self, rows: np.ndarray) -> None:
        take = min(len(rows), self.capacity - self.count)
        if take > 0:
            self.parts.append(np.asarray(rows[:take], np.float32))
            self.count += take

    def result(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros((0, 0), np.float32)


class RandomSubset:
    """A uniform random subset of ``capacity`` rows of a stream of unknown length.

    Every row gets a random key; the rows with the ``capacity`` smallest keys are kept
    (a vectorised reservoir sample), so an ordered dataset is sampled evenly.
    """

    def __init__(self, capacity: int, seed: int = 0):
        self.capacity = int(capacity)
        self.rng = np.random.default_rng(seed)
        self.keys: list = []
        self.rows: list = []
        self.count = 0
        self.threshold = np.inf

    def add(self, rows: np.ndarray) -> None:
        keys = self.rng.random(len(rows))
        mask = keys < self.threshold
        if mask.any():
            self.keys.append(keys[mask])
            self.rows.append(np.asarray(rows[mask], np.float32))
            self.count += int(mask.sum())
            if self.count >= 2 * self.capacity:
                self._compact()

    def _compact(self) -> None:
        if not self.keys:
            return
        keys, rows = np.concatenate(self.keys), np.concatenate(self.rows)
        if len(keys) > self.capacity:
            keep = np.argpartition(keys, self.capacity - 1)[: self.capacity]
            keys, rows = keys[keep], rows[keep]
            self.threshold = keys.max()
        order = np.argsort(keys, kind="stable")
        self.keys, self.rows, self.count = [keys[order]], [rows[order]], len(order)

    def result(self) -> np.ndarray:
        self._compact()
        return self.rows[0] if self.rows else np.zeros((0, 0), np.float32)


# --------------------------------------------------------------------------------------
# Statistics of one set of images
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class FeatureStats:
    mu: np.ndarray  # float64 [D]
    sigma: np.ndarray  # float64 [D, D]
    features: np.ndarray  # float32 [K, D], K <= MAX_KEPT_FEATURES
    n_samples: int
    meta: dict

    def save(self, path) -> None:
        """Write the .npz atomically, then its SHA-256 beside it (``<name>.sha256``), which
        readers check: a file without a matching digest is recomputed, never trusted."""
        from common.files import atomic_path, write_text

        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, mu=self.mu, sigma=self.sigma, features=self.features,
                         n_samples=np.int64(self.n_samples), meta=np.array(json.dumps(self.meta)))
            digest = _sha256_file(tmp)
        write_text(_checksum_path(path), f"{digest}  {path.name}\n")

    @classmethod
    def load(cls, path) -> "FeatureStats":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["mu"], z["sigma"], z["features"], int(z["n_samples"]),
                       json.loads(str(z["meta"])))


def collect(runner: FeatureRunner, batches: Iterable, *, limit: int | None, keep: str = "first",
            max_kept: int = MAX_KEPT_FEATURES, seed: int = 0,
            inception_score: InceptionScoreAccumulator | None = None,
            label: str = "images", total: int | None = None, progress: bool = True) -> FeatureStats:
    """Stream ``batches`` (at most ``limit`` images) through ``runner`` into statistics."""
    net = runner.network
    moments = RunningMoments(net.feature_dim)
    kept = FirstN(max_kept) if keep == "first" else RandomSubset(max_kept, seed)
    bar = Progress(label, limit or total, enabled=progress)
    count = 0
    for batch in batches:
        images = _images_of(batch)
        if limit is not None:
            images = images[: limit - count]
        if int(images.shape[0]) == 0:
            break
        _check_range(images, label)
        features, logits = runner(images)
        moments.update(features)
        kept.add(features)
        if inception_score is not None:
            inception_score.update_logits(logits)
        count += len(features)
        bar.update(count)
        if limit is not None and count >= limit:
            break
    bar.update(count, final=True)
    if count < 2:
        raise MetricsError(f"{label}: {count} images arrived; statistics need at least 2")
    return FeatureStats(moments.mean, moments.covariance, kept.result(), count,
                        {"network": net.label, "cache_key": net.cache_key, "kept": keep})


# --------------------------------------------------------------------------------------
# Reference statistics, cached per (dataset, split, network, image shape, the images used)
# --------------------------------------------------------------------------------------
def source_fingerprint(real, count: int) -> str:
    """SHA-256 of the first ``count`` images of ``real``: what its statistics are computed from.

    The same split opened with ``limit=64`` and without a limit are different image sets;
    keying the cache by this (and the count) keeps one from ever standing in for the other.
    """
    fingerprint = getattr(real, "fingerprint", None)
    if fingerprint is None:
        raise MetricsError(f"{type(real).__name__} has no fingerprint(count) method; pass a "
                           f"data.ImageSource (open_dataset) as the reference images")
    return fingerprint(count)


def reference_path(cache_dir, dataset: str, split: str, network_key: str, image_shape,
                   count: int, fingerprint: str) -> Path:
    shape = "x".join(str(int(d)) for d in image_shape)
    safe = (f"{dataset}-{split}-{network_key}-{shape}-n{int(count)}-{fingerprint[:16]}"
            .replace("/", "_").replace(":", "_"))
    return Path(cache_dir) / "refstats" / f"{safe}.npz"


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _load_verified(path: Path, *, cache_key: str, count: int, fingerprint: str):
    """The cached statistics at ``path`` if they are intact and of exactly the requested
    images, else None (with a line saying why, when a file was there but unusable)."""
    if not path.is_file():
        return None
    recorded = _checksum_path(path)
    try:
        expected = recorded.read_text().split()[0]
        if _sha256_file(path) != expected:
            raise ValueError(f"its SHA-256 differs from the one recorded in {recorded.name}")
        stats = FeatureStats.load(path)
    except (OSError, ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile) as err:
        print(f"[metrics] {path} is damaged ({type(err).__name__}: {err}); recomputing it",
              file=sys.stderr, flush=True)
        return None
    meta = stats.meta
    if (meta.get("format") != STATS_FORMAT or meta.get("cache_key") != cache_key
            or meta.get("source_fingerprint") != fingerprint or stats.n_samples != count
            or meta.get("n_samples") != count):
        print(f"[metrics] {path} holds statistics of other images (recorded count "
              f"{meta.get('n_samples')}, requested {count}); recomputing it",
              file=sys.stderr, flush=True)
        return None
    return stats


def _sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def reference_stats(runner: FeatureRunner, real, *, cache_dir, batch_size: int = 100,
                    limit: int | None = None, seed: int = 0, progress: bool = True) -> FeatureStats:
    """Statistics of the ImageSource ``real`` (all of it unless ``limit``), cached.

    The cache file is keyed by the number of images and a fingerprint of them, both also
    recorded inside it and checked on reading, with the file's SHA-256 beside it: a source
    opened with ``open_dataset(limit=...)`` never shares statistics with the whole split,
    and a damaged file is recomputed.  The kept features are a uniform random subset of at
    most MAX_KEPT_FEATURES images.
    """
    total = real.num_examples if limit is None else min(limit, real.num_examples)
    fingerprint = source_fingerprint(real, total)
    key = runner.network.cache_key
    path = reference_path(cache_dir, real.name, real.split, key, real.image_shape, total,
                          fingerprint)
    stats = _load_verified(path, cache_key=key, count=total, fingerprint=fingerprint)
    if stats is not None:
        return stats
    label = f"reference {real.name}/{real.split}"
    stats = collect(runner, real.batches(batch_size), limit=total, keep="random", seed=seed,
                    label=label, progress=progress)
    if stats.n_samples != total:
        raise MetricsError(f"{label}: {stats.n_samples} images arrived of the {total} announced")
    stats.meta.update({"format": STATS_FORMAT, "dataset": real.name, "split": real.split,
                       "image_shape": list(real.image_shape), "n_samples": stats.n_samples,
                       "source_fingerprint": fingerprint,
                       "kept_features": int(len(stats.features)), "seed": seed})
    stats.save(path)
    return stats
