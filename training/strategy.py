"""Choosing the tf.distribute strategy every run trains under."""
from __future__ import annotations

import json
import os

import tensorflow as tf

from training.strategy_names import STRATEGIES


def _tpu_resolver():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return resolver
    except (ValueError, tf.errors.NotFoundError, RuntimeError):
        return None


def _tpu_hinted() -> bool:
    # Only probe for a TPU where one can be: probing elsewhere may wait on a
    # metadata server that is not there.
    return bool(os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")
                or os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0"))


def _check_tf_config(text: str) -> None:
    """Fail early, naming TF_CONFIG, on a value MultiWorkerMirroredStrategy cannot use."""
    try:
        config = json.loads(text)
    except ValueError as err:
        raise RuntimeError(f"the environment variable TF_CONFIG is not valid JSON ({err}); "
                           f"fix it (a JSON object with 'cluster' and 'task') or unset it") from err
    if not isinstance(config, dict):
        raise RuntimeError(f"the environment variable TF_CONFIG holds a JSON "
                           f"{type(config).__name__}, not an object; fix it (a JSON object "
                           f"with 'cluster' and 'task') or unset it")


def choose_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """auto: TPU if present, MultiWorker if TF_CONFIG is set, Mirrored if any GPU, else default."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "tpu" or (name == "auto" and _tpu_hinted()):
        resolver = _tpu_resolver()
        if resolver is not None:
            return tf.distribute.TPUStrategy(resolver)
        if name == "tpu":
            raise RuntimeError("--strategy tpu: no TPU found (set TPU_NAME or run on a TPU VM)")
    if name == "multiworker" or (name == "auto" and os.environ.get("TF_CONFIG")):
        if name == "multiworker" and not os.environ.get("TF_CONFIG"):
            raise RuntimeError("--strategy multiworker needs TF_CONFIG describing the cluster")
        _check_tf_config(os.environ["TF_CONFIG"])
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "auto" and gpus:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
    """Whether this process writes reports (worker 0 of a multi-worker cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def strategy_name(strategy) -> str:
    """The public class name (TF's own class names are private aliases)."""
    for name in ("TPUStrategy", "MultiWorkerMirroredStrategy", "MirroredStrategy"):
        if isinstance(strategy, getattr(tf.distribute, name)):
            return name
    return "default"
