"""The suite-trained evaluator: offline metrics when the Inception weights are not at hand.

A compact convolutional classifier trained on the dataset's train split.  Its global
average pooled last-conv features give a Fréchet distance (``fd_eval``), KID and
precision/recall; its softmax an Inception-style score (``is_eval``).  These numbers are
only comparable with each other (same dataset, same evaluator), never with Inception FIDs.

Datasets without at least two classes (CelebA's images all carry label 0) train the
same network on rotation prediction (0/90/180/270 degrees) instead, a label-free task
whose features still separate real from generated images; their ``is_eval`` is NaN.

Looked up per (dataset, image size, channels) = ``<key>`` in two places, in order:

1. ``metrics/evaluators/<key>/`` in this repository: the evaluators that scored the
   committed results, shipped so that anyone re-scoring a committed ``samples.npz``
   gets the committed numbers;
2. ``<cache>/evaluator/<key>/``, where one is trained and saved when neither has it.

The metrics pipeline (``metrics.load_feature_network``) adds one step before training:
3. an evaluator the repository ships for the same dataset at another shape, with every
   image (real and generated alike) resized and its channels converted to that shape
   (``_adapt``), as Inception resizes to 299x299. Thesis 003's 64x64x3 face runs on a
   gray stand-in (Fashion-MNIST) are scored so by the shipped 32x32x1 evaluator instead
   of a new one trained for half an hour; the metric label names the evaluator used.

Each holds ``weights.weights.h5`` and ``info.json`` (test accuracy, training setup, the
weights' SHA-256, which every metric records as ``metric_network_sha256``).

Reproducible training: a new evaluator is trained in a fresh Python process
(``python -m metrics train-evaluator``) whose TensorFlow runtime is pinned before its
first op: op determinism on, one inter-op pool of fixed size, a fixed number of intra-op
threads whatever the machine's core count, oneDNN off (its kernels are chosen by the
CPU's instruction set), fixed seeds, and a data order fixed by the seed. Two trainings on
one machine give identical weights (tested); another CPU type may still round
differently, which is why the weights that scored committed results are committed.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import keras
import tensorflow as tf

from .errors import MetricsError
from .features import FeatureNetwork

EVALUATOR_FORMAT = 1
SHIPPED_DIR = Path(__file__).resolve().parent / "evaluators"
# The pinned runtime of evaluator training: fixed pool sizes make the order of every
# floating-point reduction independent of the machine's core count.
INTRA_OP_THREADS = 2
INTER_OP_THREADS = 1


@dataclasses.dataclass
class EvaluatorConfig:
    width: int = 16  # features = 4 * width
    epochs: int = 6
    batch_size: int = 128
    learning_rate: float = 2e-3
    max_train_examples: int | None = None  # per epoch; None = the whole train split
    max_test_examples: int | None = None
    seed: int = 0


def pin_runtime() -> dict:
    """Pin this process's TensorFlow runtime for reproducible training (see the module
    docstring); returns what was set, for info.json. Must run before the first op
    (``python -m metrics train-evaluator`` calls it first thing): a runtime already
    started is a MetricsError, since its pools can no longer change."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(INTRA_OP_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
    except RuntimeError as err:
        raise MetricsError(f"pin_runtime() must run before TensorFlow's first op: {err}") from err
    tf.config.experimental.enable_op_determinism()
    return runtime_record(pinned=True)


def runtime_record(pinned: bool) -> dict:
    """The facts about this process's runtime that decide the trained weights."""
    return {"pinned": pinned, "tensorflow": tf.__version__, "keras": keras.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}


def _pool_stages(size: int) -> int:
    return max(1, int(round(math.log2(max(size, 8) / 8))))


def build_evaluator(image_shape, num_classes: int, width: int = 16) -> keras.Model:
    """Conv-BN-ReLU stages with 2x2 max pools down to about 8x8, then global average pool.

    Outputs ``{'features': [B, 4*width], 'logits': [B, num_classes]}``.
    """
    height, width_px, channels = (int(d) for d in image_shape)
    inputs = keras.Input((height, width_px, channels), name="images")
    x = inputs
    stages = _pool_stages(min(height, width_px))
    plan = [(width, 1)] + [(min(4 * width, width * 2 ** (i + 1)), 2) for i in range(stages - 1)]
    plan.append((4 * width, 2))
    for s, (filters, convs) in enumerate(plan):
        for c in range(convs):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    name=f"stage{s}.conv{c}")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"stage{s}.bn{c}")(x)
            x = keras.layers.ReLU(name=f"stage{s}.relu{c}")(x)
        if s < len(plan) - 1:
            x = keras.layers.MaxPooling2D(2, name=f"stage{s}.pool")(x)
    features = keras.layers.GlobalAveragePooling2D(name="features")(x)
    dropped = keras.layers.Dropout(0.2, name="dropout")(features)
    logits = keras.layers.Dense(num_classes, name="logits")(dropped)
    return keras.Model(inputs, {"features": features, "logits": logits}, name="evaluator")


