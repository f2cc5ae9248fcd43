"""Which network scores the runs: the metric function every run calls, the check that a
complete run was scored by the network asked for, and thesis 003's diversity features.
"""
from __future__ import annotations

from common.files import writable_dir_problem
from experiments.runner import RunError
from experiments.thesis_003 import FeatureSpace
from metrics import (compute_metrics, default_cache_dir, inception_feature_network,
                     load_feature_network, resolve_metric_network)


def network_kind(label) -> str:
    """'none' | 'evaluator' | 'inception' for a metrics.json ``metric_network`` label."""
    if label in (None, "none", "not computed"):
        return "none"
    return "evaluator" if str(label).startswith("evaluator:") else "inception"


def check_scored_by(plan, metrics, network):
    """A complete run is reused only if its numbers come from the network asked for."""
    label = metrics.metric_network
    if network_kind(label) != network:
        raise RunError(f"{plan.run_dir} was scored with metric network {label!r}, this "
                       f"command asks for --metrics {network}; choose another --out or "
                       f"rerun with the --metrics it was scored with")


def make_scorer(request, train_source):
    """(the metric function every run calls, or None with ``--metrics none``; the
    network's kind). ``request``: an ``experiments.options.Request`` (its metrics,
    inception_weights, data_dir and quiet are read).

    Generated images are compared with the train split, as TTUR does; its
    statistics are computed once per (dataset, split, network, size, the images
    used) and cached. Everything that can fail is checked here, before any
    training: the cache must be writable and Inception weights must load into the
    network (MetricsError, e.g. ``--metrics inception`` offline without weights).
    """
    if request.metrics == "none":
        return None, "none"
    cache_dir = default_cache_dir()
    problem = writable_dir_problem(cache_dir)
    if problem:
        raise RuntimeError(f"the metrics cache {cache_dir}: {problem}; set GENBENCH_CACHE to "
                           f"a folder you can write to (or use --metrics none)")
    network = resolve_metric_network(request.metrics,
                                     inception_weights=request.inception_weights,
                                     cache_dir=cache_dir)
    if network == "inception":  # load (and keep) the weights now: a bad file fails here
        inception_feature_network(request.inception_weights, cache_dir)

    def score(fake_batches, n_samples, seed):
        return compute_metrics(fake_batches, train_source, network=network, n_samples=n_samples,
                               cache_dir=cache_dir, inception_weights=request.inception_weights,
                               data_dir=request.data_dir, seed=seed,
                               progress=not request.quiet)

    return score, network


def diversity_features(request, train_source, network):
    """The feature space thesis 003 also measures the control grid's diversity in: the
    runs' metric network, loaded now (an evaluator not yet trained is trained here, before
    any run). None with ``--metrics none``, saying that diversity is then measured in pixel
    space only."""
    if network == "none":
        print("[run_all] thesis 003: --metrics none, so the control grid's diversity is "
              "measured in pixel space only (give --metrics auto|evaluator|inception to "
              "measure it in the metric network's feature space too)")
        return None
    return FeatureSpace.of(load_feature_network(
        network, train_source, cache_dir=default_cache_dir(),
        inception_weights=request.inception_weights, data_dir=request.data_dir))
