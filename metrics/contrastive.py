"""The second evaluator: a residual network trained without labels (SimCLR-style).

The suite's first evaluator (:mod:`metrics.evaluator`, ``fd_eval``) is a plain VGG-like
stack (3x3 conv + BatchNorm + ReLU, max pooling) trained to predict the ten classes. A
second opinion is worth something only where it fails differently, so this one differs
in every choice that shapes its features:

* **architecture**: a pre-activation residual network (He et al. 2016) with GroupNorm
  (no batch statistics) and SiLU, down-sampling by strided convolutions (no max
  pooling): a 4x4 stride-2 stem, then one stage per resolution down to 4x4 (32x32:
  16x16, 8x8, 4x4) of ``2w, 4w, 8w`` channels, each a strided transition convolution
  (but the first) and one residual block of two 3x3 convolutions; features = the global
  average of the last stage after a final GroupNorm + SiLU (``8 * width`` = 64 numbers,
  as many as the first evaluator's);
* **objective**: no labels at all: instance discrimination with the NT-Xent loss of
  SimCLR (Chen, Kornblith, Norouzi, Hinton 2020) on two augmented views of each image
  through a 2-layer projection head (discarded for the features), temperature 0.2;
* **augmentations** chosen not to teach invariance to the artefacts the evaluators must
  see: SimCLR's random resized crop (area 40-100% of the image, aspect 3/4-4/3, resized
  back bilinearly, so enlarged by at most 1.6x), a translation of up to 2 pixels (pad
  with the background), a horizontal flip and a per-image ink-intensity scale
  (x 0.6-1.4): no blur, no pixel noise, no cut-out, no quantisation, so blur, pixel
  noise, blocks and pixelation stay visible in the features (a contrastive network
  becomes invariant to exactly what its augmentations do);
* **data order and initialisation** from another seed stream (seed 1).

What it learned is measured without training on labels: a k-nearest-neighbour probe
(k = 20, cosine similarity, similarity-weighted votes) classifies the test split from
the train split's features (``knn_accuracy``, the ``test_accuracy`` of its label), and the
held-out NT-Xent loss and positive-pair top-1 retrieval on test images are recorded.

Reproducible like the first evaluator: trained in a fresh process (``python -m metrics
train-evaluator2``) with the same pinned runtime (:func:`metrics.evaluator.pin_runtime`:
op determinism, fixed thread pools, oneDNN off, fixed seeds); the augmentations are
stateless random ops seeded by (seed, step), so two trainings give identical weights
(tested). The committed weights live in ``metrics/evaluators/contrastive/<key>/`` (a
subfolder, so that the first evaluator's lookups, which list ``metrics/evaluators/*``,
never meet it), trained ones in ``<cache>/evaluator2/<key>/``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .errors import MetricsError
from .evaluator import (SHIPPED_DIR, _adapt, _fingerprint, evaluator_key, runtime_record,
                        save_evaluator)
from .features import FeatureNetwork

#: info.json's ``format``: never the first evaluator's (an int), so neither loader takes
#: the other's folder for its own.
CONTRASTIVE_FORMAT = "contrastive-1"
CONTRASTIVE_DIR = SHIPPED_DIR / "contrastive"
ARCHITECTURE = "preact-resnet-groupnorm"
OBJECTIVE = "simclr-nt-xent"


@dataclasses.dataclass
class ContrastiveConfig:
    width: int = 8  # stages of 2w, 4w, 8w channels; features = 8 * width
    projection_dim: int = 64
    epochs: int = 3
    batch_size: int = 256  # images per step (2 views each)
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2
    max_shift: int = 2  # translation augmentation, pixels
    intensity_range: tuple = (0.6, 1.4)  # ink-intensity scale augmentation
    crop_scale: tuple = (0.4, 1.0)  # random resized crop's area range; (1, 1): none
    knn_k: int = 20
    max_train_examples: int | None = None  # per epoch; None = the whole train split
    max_test_examples: int | None = None  # images of the test split probed; None = all
    seed: int = 1


# --------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------
def _stages(size: int) -> int:
    """Halvings from ``size`` down to about 4x4."""
    return max(1, int(round(math.log2(max(size, 8) / 4))))


def _norm(channels: int, name: str):
    return keras.layers.GroupNormalization(groups=min(8, channels), epsilon=1e-5, name=name)


def build_contrastive_encoder(image_shape, width: int = 8, projection_dim: int = 64
                              ) -> keras.Model:
    """Outputs ``{'features': [B, F], 'projection': [B, projection_dim]}`` with
    ``F = width * 2**stages`` (capped at 8 * width); see the module docstring."""
    height, width_px, channels = (int(d) for d in image_shape)
    inputs = keras.Input((height, width_px, channels), name="images")
    # The stem: a 4x4 convolution of stride 2 (overlapping: every pixel reaches 2 x 2
    # outputs) straight to half resolution, where the first residual block works.
    x = keras.layers.Conv2D(2 * width, 4, strides=2, padding="same", name="stem.conv")(inputs)
    for s in range(_stages(min(height, width_px))):
        filters = min(8 * width, width * 2 ** (s + 1))
        if s > 0:
            x = _norm(int(x.shape[-1]), f"stage{s}.down.norm")(x)
            x = keras.layers.Activation("silu", name=f"stage{s}.down.act")(x)
            x = keras.layers.Conv2D(filters, 3, strides=2, padding="same",
                                    name=f"stage{s}.down.conv")(x)
        r = x
        for c in range(2):
            r = _norm(filters, f"stage{s}.block.norm{c}")(r)
            r = keras.layers.Activation("silu", name=f"stage{s}.block.act{c}")(r)
            r = keras.layers.Conv2D(filters, 3, padding="same", name=f"stage{s}.block.conv{c}")(r)
        x = keras.layers.Add(name=f"stage{s}.add")([x, r])
    x = _norm(int(x.shape[-1]), "final.norm")(x)
    x = keras.layers.Activation("silu", name="final.act")(x)
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    h = keras.layers.Dense(int(features.shape[-1]), activation="silu", name="head.hidden")(features)
    projection = keras.layers.Dense(projection_dim, name="head.projection")(h)
    return keras.Model(inputs, {"features": features, "projection": projection},
                       name="contrastive_evaluator")


# --------------------------------------------------------------------------------------
# Objective
# --------------------------------------------------------------------------------------
def augment(images, seed, max_shift: int = 2, intensity_range=(0.6, 1.4),
            crop_scale=(0.4, 1.0)):
    """One random view of each image of ``images`` (float32 [B, H, W, C] in [-1, 1]),
    drawn by stateless ops from ``seed`` (int64 [2]): the same seed, the same view.
    A random resized crop (area fraction in ``crop_scale``, aspect 3/4-4/3; none when
    ``crop_scale[0] >= 1``), a shift of up to ``max_shift`` pixels, a horizontal flip
    with probability 1/2, the ink intensity scaled by a factor in ``intensity_range``."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    batch = tf.shape(images)[0]
    height, width = int(images.shape[1]), int(images.shape[2])
    x = images
    if float(crop_scale[0]) < 1.0:
        u = tf.random.stateless_uniform([batch, 4], seeds[3])
        area = float(crop_scale[0]) + (float(crop_scale[1]) - float(crop_scale[0])) * u[:, 0]
        log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u[:, 1]
        h = tf.minimum(tf.sqrt(area / tf.exp(log_ratio)), 1.0)
        w = tf.minimum(tf.sqrt(area * tf.exp(log_ratio)), 1.0)
        y0, x0 = (1.0 - h) * u[:, 2], (1.0 - w) * u[:, 3]
        boxes = tf.stack([y0, x0, y0 + h, x0 + w], axis=1)
        x = tf.image.crop_and_resize(x, boxes, tf.range(batch), [height, width])
    if max_shift > 0:
        m = int(max_shift)
        padded = tf.pad(images, [[0, 0], [m, m], [m, m], [0, 0]], constant_values=-1.0)
        offsets = tf.random.stateless_uniform([batch, 2], seeds[0], minval=0, maxval=2 * m + 1,
                                              dtype=tf.int32)
        rows = offsets[:, :1] + tf.range(height)[None, :]
        cols = offsets[:, 1:] + tf.range(width)[None, :]
        x = tf.gather(padded, rows, axis=1, batch_dims=1)
        x = tf.gather(x, cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[1]) < 0.5
    x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    low, high = (float(v) for v in intensity_range)
    scale = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[2], minval=low, maxval=high)
    return tf.clip_by_value((x + 1.0) * scale - 1.0, -1.0, 1.0)


