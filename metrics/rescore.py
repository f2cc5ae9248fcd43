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
import numbers
from pathlib import Path

import numpy as np

from common.run_record import CONFIG_FILE, METRICS_FILE, RunConfig, metrics_record

from . import RESULT_KEYS
from .errors import MetricsError

#: The metrics compared with the recorded ones, in print order.
SCORED_KEYS = RESULT_KEYS[3:]
_FIX_DAMAGED = ("restore it (git checkout -- FILE for a committed run) or rerun run_all.py, "
                "which finishes the run again")


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise MetricsError(f"{path.parent} is not a finished run ({path.name} is missing): "
                           f"pass a run folder under <out>/runs/ whose {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MetricsError(f"{path} is not valid JSON ({err}); the run folder is damaged, "
                           f"rerun run_all.py to rewrite it") from None
    except OSError as err:
        raise MetricsError(f"{path} cannot be read ({err.strerror or err})") from None
    if not isinstance(data, dict):
        raise MetricsError(f"{path} holds a JSON {type(data).__name__}, not an object: the file "
                           f"is damaged; {_FIX_DAMAGED.replace('FILE', str(path))}")
    return data


def _checked(path: Path, data: dict, key: str, kind, what: str, ok=lambda v: True):
    """data[key], refused (one line naming file, key, value and fix) unless of ``kind``."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, kind) or not ok(value):
        raise MetricsError(f"{path}: {key} is {value!r}, expected {what}: the file is "
                           f"damaged; {_FIX_DAMAGED.replace('FILE', str(path))}")
    return value


def _users_of(run_dir: Path) -> list[str]:
    """Names of the run folders beside ``run_dir`` that take it as an input stage."""
    users = []
    for config in sorted(run_dir.parent.glob(f"*/{CONFIG_FILE}")):
        try:
            inputs = RunConfig.from_json(json.loads(config.read_text())).inputs or {}
            if any((config.parent / str(p)).resolve() == run_dir.resolve()
                   for p in inputs.values()):
                users.append(config.parent.name)
        except (OSError, ValueError, AttributeError, TypeError):
            continue
    return users


def run_protocol(run_dir) -> dict:
    """How the run in ``run_dir`` was scored: network kind and label, weights digest,
    number of images, KID seed, and the reference set (dataset, split, shape, count);
    every value checked (a MetricsError naming the file and the key otherwise)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MetricsError(f"{run_dir} is not a folder: pass a finished run's folder "
                           f"(<out>/runs/<run>)")
    metrics_path, config_path = run_dir / METRICS_FILE, run_dir / CONFIG_FILE
    # the records (common.run_record) read as mappings of the files' keys: checked key by key
    recorded = metrics_record(_read_json(metrics_path, "metrics.json exists (a complete run)"))
    config = RunConfig.from_json(_read_json(config_path, "config.json exists"))
    if "metric_network" not in recorded and isinstance(recorded.get("stage"), str):
        users = _users_of(run_dir)
        rows = (f"a row that uses it: {', '.join(users[:3])}{' ...' if len(users) > 3 else ''}"
                if users else "the folder of a table row that uses it")
        raise MetricsError(f"{run_dir} holds the {recorded['stage']} stage of the "
                           f"{recorded.get('family', '?')} family, which makes no samples to "
                           f"score (its reconstructions' metrics are in its metrics.json); "
                           f"score {rows}")
    label = _checked(metrics_path, recorded, "metric_network", str, "a network's name",
                     lambda v: v != "")
    if label == "none" or not recorded.get("n_samples"):
        raise MetricsError(f"{run_dir} was not scored (run_all.py ran it with --metrics none): "
                           f"there is nothing to compare with; score its images with python -m "
                           f"metrics fid {run_dir / 'samples.npz'} REFERENCE, or rerun run_all.py "
                           f"with --metrics evaluator into another --out")
    n_samples = _checked(metrics_path, recorded, "n_samples", numbers.Integral,
                         "an integer >= 10 (the number of images scored)", lambda v: v >= 10)
    seed = _checked(metrics_path, {"seed": recorded.get("seed", 0)}, "seed", numbers.Integral,
                    "an integer >= 0", lambda v: v >= 0)
    digest = recorded.get("metric_network_sha256")
    if digest is not None:
        _checked(metrics_path, recorded, "metric_network_sha256", str, "a SHA-256 (64 hex "
                 "digits) or null", lambda v: len(v) == 64)
    for key in SCORED_KEYS:
        if recorded.get(key) is not None:
            _checked(metrics_path, recorded, key, numbers.Real, "a number or null")
    identity = config.get("identity", {})
    if not isinstance(identity, dict):
        identity = {}
    missing = [k for k in ("dataset", "image_size", "channels") if k not in identity]
    if missing or "train_examples" not in config:
        raise MetricsError(f"{run_dir}/config.json lacks {missing or ['train_examples']}: it "
                           f"was written by an older version; rescore by rerunning run_all.py")
    where = config_path
    dataset = _checked(where, identity, "dataset", str, "a dataset name", lambda v: v != "")
    image_size = _checked(where, identity, "image_size", numbers.Integral, "an integer >= 1",
                          lambda v: v >= 1)
    channels = _checked(where, identity, "channels", numbers.Integral, "1 or 3",
                        lambda v: v in (1, 3))
    reference = _checked(where, config, "train_examples", numbers.Integral, "an integer >= 2",
                         lambda v: v >= 2)
    return {"run_dir": str(run_dir),
            "network": "evaluator" if label.startswith("evaluator:") else "inception",
            "label": label, "sha256": digest, "n_samples": int(n_samples), "seed": int(seed),
            "dataset": dataset, "image_size": int(image_size), "channels": int(channels),
            "reference_images": int(reference), "recorded": recorded}


