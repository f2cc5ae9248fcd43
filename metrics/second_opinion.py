"""Both evaluators on one set of images, and the second evaluator on every committed run.

:func:`score_both` scores uint8 images against the real train split with the suite's
first evaluator (:mod:`metrics.evaluator`: ``fd_eval``, ``kid``, ``precision``,
``recall``, ``is_eval``) and with the second (:mod:`metrics.contrastive`: ``fd_eval2``,
``kid_eval2``, ``precision_eval2``, ``recall_eval2``), each through the pipeline every run
goes through (:func:`metrics.features.collect`, cached
:func:`metrics.features.reference_stats`, :func:`metrics.metrics_from_stats`): the
first evaluator's numbers equal a run's metrics.json for its samples.npz and seed.

:func:`score_runs` does it for every scored run of a results folder (reading its
samples.npz, metrics.json and config.json, writing nothing there), and
``python -m metrics second-opinion RUNS_DIR --out FILE.csv`` writes the table and prints
the rank agreement (:mod:`metrics.agreement`).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

from .errors import MetricsError

#: The keys of :func:`score_both`'s result, in table order.
BOTH_KEYS = ("n_samples", "reference_images", "fd_eval", "kid", "kid_subset_std", "precision",
             "recall", "is_eval", "is_split_std", "fd_eval2", "kid_eval2", "kid_eval2_subset_std",
             "precision_eval2", "recall_eval2", "metric_network", "metric_network_sha256",
             "metric_network2", "metric_network2_sha256")
#: The columns of :func:`score_runs`' rows (and of second-opinion's CSV).
#: Each row names both networks (label and weights' SHA-256) and its image counts, so the
#: CSV says by itself what produced every number in it.
RUN_COLUMNS = ("run", "family", "loss", "latent_size", "seed", "n_samples", "reference_images",
               "fd_eval", "fd_eval_recomputed", "kid", "precision", "recall", "fd_eval2",
               "kid_eval2", "kid_eval2_subset_std", "precision_eval2", "recall_eval2",
               "metric_network", "metric_network_sha256", "metric_network2",
               "metric_network2_sha256")


@dataclasses.dataclass
class _Context:
    real: object  # data.ImageSource, the reference images
    networks: tuple  # (first, second) FeatureNetwork
    runners: tuple
    references: tuple  # FeatureStats of ``real`` per network


_CONTEXTS: dict = {}


def _context(dataset: str, image_shape, *, cache_dir, data_dir, reference_limit, progress
             ) -> _Context:
    """The reference images, both networks and their reference statistics, built once per
    (dataset, shape, reference count, cache, data folder) in this process."""
    from data import DatasetError, open_dataset

    from . import load_feature_network
    from .contrastive import contrastive_network, load_or_train_contrastive
    from .features import FeatureRunner, reference_stats
    from .weights import default_cache_dir

    cache_dir = Path(cache_dir or default_cache_dir())
    size, _, channels = (int(d) for d in image_shape)
    key = (dataset, size, channels, reference_limit, str(cache_dir), str(data_dir))
    if key in _CONTEXTS:
        return _CONTEXTS[key]
    try:
        real = open_dataset(dataset, "train", image_size=size, channels=channels,
                            data_dir=data_dir, limit=reference_limit)
    except (DatasetError, ValueError) as err:
        raise MetricsError(f"the reference images cannot be read: {err}") from None
    first = load_feature_network("evaluator", real, cache_dir=cache_dir, data_dir=data_dir)
    model, info = load_or_train_contrastive(real.name, real.image_shape, cache_dir=cache_dir,
                                            data_dir=data_dir, verbose=progress)
    second = contrastive_network(model, info)
    runners = (FeatureRunner(first), FeatureRunner(second))
    references = tuple(reference_stats(r, real, cache_dir=cache_dir, progress=progress)
                       for r in runners)
    _CONTEXTS.clear()  # one at a time: the reference split stays in memory with it
    context = _CONTEXTS[key] = _Context(real, (first, second), runners, references)
    return context


def _checked_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise MetricsError(f"images must be uint8 [N, H, W, C] with C 1 or 3, got "
                           f"{images.dtype} {list(images.shape)}")
    from . import IS_SPLITS

    if len(images) < IS_SPLITS:
        raise MetricsError(f"{len(images)} images: at least {IS_SPLITS} are needed")
    return images


def score_both(images, *, dataset: str = "fashion_mnist", cache_dir=None, data_dir=None,
               seed: int = 0, reference_limit: int | None = None,
               progress: bool = False) -> dict:
    """Every metric of both evaluators for uint8 ``images`` [N, H, W, C] (all N scored)
    against the train split of ``dataset`` at the images' shape (its first
    ``reference_limit`` images; default all, as the runs), KID subsets drawn with ``seed``
    (a run's seed reproduces its metrics.json).

    Returns :data:`BOTH_KEYS`: ``n_samples`` and ``reference_images`` (the train images
    behind the reference statistics), the first evaluator's ``fd_eval``, ``kid`` (+
    ``kid_subset_std``), ``precision``, ``recall``, ``is_eval`` (+ ``is_split_std``) and
    the second evaluator's ``fd_eval2``, ``kid_eval2`` (+ ``kid_eval2_subset_std``),
    ``precision_eval2``, ``recall_eval2``; each network's label and weights' SHA-256
    (``metric_network``, ``metric_network2``, ...). Reference statistics are cached in
    ``cache_dir`` (default $GENBENCH_CACHE or ~/.cache/genbench) like a run's.
    """
    from . import IS_SPLITS, metrics_from_stats
    from .features import collect, uint8_batches
    from .stats import InceptionScoreAccumulator

    images = _checked_images(images)
    context = _context(dataset, images.shape[1:], cache_dir=cache_dir, data_dir=data_dir,
                       reference_limit=reference_limit, progress=progress)
    out = {"reference_images": context.real.num_examples}
    for which, (net, runner, ref) in enumerate(zip(context.networks, context.runners,
                                                   context.references)):
        is_acc = (InceptionScoreAccumulator(len(images), net.num_classes, IS_SPLITS)
                  if net.logits_are_meaningful else None)
        fake = collect(runner, uint8_batches(images), limit=len(images), keep="first",
                       inception_score=is_acc, label="images", progress=progress)
        m = metrics_from_stats(fake, ref, is_acc.result() if is_acc else None, label=net.label,
                               seed=seed, weights_sha256=net.weights_sha256)
        if which == 0:
            out.update({"n_samples": m["n_samples"], "fd_eval": m["fid"], "kid": m["kid"],
                        "kid_subset_std": m["kid_subset_std"], "precision": m["precision"],
                        "recall": m["recall"], "is_eval": m["is"],
                        "is_split_std": m["is_split_std"], "metric_network": m["metric_network"],
                        "metric_network_sha256": m["metric_network_sha256"]})
        else:
            out.update({"fd_eval2": m["fid"], "kid_eval2": m["kid"],
                        "kid_eval2_subset_std": m["kid_subset_std"],
                        "precision_eval2": m["precision"], "recall_eval2": m["recall"],
                        "metric_network2": m["metric_network"],
                        "metric_network2_sha256": m["metric_network_sha256"]})
    return {k: out[k] for k in BOTH_KEYS}


def scored_runs(runs_dir) -> list[Path]:
    """The run folders under ``runs_dir`` that hold samples.npz and a metrics.json scored
    by the first evaluator (stage folders and unscored runs are left out), by name."""
    found = []
    for folder in sorted(Path(runs_dir).glob("*/")):
        metrics_path = folder / "metrics.json"
        if not ((folder / "samples.npz").is_file() and metrics_path.is_file()):
            continue
        try:
            recorded = json.loads(metrics_path.read_text())
        except (OSError, ValueError):
            continue
        label = recorded.get("metric_network") if isinstance(recorded, dict) else None
        if isinstance(label, str) and label.startswith("evaluator:") and recorded.get("n_samples"):
            found.append(folder)
    return found


def score_runs(runs_dir, *, cache_dir=None, data_dir=None, progress: bool = False) -> list[dict]:
    """One row per scored run under ``runs_dir`` (:func:`scored_runs`): its recorded
    ``fd_eval`` (metrics.json's ``fid``), ``kid``, ``precision``, ``recall`` (and the network
    that recorded them), ``fd_eval_recomputed`` (the first evaluator again, a check), and
    the second evaluator's ``fd_eval2``, ``kid_eval2``, ``precision_eval2``,
    ``recall_eval2``, each under the run's protocol (its samples.npz,
    sample count, reference images and KID seed). Reads the runs, writes nothing."""
    from .rescore import load_run

    rows = []
    for folder in scored_runs(runs_dir):
        protocol, images = load_run(folder)
        recorded = protocol["recorded"]
        shape_limit = protocol["reference_images"]
        both = score_both(images, dataset=protocol["dataset"], cache_dir=cache_dir,
                          data_dir=data_dir, seed=protocol["seed"], reference_limit=shape_limit,
                          progress=progress)
        row = {"run": folder.name, "family": recorded.get("family"), "loss": recorded.get("loss"),
               "latent_size": recorded.get("latent_size"), "seed": protocol["seed"],
               "n_samples": both["n_samples"], "reference_images": both["reference_images"],
               "fd_eval": recorded.get("fid"), "fd_eval_recomputed": both["fd_eval"],
               "kid": recorded.get("kid"), "precision": recorded.get("precision"),
               "recall": recorded.get("recall"),
               # the recorded scores above, so the network that recorded them
               "metric_network": recorded.get("metric_network"),
               "metric_network_sha256": recorded.get("metric_network_sha256"),
               **{k: both[k] for k in ("fd_eval2", "kid_eval2", "kid_eval2_subset_std",
                                       "precision_eval2", "recall_eval2", "metric_network2",
                                       "metric_network2_sha256")}}
        rows.append(row)
        if progress:
            print(f"[metrics] {folder.name}: fd_eval {row['fd_eval']:.4g} "
                  f"(again {row['fd_eval_recomputed']:.4g}), fd_eval2 {row['fd_eval2']:.4g}, "
                  f"kid_eval2 {row['kid_eval2']:.4g}", file=sys.stderr, flush=True)
    return rows


def write_csv(rows, path, columns=None) -> Path:
    """``rows`` (dicts) as a CSV with ``columns`` (default: the first row's keys)."""
    from common.files import atomic_path

    rows = list(rows)
    columns = list(columns or (rows[0].keys() if rows else []))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(row.get(k)) for k in columns})
    return path