def nt_xent(projections, temperature: float):
    """SimCLR's loss for ``[2B, D]`` projections whose rows i and i + B are two views of
    one image: (mean cross-entropy of each row's positive among the 2B - 1 others,
    share of rows whose most similar other row is its positive)."""
    z = tf.math.l2_normalize(projections, axis=-1)
    n2 = tf.shape(z)[0]
    n = n2 // 2
    logits = tf.matmul(z, z, transpose_b=True) / temperature
    logits -= 1e9 * tf.eye(n2, dtype=logits.dtype)
    targets = tf.concat([tf.range(n, n2), tf.range(0, n)], axis=0)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
    top1 = tf.reduce_mean(tf.cast(tf.argmax(logits, -1, output_type=tf.int32) == targets,
                                  tf.float32))
    return loss, top1


# --------------------------------------------------------------------------------------
# Training and its measures
# --------------------------------------------------------------------------------------
def _features_of(model, source, batch_size: int = 500, limit: int | None = None):
    """(features float32 [N, F], labels int32 [N]) of the first ``limit`` images."""
    predict = tf.function(lambda x: model(x, training=False)["features"], reduce_retracing=True)
    features, labels, count = [], [], 0
    for images, y in source.batches(batch_size):
        if limit is not None:
            images, y = images[:limit - count], y[:limit - count]
        if int(images.shape[0]) == 0:
            break
        features.append(predict(images).numpy())
        labels.append(y.numpy())
        count += len(features[-1])
        if limit is not None and count >= limit:
            break
    return np.concatenate(features), np.concatenate(labels)