def load_images(path, protocol: dict, *, own: bool = False) -> np.ndarray:
    """The uint8 images [N, H, W, C] of an ``.npz`` (key ``images``; no pickles) or a folder
    of images, checked against the run's image shape and sample count. ``own``: the run's
    own samples.npz (its absence is answered with how to draw them again)."""
    from .imagesets import open_set

    path = Path(path)
    name = "the run's samples.npz" if own else "--samples"
    if own and not path.exists():
        raise MetricsError(f"{path} does not exist; regenerate a run's images with "
                           f"python -m experiments.sample RUN_DIR --n {protocol['n_samples']} "
                           f"--seed {protocol['seed'] + 777} --out {path} (the runner's "
                           f"sample seed is the run's seed + 777)")
    image_set = open_set(path, name)  # refuses missing, empty, unreadable, pickled
    if image_set.kind == "stats":
        raise MetricsError(f"{name} ({path}) holds statistics, not images: score needs the "
                           f"images (compare statistics with python -m metrics fid)")
    shape = (protocol["image_size"], protocol["image_size"], protocol["channels"])
    if image_set.images is not None:
        images = image_set.images
        have = f"{images.dtype} {list(images.shape)}"
    else:
        images = None
        have = ", ".join(f"[{n}, {', '.join(map(str, s))}]"
                         for s, n in image_set.shapes.most_common(3))
    if list(image_set.shapes) != [shape]:
        raise MetricsError(f"{name} ({path}): images are {have}, the run needs uint8 "
                           f"[N, {', '.join(map(str, shape))}]; to compare images of another "
                           f"shape use python -m metrics fid {path} REFERENCE")
    if image_set.count < protocol["n_samples"]:
        raise MetricsError(f"{name} ({path}) holds {image_set.count} images; the run was "
                           f"scored on {protocol['n_samples']}")
    if images is None:
        images = np.stack([image_set.image(i) for i in range(protocol["n_samples"])])
    return images[:protocol["n_samples"]]


def load_run(run_dir, samples=None) -> tuple[dict, np.ndarray]:
    """(protocol, images) of the run in ``run_dir``: every input of ``score`` read and
    checked, before TensorFlow is imported."""
    protocol = run_protocol(run_dir)
    own = samples is None
    images = load_images(Path(run_dir) / "samples.npz" if own else samples, protocol, own=own)
    return protocol, images


def _inception_weights_at_hand(protocol: dict, run_dir, inception_weights, cache_dir) -> None:
    from .weights import WEIGHTS_FLAG, resolve_weights_file, weights_dir

    try:
        resolve_weights_file(inception_weights, cache_dir, download=False)
    except MetricsError:
        given = f"{WEIGHTS_FLAG} {inception_weights}: no such file; " if inception_weights else ""
        raise MetricsError(f"{given}{run_dir} was scored by {protocol['label']} (sha256 "
                           f"{protocol['sha256']}), whose weights are not at hand: download "
                           f"them with python -m metrics fetch (into {weights_dir(cache_dir)}), "
                           f"or pass {WEIGHTS_FLAG} PATH (the file with that SHA-256)") from None


def score_run(loaded, *, data_dir=None, inception_weights=None, cache_dir=None,
              progress: bool = True) -> tuple[dict, dict]:
    """(recorded, recomputed) metrics of a run read by :func:`load_run`, scored exactly as
    the runner did: same network (refused if its weights' digest differs from the recorded
    one), same reference images, same number of samples, same KID seed."""
    from data import DatasetError, open_dataset

    from . import compute_metrics, default_cache_dir, load_feature_network
    from .features import uint8_batches

    protocol, images = loaded
    run_dir = protocol.get("run_dir", "the run")
    cache_dir = Path(cache_dir or default_cache_dir())
    if protocol["network"] == "inception":
        _inception_weights_at_hand(protocol, run_dir, inception_weights, cache_dir)
    try:
        real = open_dataset(protocol["dataset"], "train", image_size=protocol["image_size"],
                            channels=protocol["channels"], data_dir=data_dir,
                            limit=protocol["reference_images"])
    except (DatasetError, ValueError) as err:
        advice = str(err).replace("data_dir=DATA_DIR", "--data-dir DIR")  # this command's flag
        raise MetricsError(f"the run's reference images cannot be read: {advice}") from None
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


def rescore_run(run_dir, samples=None, *, data_dir=None, inception_weights=None, cache_dir=None,
                progress: bool = True) -> tuple[dict, dict]:
    """(recorded, recomputed) metrics of the run in ``run_dir``, scoring ``samples`` (an
    .npz or a folder; default the run's own samples.npz) exactly as the runner did."""
    return score_run(load_run(run_dir, samples), data_dir=data_dir,
                     inception_weights=inception_weights, cache_dir=cache_dir,
                     progress=progress)


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