def _cell(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def second_opinion_command(args) -> int:
    """``python -m metrics second-opinion RUNS_DIR --out FILE.csv``."""
    from .agreement import not_robust, rank_agreement

    runs = Path(args.runs_dir)
    if not runs.is_dir():
        raise MetricsError(f"{runs} is not a folder: pass a results folder's runs/ "
                           f"(e.g. reports/quick/fashion_mnist/runs)")
    if not scored_runs(runs):
        raise MetricsError(f"{runs} holds no scored run (folders with samples.npz and a "
                           f"metrics.json scored by the evaluator)")
    rows = score_runs(runs, cache_dir=args.cache_dir, data_dir=args.data_dir,
                      progress=not args.quiet)
    write_csv(rows, args.out, RUN_COLUMNS)
    print(f"{'run':<44}{'fd_eval':>10}{'fd_eval2':>10}{'kid_eval2':>11}")
    for row in rows:
        print(f"{row['run']:<44}{row['fd_eval']:>10.4g}{row['fd_eval2']:>10.4g}"
              f"{row['kid_eval2']:>11.4g}")
    agreement = rank_agreement(rows, "fd_eval", "fd_eval2")
    disagree = not_robust(rows, "fd_eval", "fd_eval2")
    pairs = len(rows) * (len(rows) - 1) // 2
    print(f"Spearman rho(fd_eval, fd_eval2) = {agreement['rho']:.4f} over {agreement['n']} "
          f"runs (p = {agreement['p']:.2g}); {len(disagree)} of {pairs} pairs ordered "
          f"differently (not robust)")
    print(f"[metrics] wrote {args.out}", file=sys.stderr)
    return 0