def knn_accuracy(train_features, train_labels, test_features, test_labels, *, k: int = 20,
                 temperature: float = 0.1, chunk: int = 500) -> float:
    """Share of test rows whose k nearest train rows (cosine similarity) vote for their
    label, each vote weighted by exp(similarity / temperature) (Wu et al. 2018)."""
    def unit(a):
        a = np.asarray(a, np.float32)
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)

    train, test = unit(train_features), unit(test_features)
    train_labels = np.asarray(train_labels, np.int64)
    classes = int(max(train_labels.max(), np.max(test_labels))) + 1
    k = min(int(k), len(train))
    correct = 0
    for start in range(0, len(test), chunk):
        sim = test[start:start + chunk] @ train.T
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(sim, top, axis=1) / temperature)
        votes = np.zeros((len(top), classes))
        np.add.at(votes, (np.arange(len(top))[:, None], train_labels[top]), weights)
        correct += int((votes.argmax(1) == np.asarray(test_labels[start:start + chunk])).sum())
    return correct / max(len(test), 1)


def _held_out_contrastive(model, source, config, limit: int = 2000, batch_size: int = 500):
    """Mean NT-Xent loss and positive top-1 on the first ``limit`` test images (views
    drawn with a fixed seed)."""
    losses, tops = [], []
    project = tf.function(lambda x: model(x, training=False)["projection"], reduce_retracing=True)
    count = 0
    batch_size = max(2, min(batch_size, limit, source.num_examples))
    for i, (images, _) in enumerate(source.batches(batch_size, drop_remainder=True)):
        seed = tf.constant([config.seed + 10_000, i], tf.int64)
        seeds = tf.random.experimental.stateless_split(seed, 2)
        views = tf.concat([augment(images, seeds[0], config.max_shift, config.intensity_range,
                                   config.crop_scale),
                           augment(images, seeds[1], config.max_shift, config.intensity_range,
                                   config.crop_scale)], 0)
        loss, top1 = nt_xent(project(views), config.temperature)
        losses.append(float(loss))
        tops.append(float(top1))
        count += int(images.shape[0])
        if count >= limit:
            break
    if not losses:
        return math.nan, math.nan
    return float(np.mean(losses)), float(np.mean(tops))


