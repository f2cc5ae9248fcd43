"""Throughput of the metric pipelines on this machine (prints figures; not a test).

1. FID Inception: images/s of the whole pipeline (quantise + TF1 resize to 299 + network
   + float64 mean/covariance + kept features + IS sums) against the bare network's forward
   pass on the same, already preprocessed, batch.  Goal: pipeline <= 1.1x the bare cost.
2. The metrics computed once per evaluation from 2048-d statistics (Fréchet distance
   from eigenvalues against scipy's sqrtm, with the speed-up; KID 100 x 1000;
   precision/recall on 10k x 10k).
3. The suite evaluator: seconds to score 10,000 32x32 images end to end (features +
   FD + IS + KID + precision/recall against cached reference statistics).  Goal: < 30 s.

Weights are random (the timings do not depend on their values; the real Inception
weights are not needed).  Usage:  python benchmarks/bench_metrics.py [--batch 50]
[--reps 5] [--eval-images 10000] [--skip-inception]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import metrics  # noqa: E402
from metrics import inception, weights  # noqa: E402
from metrics.evaluator import build_evaluator, evaluator_network  # noqa: E402
from metrics.features import FeatureRunner, FeatureStats, FirstN, collect  # noqa: E402


def _interleaved(candidates: dict, reps: int) -> dict:
    """Seconds per call of each candidate, run in turn ``reps`` times (A B A B ...), so a
    neighbour's load hits both alike.  The minimum is the least disturbed figure."""
    times = {name: [] for name in candidates}
    for _ in range(reps):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _plausible_weights(model, seed=0):
    """He-scaled random weights so activations stay in a normal range through 94 layers."""
    rng = np.random.default_rng(seed)
    for entry in weights.weight_table():
        variable = getattr(model.get_layer(entry.layer), entry.attr)
        shape = tuple(variable.shape)
        if entry.kind == "conv":
            value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:3]))
        elif entry.kind == "dense":
            value = rng.standard_normal(shape) * 0.02
        elif entry.attr == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        elif entry.attr == "gamma":
            value = np.ones(shape)
        else:
            value = rng.standard_normal(shape) * 0.1
        variable.assign(value.astype(np.float32))


def bench_inception(batch: int, reps: int) -> None:
    print(f"== FID Inception (inception-2015-12-05), batch {batch}, {reps} interleaved runs ==")
    model = inception.build_fid_inception()
    _plausible_weights(model)
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (batch, 32, 32, 3)).astype(np.float32)  # a generator's batch
    ready = inception.preprocess(images)  # the bare network gets the 299x299 input as given

    bare_fn = tf.function(lambda x: model(x, training=False))
    net = metrics.inception_feature_network(model=model)
    runner = FeatureRunner(net)

    def bare():
        bare_fn(ready)["pool_3"].numpy()

    def pipeline():
        acc = metrics.InceptionScoreAccumulator(batch, 1008)
        collect(runner, [images], limit=None, inception_score=acc, progress=False)
        acc.result()

    for fn in (bare, pipeline):  # trace + warm up
        fn()
    times = _interleaved({"bare": bare, "pipeline": pipeline}, reps)
    for name, label in (("bare", "bare forward (299x299 input):       "),
                        ("pipeline", "whole pipeline (32x32 [-1,1] input):")):
        best, median = min(times[name]), statistics.median(times[name])
        print(f"{label} min {best:6.3f} s/batch ({batch / best:5.2f} img/s), median {median:6.3f}"
              f"   runs {['%.2f' % t for t in times[name]]}")
    ratio_min = min(times["pipeline"]) / min(times["bare"])
    ratio_med = statistics.median(times["pipeline"]) / statistics.median(times["bare"])
    print(f"pipeline / bare = {ratio_min:.3f} (min)  {ratio_med:.3f} (median)   goal <= 1.1")
    # The pipeline's own work, timed apart from the network (less exposed to the noise of
    # a shared machine than the difference of two ~5 s figures).
    pre_fn = tf.function(lambda x: inception.preprocess(x))
    pre_fn(images).numpy()
    features = rng.standard_normal((batch, 2048)).astype(np.float32)
    logits = rng.standard_normal((batch, 1008)).astype(np.float32)

    def accumulate():
        moments, kept = metrics.RunningMoments(2048), FirstN(10000)
        acc = metrics.InceptionScoreAccumulator(batch, 1008)
        moments.update(features)
        kept.add(features)
        acc.update_logits(logits)

    extra = _interleaved({"preprocess": lambda: pre_fn(images).numpy(), "accumulate": accumulate}, 10)
    pre_t, acc_t = min(extra["preprocess"]), min(extra["accumulate"])
    print(f"pipeline's own work per batch: quantise+TF1 resize {pre_t * 1000:.1f} ms, float64 "
          f"moments + kept features + IS sums {acc_t * 1000:.1f} ms -> "
          f"(bare + these) / bare = {(min(times['bare']) + pre_t + acc_t) / min(times['bare']):.3f}")
    best = min(times["pipeline"])
    print(f"-> 10,000 generated images: ~{10000 * best / batch / 60:.1f} min; "
          f"50,000-image reference: ~{50000 * best / batch / 60:.0f} min at the best rate here")



