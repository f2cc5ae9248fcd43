"""Fetch or check the FID Inception weights; train the suite's evaluator reproducibly.

    python -m metrics fetch [--cache-dir DIR]
        download the weights into the cache (verifying the recorded SHA-256)
    python -m metrics check [--inception-weights PATH] [--cache-dir DIR]
        load a weights file (or the cached one) into the Keras network: every tensor must
        map exactly once; prints the format, the digest and the number of tensors
    python -m metrics train-evaluator --dataset NAME --out DIR [--image-size 32]
            [--channels 1|3] [--data-dir DIR] [--config JSON] [--quiet]
        train the evaluator in this (fresh) process with a pinned runtime (see
        metrics/evaluator.py) and save weights.weights.h5 + info.json into DIR
    python -m metrics score RUN_DIR [--samples FILE.npz] [--data-dir DIR] [--rtol 1e-4]
        score a finished run's samples.npz again exactly as the runner did (same network,
        refused if its weights' SHA-256 differs, same reference images, sample count and
        seed) and print the numbers beside its metrics.json; exit 1 if any differs by more
        than --rtol. With --samples, score those images under the run's protocol instead
"""
from __future__ import annotations

import argparse
import json
import sys

# TensorFlow is imported (not started) by these; the runtime starts at the first op, so
# train-evaluator can still pin it.
from . import MetricsError, build_fid_inception, default_cache_dir, load_inception_weights
from .weights import WEIGHTS_FLAG, resolve_weights_file


def _train_evaluator(args) -> None:
    from .evaluator import EvaluatorConfig, pin_runtime, save_evaluator, train_evaluator

    runtime = pin_runtime()  # first, before any op
    from data import DatasetError, open_dataset
    from common.config import ConfigError, from_dict

    try:
        config = from_dict(EvaluatorConfig, json.loads(args.config or "{}"), where="--config")
        sources = [open_dataset(args.dataset, split, image_size=args.image_size,
                                channels=args.channels, data_dir=args.data_dir)
                   for split in ("train", "validation" if args.dataset == "celeb_a" else "test")]
    except (DatasetError, ConfigError, ValueError) as err:
        raise MetricsError(str(err)) from err
    model, info = train_evaluator(*sources, config, verbose=not args.quiet)
    info = save_evaluator(model, {**info, "runtime": runtime}, args.out)
    print(f"[metrics] evaluator saved in {args.out} (test accuracy {info['test_accuracy']:.4f}, "
          f"sha256 {info['weights_sha256']})", file=sys.stderr, flush=True)


def _score(args) -> int:
    from .rescore import comparison_table, differences, rescore_run

    recorded, new = rescore_run(args.run_dir, args.samples, data_dir=args.data_dir,
                                inception_weights=args.inception_weights,
                                cache_dir=args.cache_dir, progress=not args.quiet)
    what = args.samples or f"{args.run_dir}/samples.npz"
    print(f"[metrics] {what}: {new['n_samples']} images scored by {new['metric_network']}")
    print(comparison_table(recorded, new))
    if args.samples:  # other images: nothing is expected to match
        return 0
    differ = differences(recorded, new, args.rtol)
    if differ:
        print(f"[metrics] differs from the recorded metrics.json beyond rtol {args.rtol}: "
              f"{', '.join(differ)}")
        return 1
    print(f"[metrics] every metric equals the recorded one to rtol {args.rtol}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metrics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("fetch", "check", "train-evaluator", "score"))
    parser.add_argument("run_dir", nargs="?", help="score: a finished run's folder")
    parser.add_argument("--samples", default=None,
                        help="score: an .npz of uint8 images to score instead of samples.npz")
    parser.add_argument("--rtol", type=float, default=1e-4,
                        help="score: the relative difference that counts as a mismatch")
    parser.add_argument(WEIGHTS_FLAG, dest="inception_weights", default=None)
    parser.add_argument("--cache-dir", default=None, help=f"default: {default_cache_dir()}")
    parser.add_argument("--dataset", help="train-evaluator: the dataset to train on")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3, choices=[1, 3])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", help="train-evaluator: the folder to save it in")
    parser.add_argument("--config", default=None, help="EvaluatorConfig fields as JSON")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "score":
            if not args.run_dir:
                parser.error("score needs RUN_DIR (a finished run's folder)")
            return _score(args)
        if args.command == "train-evaluator":
            if not (args.dataset and args.out):
                parser.error("train-evaluator needs --dataset and --out")
            _train_evaluator(args)
            return 0
        path = resolve_weights_file(args.inception_weights, args.cache_dir)
        print(f"weights: {path}")
        if args.command == "check":
            report = load_inception_weights(build_fid_inception(), path)
            print(f"format {report['format']}, sha256 {report['sha256']}, "
                  f"{report['assigned']} tensors mapped, ignored {len(report['ignored'])} "
                  "non-weight buffers")
    except MetricsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
