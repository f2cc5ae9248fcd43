"""Score a finished run's images again: ``python -m metrics score RUN_DIR``.

A run's ``metrics.json`` says which network scored it (with its weights' SHA-256), how many
images and which seed; its ``config.json`` says which dataset, image shape and how many
train images made the reference statistics. From those alone this module recomputes every
metric of ``samples.npz`` (the exact uint8 images the runner scored) and sets the numbers
beside the recorded ones, so anyone can check a committed table on their own machine; or
it scores other images (``--samples FILE.npz``, e.g. from ``python -m experiments.sample``
with another sampler setting) under the run's exact protocol.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import RESULT_KEYS
from .errors import MetricsError
from .features import uint8_batches

#: The metrics compared with the recorded ones, in print order.
SCORED_KEYS = RESULT_KEYS[3:]


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MetricsError(f"{path.parent} is not a finished run ({path.name} is missing): "
                           f"pass a run folder under <out>/runs/ whose {what}") from None
    except json.JSONDecodeError as err:
        raise MetricsError(f"{path} is not valid JSON ({err}); the run folder is damaged, "
                           f"rerun run_all.py to rewrite it") from None


def run_protocol(run_dir) -> dict:
    """How the run in ``run_dir`` was scored: network kind and label, weights digest,
    number of images, KID seed, and the reference set (dataset, split, shape, count)."""
    run_dir = Path(run_dir)
    recorded = _read_json(run_dir / "metrics.json", "metrics.json exists (a complete run)")
    config = _read_json(run_dir / "config.json", "config.json exists")
    label = recorded.get("metric_network", "none")
    if label == "none" or not recorded.get("n_samples"):
        raise MetricsError(f"{run_dir} was not scored (run with --metrics none): there is "
                           f"nothing to compare with; rerun run_all.py with --metrics "
                           f"evaluator or inception into another --out")
    identity = config.get("identity", {})
    missing = [k for k in ("dataset", "image_size", "channels") if k not in identity]
    if missing or "train_examples" not in config:
        raise MetricsError(f"{run_dir}/config.json lacks {missing or ['train_examples']}: it "
                           f"was written by an older version; rescore by rerunning run_all.py")
    return {"network": "evaluator" if label.startswith("evaluator:") else "inception",
            "label": label, "sha256": recorded.get("metric_network_sha256"),
            "n_samples": int(recorded["n_samples"]), "seed": int(recorded.get("seed", 0)),
            "dataset": identity["dataset"], "image_size": int(identity["image_size"]),
            "channels": int(identity["channels"]),
            "reference_images": int(config["train_examples"]), "recorded": recorded}


def load_images(path, protocol: dict) -> np.ndarray:
    """The uint8 images [N, H, W, C] of an ``.npz`` (key ``images``), checked against the
    run's image shape and sample count (no pickles: ``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise MetricsError(f"{path} does not exist; regenerate a run's images with "
                           f"python -m experiments.sample RUN_DIR --n {protocol['n_samples']} "
                           f"--seed {protocol['seed'] + 777} --out {path} (the runner's "
                           f"sample seed is the run's seed + 777)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            images = npz["images"]
    except (ValueError, KeyError, OSError) as err:
        raise MetricsError(f"{path}: not an .npz with a uint8 'images' array ({err})") from None
    shape = (protocol["image_size"], protocol["image_size"], protocol["channels"])
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != shape:
        raise MetricsError(f"{path}: images are {images.dtype} {list(images.shape)}, the run "
                           f"needs uint8 [N, {', '.join(map(str, shape))}]")
    if len(images) < protocol["n_samples"]:
        raise MetricsError(f"{path} holds {len(images)} images; the run was scored on "
                           f"{protocol['n_samples']}")
    return images[:protocol["n_samples"]]


def rescore_run(run_dir, samples=None, *, data_dir=None, inception_weights=None, cache_dir=None,
                progress: bool = True) -> tuple[dict, dict]:
    """(recorded, recomputed) metrics of the run in ``run_dir``, scoring ``samples`` (an
    .npz; default the run's own samples.npz) exactly as the runner did: same network
    (refused if its weights' digest differs from the recorded one), same reference images,
    same number of samples, same KID seed."""
    from data import DatasetError, open_dataset

    from . import compute_metrics, default_cache_dir, load_feature_network

    cache_dir = Path(cache_dir or default_cache_dir())
    protocol = run_protocol(run_dir)
    images = load_images(samples or Path(run_dir) / "samples.npz", protocol)
    try:
        real = open_dataset(protocol["dataset"], "train", image_size=protocol["image_size"],
                            channels=protocol["channels"], data_dir=data_dir,
                            limit=protocol["reference_images"])
    except (DatasetError, ValueError) as err:
        raise MetricsError(f"the run's reference images cannot be read: {err}") from None
    network = load_feature_network(protocol["network"], real, cache_dir=cache_dir,
                                   inception_weights=inception_weights, data_dir=data_dir)
    if protocol["sha256"] and network.weights_sha256 != protocol["sha256"]:
        raise MetricsError(
            f"the {protocol['network']} found here (sha256 {network.weights_sha256}) is not "
            f"the one that scored {run_dir} ({protocol['sha256']}); its numbers would not be "
            f"comparable: use the weights the run names ({protocol['label']})")
    new = compute_metrics(uint8_batches(images), real, network=protocol["network"],
                          n_samples=protocol["n_samples"], cache_dir=cache_dir,
                          seed=protocol["seed"], progress=progress, feature_network=network)
    return protocol["recorded"], new


def differences(recorded: dict, new: dict, rtol: float) -> list[str]:
    """The metrics whose recomputed value differs from the recorded one by more than rtol."""
    out = []
    for key in SCORED_KEYS:
        a, b = recorded.get(key), new.get(key)
        if a is None or b is None or (math.isnan(a) and math.isnan(b)):
            continue
        if not math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12):
            out.append(key)
    return out


def comparison_table(recorded: dict, new: dict) -> str:
    """A plain-text table: metric, recorded, recomputed, relative difference."""
    lines = [f"{'metric':<16}{'recorded':>14}{'recomputed':>14}{'rel. diff':>12}"]
    for key in SCORED_KEYS:
        a, b = recorded.get(key), new.get(key)
        if a is None or b is None:
            continue
        rel = abs(a - b) / max(abs(a), 1e-300) if a == a and b == b else math.nan
        lines.append(f"{key:<16}{a:>14.6g}{b:>14.6g}{rel:>12.2e}")
    return "\n".join(lines)