def bench_statistics(reps: int) -> None:
    """The metrics computed once per evaluation from 2048-d statistics; the Fréchet
    distance both ways (eigenvalues, as the suite computes it, and TTUR's sqrtm)."""
    from metrics.stats import frechet_distance_sqrtm

    print("== metrics from 2048-d statistics (once per evaluation) ==")
    rng = np.random.default_rng(0)
    feats_a = np.abs(rng.standard_normal((10000, 2048))).astype(np.float32)
    feats_b = np.abs(rng.standard_normal((10000, 2048))).astype(np.float32) * 1.05
    cov = np.cov(feats_a[:4000].astype(np.float64), rowvar=False)
    cov_b = np.cov(feats_b[:4000].astype(np.float64), rowvar=False)
    args = (feats_a.mean(0), cov, feats_b.mean(0), cov_b)
    values = {}
    times = _interleaved({
        "eigenvalues": lambda: values.__setitem__("eigenvalues", metrics.frechet_distance(*args)),
        "sqrtm": lambda: values.__setitem__("sqrtm", frechet_distance_sqrtm(*args))}, reps)
    fast, slow = min(times["eigenvalues"]), min(times["sqrtm"])
    relative = abs(values["eigenvalues"] - values["sqrtm"]) / abs(values["sqrtm"])
    print(f"Fréchet distance, eigenvalues:      {fast:7.2f} s (min of {reps})")
    print(f"Fréchet distance, scipy sqrtm:      {slow:7.2f} s (min of {reps})")
    print(f"speed-up {slow / fast:.1f}x; values {values['eigenvalues']:.6f} vs {values['sqrtm']:.6f} "
          f"(relative difference {relative:.1e})")
    start = time.perf_counter()
    metrics.kernel_inception_distance(feats_a, feats_b)
    print(f"KID (100 subsets of 1000):          {time.perf_counter() - start:7.2f} s")
    start = time.perf_counter()
    metrics.precision_recall(feats_a, feats_b)
    print(f"precision/recall (10k vs 10k, k=3): {time.perf_counter() - start:7.2f} s")


def bench_evaluator(n_images: int) -> None:
    print(f"== suite evaluator, {n_images} 32x32x3 images ==")
    model = build_evaluator((32, 32, 3), 10)  # the default width; speed does not need training
    info = {"image_shape": [32, 32, 3], "dataset": "bench", "test_accuracy": 0.0,
            "weights_sha256": "0" * 64, "feature_dim": model.output["features"].shape[-1],
            "num_classes": 10, "task": "classes"}
    runner = FeatureRunner(evaluator_network(model, info))
    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, (n_images, 32, 32, 3)).astype(np.float32)
    runner(images[:500])  # trace + warm up
    ref_feats = runner(images[: min(n_images, 10000)])[0]
    ref = FeatureStats(ref_feats.mean(0).astype(np.float64), np.cov(ref_feats.astype(np.float64), rowvar=False),
                       ref_feats, len(ref_feats), {})

    start = time.perf_counter()
    batches = (images[i:i + 500] for i in range(0, n_images, 500))
    acc = metrics.InceptionScoreAccumulator(n_images, 10)
    fake = collect(runner, batches, limit=n_images, inception_score=acc, progress=False)
    t_features = time.perf_counter() - start
    result = metrics.metrics_from_stats(fake, ref, acc.result(), label="bench")
    total = time.perf_counter() - start
    print(f"features:               {t_features:6.2f} s  ({n_images / t_features:7.0f} img/s)")
    print(f"FD + IS + KID + P/R:    {total - t_features:6.2f} s")
    print(f"total to score {n_images}: {total:6.2f} s  (goal < 30 s)  keys: {sorted(result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--eval-images", type=int, default=10000)
    parser.add_argument("--skip-inception", action="store_true")
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU cores visible, "
          f"devices {[d.device_type for d in tf.config.list_logical_devices()]}")
    if not args.skip_inception:
        bench_inception(args.batch, args.reps)
    bench_statistics(min(args.reps, 3))
    bench_evaluator(args.eval_images)


if __name__ == "__main__":
    main()
