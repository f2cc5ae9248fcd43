"""Image-generation metrics: FID, IS, KID, precision/recall.

Two feature networks:

* ``inception``: the FID Inception graph ``inception-2015-12-05`` (TTUR / TF-GAN /
  torch-fidelity / pytorch-fid / StudioGAN), rebuilt in Keras (:mod:`.inception`) with
  weights read from the original ``.tgz`` or the published ``.pth`` port
  (:mod:`.weights`).  Numbers comparable with the literature.
* ``evaluator``: a compact classifier trained by this suite on the dataset
  (:mod:`.evaluator`), for machines without the Inception weights.  Its ``fid`` is the
  Fréchet distance of its features (``fd_eval``) and its ``is`` the score of its softmax
  (``is_eval``): comparable between runs of this suite only.

Public API (used by run_all.py):

    resolve_metric_network(choice, *, inception_weights, cache_dir) -> 'inception'|'evaluator'|'none'
    compute_metrics(fake_batches, real, *, network, n_samples, cache_dir,
                    inception_weights=None, data_dir=None, seed=0) -> dict

A second opinion and a calibration for every number (the report writer):

    score_both(images_uint8, *, cache_dir, data_dir, seed=0) -> dict   both evaluators
        (fd_eval, kid, precision, recall, is_eval; fd_eval2, kid_eval2, ...)
    score_runs(runs_dir, *, cache_dir, data_dir) -> rows                 every scored run
    calibration_rows(n=2000, *, seed=0, data_dir, cache_dir) -> rows     degraded real images
    rank_agreement(rows, key_a, key_b) -> {rho, p, n}; not_robust(rows, key_a, key_b)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

from .errors import MetricsError

# Importing this package costs no TensorFlow: the names below are imported from their
# modules when first used (PEP 562), so ``python -m metrics --help`` answers at once and
# the command-line entry points can silence TensorFlow's native logging before it loads.
_LAZY = {
    "features": ("MAX_KEPT_FEATURES", "FeatureNetwork", "FeatureRunner", "FeatureStats",
                 "collect", "reference_stats", "uint8_batches"),
    "inception": ("NETWORK_NAME", "build_fid_inception", "preprocess", "tf1_resize_bilinear"),
    "stats": ("InceptionScoreAccumulator", "RunningMoments", "frechet_distance",
              "inception_score", "kernel_inception_distance", "precision_recall"),
    "weights": ("WEIGHT_SOURCES", "WEIGHTS_FLAG", "cached_weights", "default_cache_dir",
                "load_inception_weights", "read_inception_tensors", "resolve_weights_file"),
    "evaluator": ("load_evaluator",),
    # the second evaluator, calibration rows and rank agreement (issue 26, item 4)
    "second_opinion": ("score_both", "score_runs"),
    "calibration": ("calibration_sets", "calibration_rows", "score_calibration"),
    "agreement": ("spearman", "rank_agreement", "pairwise_orders", "not_robust"),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name):
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once
    return value


def __dir__():
    return sorted({*globals(), *_LAZY_NAMES})


__all__ = [
    "MetricsError", "resolve_metric_network", "compute_metrics", "NETWORK_CHOICES",
    "build_fid_inception", "load_inception_weights", "preprocess", "tf1_resize_bilinear",
    "frechet_distance", "inception_score", "kernel_inception_distance", "precision_recall",
    "default_cache_dir", "WEIGHT_SOURCES", "inception_feature_network", "RESULT_KEYS",
    "MAX_KEPT_FEATURES", "FeatureNetwork", "FeatureRunner", "FeatureStats", "collect",
    "reference_stats", "InceptionScoreAccumulator", "RunningMoments", "metrics_from_stats",
    "NETWORK_NAME", "resolve_weights_file", "cached_weights", "load_feature_network",
    "uint8_batches", "load_evaluator", "score_both", "score_runs", "calibration_sets",
    "calibration_rows", "score_calibration", "spearman", "rank_agreement", "pairwise_orders",
    "not_robust",
]

NETWORK_CHOICES = ("auto", "inception", "evaluator", "none")
# Spreads within one run (IS over its splits, KID over its subsets) are named for what
# they are; a table's ``*_std`` columns are spreads across seeds and never mix with them.
RESULT_KEYS = ("metric_network", "metric_network_sha256", "n_samples", "fid", "is",
               "is_split_std", "kid", "kid_subset_std", "precision", "recall")
IS_SPLITS = 10
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
PR_K = 3


def resolve_metric_network(choice: str, *, inception_weights: str | None, cache_dir) -> str:
    """'inception' | 'evaluator' | 'none' for a ``--metrics`` choice (run_all.py).

    ``auto``: inception when its weights are at hand (the given path, or a file already
    in the cache), else the suite-trained evaluator.  ``inception``: the weights are
    resolved now (downloaded into the cache when missing) so that a machine without
    internet fails here, with a MetricsError naming the URLs and ``--inception-weights``,
    not after training.
    """
    if choice not in NETWORK_CHOICES:
        raise MetricsError(f"unknown metric network {choice!r}; choose one of {NETWORK_CHOICES}")
    from .weights import WEIGHTS_FLAG, cached_weights, default_cache_dir, resolve_weights_file

    cache_dir = cache_dir or default_cache_dir()
    if inception_weights and not Path(inception_weights).expanduser().is_file():
        raise MetricsError(f"{WEIGHTS_FLAG} {inception_weights}: no such file")
    if choice == "auto":
        at_hand = bool(inception_weights) or cached_weights(cache_dir) is not None
        return "inception" if at_hand else "evaluator"
    if choice == "inception":
        resolve_weights_file(inception_weights, cache_dir)
    return choice


_INCEPTION_CACHE: dict = {}


def inception_feature_network(inception_weights=None, cache_dir=None, *, model=None) -> FeatureNetwork:
    """The FID Inception as a FeatureNetwork (pool_3 features, unbiased logits).

    Built once per (weights file, strategy) in this process.  ``model``: use an already
    built and loaded model instead (tests, benchmarks).
    """
    import tensorflow as tf

    from .features import FeatureNetwork
    from .inception import NETWORK_NAME, build_fid_inception, preprocess
    from .weights import (default_cache_dir, load_inception_weights, read_inception_tensors,
                          resolve_weights_file)

    if model is None:
        path = resolve_weights_file(inception_weights, cache_dir or default_cache_dir())
        strategy = tf.distribute.get_strategy()
        key = (str(path.resolve()), id(strategy))
        model = _INCEPTION_CACHE.get(key)
        if model is None:
            # Read and check the file before building the 95 MB network: a bad file fails fast.
            tensors = read_inception_tensors(path)
            with strategy.scope():
                model = build_fid_inception()
            report = load_inception_weights(model, path, tensors=tensors)
            model.weights_sha256 = report["sha256"]  # recorded with every metric
            _INCEPTION_CACHE.clear()  # one copy (95 MB) at a time
            _INCEPTION_CACHE[key] = model

    def fn(images):
        out = model(preprocess(images), training=False)
        return out["pool_3"], out["logits_unbiased"]

    digest = getattr(model, "weights_sha256", None)
    return FeatureNetwork(label=NETWORK_NAME, cache_key=NETWORK_NAME, feature_dim=2048,
                          num_classes=1008, fn=fn, max_batch=50, weights_sha256=digest)


def _evaluator_feature_network(real, cache_dir, data_dir) -> FeatureNetwork:
    from .evaluator import evaluator_network, load_or_train_evaluator

    # Trained (once) on the whole train split, opened afresh: ``real`` may be cut short
    # (open_dataset(limit=...)) and the cached evaluator must not inherit that.
    # A shipped evaluator of the same dataset at another shape is preferred to training
    # a new one (its images are resized): the repository's weights reproduce anywhere.
    model, info = load_or_train_evaluator(real.name, real.image_shape, cache_dir=cache_dir,
                                          data_dir=data_dir, adapt_shipped=True)
    return evaluator_network(model, info)


def load_feature_network(network: str, real, *, cache_dir,
                         inception_weights: str | None = None, data_dir=None) -> FeatureNetwork:
    """The FeatureNetwork that ``compute_metrics`` scores ``real``'s runs with, for a
    resolved ``network`` ('inception' | 'evaluator'): the Inception graph, or the evaluator
    of ``real``'s dataset and image shape (trained now when neither the repository nor the
    cache has it). Also what other measures in the same space use (thesis 003's control
    grid diversity)."""
    if network == "inception":
        return inception_feature_network(inception_weights, cache_dir)
    if network == "evaluator":
        return _evaluator_feature_network(real, cache_dir, data_dir)
    raise MetricsError(f"no feature network for {network!r}; choose inception or evaluator")


def metrics_from_stats(fake: FeatureStats, ref: FeatureStats, is_result, *, label: str,
                       seed: int = 0, weights_sha256: str | None = None) -> dict:
    from .stats import frechet_distance, kernel_inception_distance, precision_recall

    fid = frechet_distance(fake.mu, fake.sigma, ref.mu, ref.sigma)
    kid, kid_std = kernel_inception_distance(fake.features, ref.features, subsets=KID_SUBSETS,
                                             subset_size=KID_SUBSET_SIZE, seed=seed)
    precision, recall = precision_recall(ref.features, fake.features, k=PR_K)
    is_mean, is_split_std = is_result if is_result is not None else (math.nan, math.nan)
    return {"metric_network": label, "metric_network_sha256": weights_sha256,
            "n_samples": int(fake.n_samples), "fid": float(fid), "is": float(is_mean),
            "is_split_std": float(is_split_std), "kid": float(kid),
            "kid_subset_std": float(kid_std), "precision": float(precision),
            "recall": float(recall)}


def compute_metrics(fake_batches: Iterable, real, *, network: str, n_samples: int, cache_dir,
                    inception_weights: str | None = None, data_dir=None, seed: int = 0,
                    reference_limit: int | None = None, progress: bool = True,
                    feature_network: FeatureNetwork | None = None) -> dict:
    """FID / IS / KID / precision-recall of ``n_samples`` generated images against ``real``.

    fake_batches: iterable of float32 [B, H, W, C] batches in [-1, 1] (or (images, labels)
        tuples); it must yield at least ``n_samples`` images.
    real: a ``data`` ImageSource; its statistics (the whole split, or the first
        ``reference_limit`` images) are computed once and cached in ``cache_dir``.
    network: 'inception' | 'evaluator' | 'none' | 'auto' (see resolve_metric_network).
    Returns the RESULT_KEYS; for the evaluator ``fid`` is fd_eval and ``is`` is_eval, and
    ``metric_network`` says which network measured.
    """
    from .features import FeatureRunner, collect, reference_stats
    from .stats import InceptionScoreAccumulator
    from .weights import default_cache_dir

    cache_dir = Path(cache_dir or default_cache_dir())
    if network == "auto":
        network = resolve_metric_network(network, inception_weights=inception_weights,
                                         cache_dir=cache_dir)
    if network == "none":
        return {"metric_network": "none", "metric_network_sha256": None, "n_samples": 0,
                **{k: math.nan for k in RESULT_KEYS[3:]}}
    if network not in ("inception", "evaluator"):
        raise MetricsError(f"unknown metric network {network!r}; choose one of {NETWORK_CHOICES}")
    if int(n_samples) < IS_SPLITS:
        raise MetricsError(f"n_samples={n_samples}: at least {IS_SPLITS} are needed")
    if feature_network is None:
        feature_network = load_feature_network(network, real, cache_dir=cache_dir,
                                               inception_weights=inception_weights,
                                               data_dir=data_dir)
    runner = FeatureRunner(feature_network)
    ref = reference_stats(runner, real, cache_dir=cache_dir, limit=reference_limit, progress=progress)
    is_acc = InceptionScoreAccumulator(int(n_samples), feature_network.num_classes, IS_SPLITS)
    fake = collect(runner, fake_batches, limit=int(n_samples), keep="first", inception_score=is_acc,
                   label="generated", progress=progress)
    if fake.n_samples < int(n_samples):
        raise MetricsError(f"fake_batches yielded {fake.n_samples} images; n_samples={n_samples}")
    is_result = is_acc.result() if feature_network.logits_are_meaningful else None
    return metrics_from_stats(fake, ref, is_result, label=feature_network.label, seed=seed,
                              weights_sha256=feature_network.weights_sha256)