def train_contrastive(train_src, test_src, config: ContrastiveConfig | None = None, *,
                      verbose: bool = True) -> tuple[keras.Model, dict]:
    """Train the second evaluator on ``train_src`` (labels unused), probe it on ``test_src``."""
    config = config or ContrastiveConfig()
    if tuple(train_src.image_shape) != tuple(test_src.image_shape):
        raise MetricsError(f"train {train_src.image_shape} and test {test_src.image_shape} differ")
    keras.utils.set_random_seed(config.seed)
    model = build_contrastive_encoder(train_src.image_shape, config.width, config.projection_dim)
    per_epoch = train_src.steps_per_epoch(config.batch_size, drop_remainder=True)
    if config.max_train_examples:
        per_epoch = max(1, min(per_epoch, config.max_train_examples // config.batch_size))
    total = per_epoch * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, total, alpha=0.02)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    variables = model.trainable_variables
    optimizer.build(variables)
    shift, intensity, temperature = config.max_shift, config.intensity_range, config.temperature
    crop = config.crop_scale

    @tf.function
    def step(images, index):
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(config.seed, tf.int64), index]), 2)
        views = tf.concat([augment(images, seeds[0], shift, intensity, crop),
                           augment(images, seeds[1], shift, intensity, crop)], 0)
        with tf.GradientTape() as tape:
            loss, top1 = nt_xent(model(views, training=True)["projection"], temperature)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss, top1

    data = train_src.batches(config.batch_size, shuffle_seed=config.seed, repeat=True,
                             drop_remainder=True)
    if verbose:
        print(f"[metrics] training the second evaluator ({ARCHITECTURE}, {OBJECTIVE}) on "
              f"{train_src.name} {train_src.image_shape}: {config.epochs} x {per_epoch} steps "
              f"of {config.batch_size} images", file=sys.stderr, flush=True)
    start, start_cpu = time.perf_counter(), time.process_time()
    epoch_loss = epoch_top1 = math.nan
    history = []
    iterator = iter(data)
    for epoch in range(config.epochs):
        losses, tops = [], []
        for i in range(per_epoch):
            images, _ = next(iterator)
            loss, top1 = step(images, tf.constant(epoch * per_epoch + i, tf.int64))
            losses.append(float(loss))
            tops.append(float(top1))
        epoch_loss, epoch_top1 = float(np.mean(losses)), float(np.mean(tops))
        history.append({"epoch": epoch + 1, "loss": round(epoch_loss, 4),
                        "top1": round(epoch_top1, 4)})
        if verbose:
            print(f"[metrics] epoch {epoch + 1}/{config.epochs}: NT-Xent {epoch_loss:.4f}, "
                  f"positive top-1 {epoch_top1:.4f} ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)
    train_seconds = time.perf_counter() - start
    train_cpu_seconds = time.process_time() - start_cpu  # all threads: the cost, whatever the load
    # Probes: kNN on the features (labels used here only), held-out contrastive loss.
    train_limit = per_epoch * config.batch_size if config.max_train_examples else None
    train_f, train_y = _features_of(model, train_src, limit=train_limit)
    test_f, test_y = _features_of(model, test_src, limit=config.max_test_examples)
    knn = (knn_accuracy(train_f, train_y, test_f, test_y, k=config.knn_k)
           if len(train_src.class_names) >= 2 else math.nan)
    test_loss, test_top1 = _held_out_contrastive(model, test_src, config,
                                                 limit=min(2000, config.max_test_examples or 2000))
    info = {
        "format": CONTRASTIVE_FORMAT, "architecture": ARCHITECTURE, "objective": OBJECTIVE,
        "dataset": train_src.name, "image_shape": list(train_src.image_shape),
        "test_split": test_src.split, "knn_accuracy": round(float(knn), 4),
        "test_accuracy": round(float(knn), 4),  # = knn_accuracy: what the label shows
        "knn_train_examples": int(len(train_f)), "knn_test_examples": int(len(test_f)),
        "test_nt_xent": round(test_loss, 4), "test_positive_top1": round(test_top1, 4),
        "train_nt_xent_last_epoch": round(epoch_loss, 4),
        "train_positive_top1_last_epoch": round(epoch_top1, 4), "history": history,
        "train_examples_seen": total * config.batch_size,
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "feature_dim": int(model.output["features"].shape[-1]),
        "config": dataclasses.asdict(config),
        "train_fingerprint": _fingerprint(train_src), "runtime": runtime_record(pinned=False),
    }
    if verbose:
        print(f"[metrics] second evaluator: kNN test accuracy {knn:.4f}, held-out NT-Xent "
              f"{test_loss:.4f} (top-1 {test_top1:.4f}), {train_seconds:.0f} s",
              file=sys.stderr, flush=True)
    return model, info


# --------------------------------------------------------------------------------------
# Where it lives
# --------------------------------------------------------------------------------------
def contrastive_shipped_dir(dataset: str, image_shape) -> Path:
    return CONTRASTIVE_DIR / evaluator_key(dataset, image_shape)


def contrastive_cache_dir(cache_dir, dataset: str, image_shape) -> Path:
    return Path(cache_dir) / "evaluator2" / evaluator_key(dataset, image_shape)


def _read(folder: Path) -> tuple[keras.Model, dict]:
    info = json.loads((folder / "info.json").read_text())
    if not isinstance(info, dict):
        raise ValueError("info.json is not a JSON object")
    if info.get("format") != CONTRASTIVE_FORMAT:
        raise ValueError(f"info.json has format {info.get('format')!r}, the second evaluator "
                         f"reads {CONTRASTIVE_FORMAT!r}")
    weights = folder / "weights.weights.h5"
    if hashlib.sha256(weights.read_bytes()).hexdigest() != info.get("weights_sha256"):
        raise ValueError(f"{weights.name} does not match the SHA-256 recorded in info.json")
    config = info["config"]
    model = build_contrastive_encoder(info["image_shape"], config["width"],
                                      config["projection_dim"])
    model.load_weights(weights)
    missing = [k for k in ("dataset", "knn_accuracy", "feature_dim") if k not in info]
    if missing:
        raise KeyError(f"info.json lacks {missing}")
    return model, info


_DAMAGED = (OSError, ValueError, KeyError, TypeError, IndexError)


def load_contrastive(folder) -> tuple[keras.Model, dict]:
    """The second evaluator saved in ``folder``; a MetricsError saying what is wrong."""
    folder = Path(folder)
    missing = [n for n in ("info.json", "weights.weights.h5") if not (folder / n).is_file()]
    if missing:
        raise MetricsError(f"{folder} holds no second evaluator ({' and '.join(missing)} "
                           f"missing); the repository's is in {CONTRASTIVE_DIR}/<key>/")
    try:
        return _read(folder)
    except _DAMAGED as err:
        raise MetricsError(f"the second evaluator in {folder} is damaged "
                           f"({type(err).__name__}: {err}): restore the folder, or delete it "
                           f"where it is a cache") from None


def load_or_train_contrastive(dataset: str, image_shape, *, cache_dir, data_dir=None,
                              train_src=None, test_src=None,
                              config: ContrastiveConfig | None = None,
                              verbose: bool = True) -> tuple[keras.Model, dict]:
    """The repository's second evaluator for (dataset, shape), else the cached one, else
    one trained now: in a pinned subprocess from the named dataset, or (given in-memory
    ``train_src``/``test_src``, tests) in this process, and saved in the cache."""
    for folder in (contrastive_shipped_dir(dataset, image_shape),
                   contrastive_cache_dir(cache_dir, dataset, image_shape)):
        if (folder / "info.json").is_file() and (folder / "weights.weights.h5").is_file():
            try:
                return _read(folder)
            except _DAMAGED as err:
                print(f"[metrics] the second evaluator in {folder} is damaged "
                      f"({type(err).__name__}: {err}); skipping it", file=sys.stderr, flush=True)
    folder = contrastive_cache_dir(cache_dir, dataset, image_shape)
    if train_src is None or test_src is None:
        train_contrastive_in_subprocess(dataset, image_shape, folder, data_dir=data_dir,
                                        config=config, verbose=verbose)
        return load_contrastive(folder)
    model, info = train_contrastive(train_src, test_src, config, verbose=verbose)
    return model, save_evaluator(model, info, folder)


def train_contrastive_in_subprocess(dataset: str, image_shape, folder, *, data_dir=None,
                                    config: ContrastiveConfig | None = None,
                                    verbose: bool = True) -> None:
    """``python -m metrics train-evaluator2`` into ``folder``, in a fresh pinned process."""
    import subprocess

    config = config or ContrastiveConfig()
    size, _, channels = (int(d) for d in image_shape)
    command = [sys.executable, "-m", "metrics", "train-evaluator2", "--dataset", dataset,
               "--image-size", str(size), "--channels", str(channels), "--out", str(folder),
               "--config", json.dumps(dataclasses.asdict(config))]
    if data_dir:
        command += ["--data-dir", str(data_dir)]
    if not verbose:
        command.append("--quiet")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONHASHSEED": "0",
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run(command, env=env, cwd=root,
                          stdout=None if verbose else subprocess.DEVNULL)
    if done.returncode != 0:
        raise MetricsError(f"training the second evaluator of {dataset} {tuple(image_shape)} "
                           f"failed (exit {done.returncode}); its error is printed above")


def train_command(args) -> None:
    """``python -m metrics train-evaluator2``: pin the runtime, train, save."""
    from .evaluator import pin_runtime

    runtime = pin_runtime()  # first, before any op
    from common.config import ConfigError, from_dict
    from data import DatasetError, open_dataset

    try:
        config = from_dict(ContrastiveConfig, json.loads(args.config or "{}"), where="--config")
        sources = [open_dataset(args.dataset, split, image_size=args.image_size,
                                channels=args.channels, data_dir=args.data_dir)
                   for split in ("train", "validation" if args.dataset == "celeb_a" else "test")]
    except (DatasetError, ConfigError, ValueError) as err:
        raise MetricsError(str(err)) from err
    model, info = train_contrastive(*sources, config, verbose=not args.quiet)
    info = save_evaluator(model, {**info, "runtime": runtime}, args.out)
    print(f"[metrics] second evaluator saved in {args.out} (kNN test accuracy "
          f"{info['knn_accuracy']:.4f}, sha256 {info['weights_sha256']})",
          file=sys.stderr, flush=True)


def contrastive_network(model: keras.Model, info: dict) -> FeatureNetwork:
    """The second evaluator as a FeatureNetwork (no class logits: no IS)."""
    shape = info["image_shape"]

    def fn(images):
        out = model(_adapt(images, shape), training=False)
        return out["features"], out["projection"]

    label = (f"evaluator2:{ARCHITECTURE}+{OBJECTIVE}:{evaluator_key(info['dataset'], shape)}"
             f":knn{info['knn_accuracy']:.4f}:{info['weights_sha256'][:12]}")
    return FeatureNetwork(label=label, cache_key=f"evaluator2-{info['weights_sha256'][:12]}",
                          weights_sha256=info["weights_sha256"],
                          feature_dim=int(info["feature_dim"]),
                          num_classes=int(info["config"]["projection_dim"]), fn=fn,
                          max_batch=500, logits_are_meaningful=False)