def _rotation_batch(images, labels):
    """Rotation task: each image once per quarter turn, label = number of turns."""
    del labels
    rotated = [tf.image.rot90(images, k) for k in range(4)]
    targets = [tf.fill([tf.shape(images)[0]], k) for k in range(4)]
    return tf.concat(rotated, 0), tf.cast(tf.concat(targets, 0), tf.int32)


def evaluator_key(dataset: str, image_shape) -> str:
    return f"{dataset}-{'x'.join(str(int(d)) for d in image_shape)}"


def evaluator_dir(cache_dir, dataset: str, image_shape) -> Path:
    """Where an evaluator trained on this machine is cached."""
    return Path(cache_dir) / "evaluator" / evaluator_key(dataset, image_shape)


def shipped_dir(dataset: str, image_shape) -> Path:
    """Where the repository's committed evaluator for (dataset, shape) lives, if any."""
    return SHIPPED_DIR / evaluator_key(dataset, image_shape)


def _accuracy(model: keras.Model, source, batch_size: int, limit: int | None, task: str) -> float:
    correct = total = 0
    predict = tf.function(lambda x: model(x, training=False)["logits"], reduce_retracing=True)
    for images, labels in source.batches(batch_size):
        if task == "rotation":
            images, labels = _rotation_batch(images, labels)
        logits = predict(images)
        correct += int(tf.reduce_sum(tf.cast(tf.argmax(logits, -1, output_type=tf.int32) == labels,
                                             tf.int32)))
        total += int(labels.shape[0])
        if limit is not None and total >= limit:
            break
    return correct / max(total, 1)


def train_evaluator(train_src, test_src, config: EvaluatorConfig | None = None, *,
                    verbose: bool = True) -> tuple[keras.Model, dict]:
    """Train on ``train_src`` (an ImageSource), measure accuracy on ``test_src``."""
    config = config or EvaluatorConfig()
    if tuple(train_src.image_shape) != tuple(test_src.image_shape):
        raise MetricsError(f"train {train_src.image_shape} and test {test_src.image_shape} differ")
    task = "classes" if len(train_src.class_names) >= 2 else "rotation"
    num_classes = len(train_src.class_names) if task == "classes" else 4
    keras.utils.set_random_seed(config.seed)
    model = build_evaluator(train_src.image_shape, num_classes, config.width)
    trainer = keras.Model(model.input, model.output["logits"])
    per_epoch = train_src.steps_per_epoch(config.batch_size, drop_remainder=True)
    if config.max_train_examples:
        per_epoch = max(1, min(per_epoch, config.max_train_examples // config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, per_epoch * config.epochs,
                                                      alpha=0.05)
    trainer.compile(optimizer=keras.optimizers.Adam(schedule),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=["accuracy"])
    data = train_src.batches(config.batch_size, shuffle_seed=config.seed, repeat=True,
                             drop_remainder=True)
    if task == "rotation":
        data = data.map(_rotation_batch)
    start = time.perf_counter()
    if verbose:
        print(f"[metrics] training the evaluator for {train_src.name} {train_src.image_shape} "
              f"({task}, {config.epochs} x {per_epoch} steps)", file=sys.stderr, flush=True)
    history = trainer.fit(data, epochs=config.epochs, steps_per_epoch=per_epoch,
                          verbose=2 if verbose else 0)
    accuracy = _accuracy(model, test_src, 500, config.max_test_examples, task)
    info = {
        "format": EVALUATOR_FORMAT, "dataset": train_src.name, "image_shape": list(train_src.image_shape),
        "task": task, "num_classes": num_classes, "class_names": list(train_src.class_names),
        "test_split": test_src.split, "test_accuracy": round(float(accuracy), 4),
        "train_accuracy_last_epoch": round(float(history.history["accuracy"][-1]), 4),
        "train_examples_seen": per_epoch * config.batch_size * config.epochs,
        "train_seconds": round(time.perf_counter() - start, 1),
        "feature_dim": int(model.output["features"].shape[-1]),
        "config": dataclasses.asdict(config),
        "train_fingerprint": _fingerprint(train_src), "runtime": runtime_record(pinned=False),
    }
    if verbose:
        print(f"[metrics] evaluator test accuracy {accuracy:.4f}", file=sys.stderr, flush=True)
    return model, info


def _fingerprint(source):
    """SHA-256 of the images trained on (data.ImageSource), or None for other sources."""
    fingerprint = getattr(source, "fingerprint", None)
    return fingerprint(source.num_examples) if callable(fingerprint) else None


def save_evaluator(model: keras.Model, info: dict, folder) -> dict:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "weights.weights.h5"
    tmp = folder / f"tmp{os.getpid()}.weights.h5"
    with warnings.catch_warnings():  # Keras' h5 writer trips a numpy-2 copy= deprecation notice
        warnings.filterwarnings("ignore", category=DeprecationWarning, message="__array__")
        model.save_weights(tmp)
    os.replace(tmp, weights)
    info = {**info, "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    from common.files import write_text  # atomic, with the permissions open() gives

    write_text(folder / "info.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def _read_evaluator(folder: Path) -> tuple[keras.Model, dict]:
    """The evaluator in ``folder`` (both files present); what is wrong with it raised as
    OSError, ValueError, KeyError, TypeError or IndexError."""
    info_path, weights = folder / "info.json", folder / "weights.weights.h5"
    info = json.loads(info_path.read_text())
    if not isinstance(info, dict):
        raise ValueError("info.json is not a JSON object")
    if info.get("format") != EVALUATOR_FORMAT:
        raise ValueError(f"info.json has format {info.get('format')!r}, this version reads "
                         f"{EVALUATOR_FORMAT}")
    if hashlib.sha256(weights.read_bytes()).hexdigest() != info.get("weights_sha256"):
        raise ValueError(f"{weights.name} does not match the SHA-256 recorded in info.json")
    model = build_evaluator(info["image_shape"], info["num_classes"], info["config"]["width"])
    model.load_weights(weights)
    # what evaluator_network reads: missing keys fail here, not in a run's metrics
    missing = [k for k in ("dataset", "test_accuracy", "feature_dim", "task") if k not in info]
    if missing:
        raise KeyError(f"info.json lacks {missing}")
    return model, info


_DAMAGED = (OSError, ValueError, KeyError, TypeError, IndexError)


def load_evaluator(folder) -> tuple[keras.Model, dict]:
    """The evaluator saved in ``folder`` (``weights.weights.h5`` + ``info.json``).

    A wrong path, a folder without an evaluator, an info.json of another format, weights
    not matching the SHA-256 recorded in info.json or weights that do not load: a
    MetricsError naming the folder and what is wrong, never None. Where "no evaluator
    there yet" has a meaning (the cache, where one is trained then) use
    :func:`cached_evaluator`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MetricsError(f"{folder} is not a folder: an evaluator is a folder holding "
                           f"weights.weights.h5 and info.json (e.g. "
                           f"{shipped_dir('fashion_mnist', (32, 32, 1))})")
    missing = [name for name in ("info.json", "weights.weights.h5")
               if not (folder / name).is_file()]
    if missing:
        raise MetricsError(f"{folder} holds no evaluator ({' and '.join(missing)} missing): "
                           f"pass a folder holding weights.weights.h5 and info.json")
    try:
        return _read_evaluator(folder)
    except _DAMAGED as err:
        raise MetricsError(f"the evaluator in {folder} is damaged ({type(err).__name__}: "
                           f"{err}): restore the folder, or delete it where it is a cache (an "
                           f"evaluator is trained again there)") from None


def cached_evaluator(folder) -> tuple[keras.Model, dict] | None:
    """The evaluator in ``folder``, or None when there is none there (yet: the caller then
    trains one) or it is damaged (said on stderr; the caller trains it again, so a damaged
    cache costs one retraining instead of failing every run)."""
    folder = Path(folder)
    if not ((folder / "info.json").is_file() and (folder / "weights.weights.h5").is_file()):
        return None
    try:
        return _read_evaluator(folder)
    except _DAMAGED as err:
        print(f"[metrics] the cached evaluator in {folder} is damaged ({type(err).__name__}: "
              f"{err}); training it again", file=sys.stderr, flush=True)
        return None


def shipped_other_shapes(dataset: str, image_shape) -> list[Path]:
    """The repository's evaluators of ``dataset`` at shapes other than ``image_shape``,
    best first: same channel count first, then the larger image side, then by name."""
    want = tuple(int(d) for d in image_shape)
    found = []
    for folder in sorted(SHIPPED_DIR.glob(f"{dataset}-*")):
        info_path = folder / "info.json"
        try:
            info = json.loads(info_path.read_text())
            shape = tuple(int(d) for d in info["image_shape"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if info.get("dataset") == dataset and shape != want:
            found.append(((shape[2] != want[2], -shape[0], folder.name), folder))
    return [folder for _, folder in sorted(found)]


def load_or_train_evaluator(dataset: str, image_shape, *, cache_dir, data_dir=None,
                            train_src=None, test_src=None, config: EvaluatorConfig | None = None,
                            verbose: bool = True,
                            adapt_shipped: bool = False) -> tuple[keras.Model, dict]:
    """The evaluator for (dataset, image shape): the repository's shipped one, else the
    cached one, else (``adapt_shipped``) one the repository ships for the same dataset at
    another shape, which ``evaluator_network`` feeds resized images, else a new one
    trained, saved in the cache and returned.

    A new one is trained in a pinned subprocess (:func:`train_in_subprocess`) from the
    named dataset; given in-memory ``train_src``/``test_src`` (tests), it is trained in
    this process instead, and its info.json says ``runtime.pinned: false``.
    """
    for folder in (shipped_dir(dataset, image_shape),
                   evaluator_dir(cache_dir, dataset, image_shape)):
        loaded = cached_evaluator(folder)  # None: no evaluator there (yet)
        if loaded is not None:
            return loaded
    for folder in (shipped_other_shapes(dataset, image_shape) if adapt_shipped else []):
        loaded = cached_evaluator(folder)
        if loaded is not None:
            if verbose:
                print(f"[metrics] no evaluator for {dataset} {tuple(image_shape)}: using the "
                      f"repository's {folder.name} on images resized to its shape",
                      file=sys.stderr, flush=True)
            return loaded
    folder = evaluator_dir(cache_dir, dataset, image_shape)
    if train_src is None or test_src is None:
        train_in_subprocess(dataset, image_shape, folder, data_dir=data_dir, config=config,
                            verbose=verbose)
        return load_evaluator(folder)  # a MetricsError if what was trained does not load
    model, info = train_evaluator(train_src, test_src, config, verbose=verbose)
    info = save_evaluator(model, info, folder)
    return model, info


def train_in_subprocess(dataset: str, image_shape, folder, *, data_dir=None,
                        config: EvaluatorConfig | None = None, verbose: bool = True) -> None:
    """Train the evaluator of ``dataset`` at ``image_shape`` into ``folder`` in a fresh
    process with a pinned runtime (``python -m metrics train-evaluator``)."""
    import subprocess

    config = config or EvaluatorConfig()
    size, _, channels = (int(d) for d in image_shape)
    command = [sys.executable, "-m", "metrics", "train-evaluator", "--dataset", dataset,
               "--image-size", str(size), "--channels", str(channels), "--out", str(folder),
               "--config", json.dumps(dataclasses.asdict(config))]
    if data_dir:
        command += ["--data-dir", str(data_dir)]
    if not verbose:
        command.append("--quiet")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONHASHSEED": "0",
           "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    root = str(Path(__file__).resolve().parent.parent)  # the repository: `-m metrics` resolves
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    print(f"[metrics] no evaluator for {dataset} {tuple(image_shape)} yet: training one into "
          f"{folder} in a pinned process", file=sys.stderr, flush=True)
    # Its progress and errors go straight to this process's stdout/stderr, as they happen.
    done = subprocess.run(command, env=env, cwd=root,
                          stdout=None if verbose else subprocess.DEVNULL)
    if done.returncode != 0:
        raise MetricsError(f"training the evaluator of {dataset} {tuple(image_shape)} failed "
                           f"(exit {done.returncode}); its error is printed above")


def _adapt(images, shape):
    """Resize / convert channels of [-1, 1] images to the evaluator's input shape."""
    height, width, channels = (int(d) for d in shape)
    if images.shape[-1] != channels:
        images = (tf.tile(images, [1, 1, 1, 3]) if channels == 3
                  else tf.reduce_mean(images, axis=-1, keepdims=True))
    if images.shape[1] != height or images.shape[2] != width:
        images = tf.image.resize(images, (height, width), method="bilinear", antialias=True)
    return images


def evaluator_network(model: keras.Model, info: dict) -> FeatureNetwork:
    shape = info["image_shape"]

    def fn(images):
        out = model(_adapt(images, shape), training=False)
        return out["features"], out["logits"]

    # The label names the weights too: two evaluators never share a table column.
    label = (f"evaluator:{evaluator_key(info['dataset'], shape)}:acc{info['test_accuracy']:.4f}"
             f":{info['weights_sha256'][:12]}")
    return FeatureNetwork(label=label, cache_key=f"evaluator-{info['weights_sha256'][:12]}",
                          weights_sha256=info["weights_sha256"],
                          feature_dim=int(info["feature_dim"]), num_classes=int(info["num_classes"]),
                          fn=fn, max_batch=500, logits_are_meaningful=info.get("task") == "classes")
