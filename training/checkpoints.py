"""Loading a finished run: one public call for the trainer, later stages, tests and
``python -m experiments.sample``.

A run folder's ``config.json`` records what built the model (family, stage, the
family config, image shape, batch, seed, and the folders of the earlier stages
it was built on); ``checkpoints/`` holds the trainer's ``tf.train.Checkpoint``
of it (weights, EMA copies where the family keeps them, optimiser slots). A run
is finished when ``metrics.json`` exists (written last by the runner).
"""
from __future__ import annotations

import dataclasses
import json
import os

import tensorflow as tf

from common.config import ConfigError, from_dict


class RunLoadError(ValueError):
    """A folder that is not a finished run of this suite (the message says why and what to do)."""


@dataclasses.dataclass
class LoadedRun:
    """A restored run: ``model`` is the family's GenerativeModel with the run's final weights."""
    run_dir: str
    model: object
    family: str
    stage: str
    config: object
    record: dict
    metrics: dict


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as err:
        raise RunLoadError(f"{path}: cannot read the run's {what} ({err}); "
                           f"it is damaged or not written by this suite") from err
    if not isinstance(value, dict):
        raise RunLoadError(f"{path}: the run's {what} is not a JSON object")
    return value


def read_record(run_dir: str, *, require_finished: bool = True) -> tuple[dict, dict]:
    """(config.json, metrics.json) of a run folder, with a clear error when it is not one."""
    if not os.path.isdir(run_dir):
        raise RunLoadError(f"{run_dir}: no such run folder")
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(config_path):
        raise RunLoadError(f"{run_dir} is not a run folder of this suite (no config.json); "
                           f"pass a folder under <out>/runs/")
    record = _read_json(config_path, "configuration")
    if "identity" not in record or "family" not in record["identity"]:
        raise RunLoadError(f"{config_path} is not a run configuration of this suite "
                           f"(no identity.family)")
    metrics_path = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(metrics_path):
        if require_finished:
            raise RunLoadError(f"{run_dir} is an unfinished run (no metrics.json); rerun the "
                               f"run_all.py command that started it to finish it")
        return record, {}
    return record, _read_json(metrics_path, "metrics")


def _stage_of(family, record):
    name = record.get("stage", family.final_stage.name)
    for stage in family.stages:
        if stage.name == name:
            return stage
    raise RunLoadError(f"the run records stage {name!r}, which family {family.name!r} "
                       f"does not have (stages: {', '.join(s.name for s in family.stages)})")


def _image_shape(record):
    if "image_shape" in record:
        return tuple(int(d) for d in record["image_shape"])
    size = int(record["identity"]["image_size"])  # runs written before image_shape was recorded
    return (size, size, 3)


def load_run(run_dir: str, *, require_finished: bool = True) -> LoadedRun:
    """Rebuild the model of the run in ``run_dir`` and restore its latest checkpoint.

    Earlier stages are loaded first from the folders the run recorded, and handed
    to the stage's builder (which freezes them). Call it inside a strategy's
    scope to get distributed variables. Raises :class:`RunLoadError` for a folder
    that is not a (finished) run of this suite, or whose checkpoint does not
    match the model its configuration describes.
    """
    from models import UnknownFamilyError, get_family

    run_dir = os.path.abspath(run_dir)
    record, metrics = read_record(run_dir, require_finished=require_finished)
    identity = record["identity"]
    try:
        family = get_family(identity["family"])
    except UnknownFamilyError as err:
        raise RunLoadError(f"{run_dir}: {err}") from err
    stage = _stage_of(family, record)
    saved_config = record.get("family_config", identity.get("family_config"))
    if saved_config is None and "fields" in identity:
        saved_config = identity["fields"]
    try:
        config = from_dict(family.config_cls, saved_config or {}, where=f"{run_dir}/config.json")
    except ConfigError as err:
        raise RunLoadError(str(err)) from err
    inputs = {name: load_run(os.path.join(run_dir, rel)).model
              for name, rel in record.get("inputs", {}).items()}
    batch = int(record.get("batch_size", getattr(config, stage.batch_field)))
    model = stage.build(config, _image_shape(record), batch, seed=int(identity.get("seed", 0)),
                        inputs=inputs)
    model(tf.zeros([1, *model.image_shape]))  # create every variable before restoring
    restore_weights(model, run_dir)
    return LoadedRun(run_dir=run_dir, model=model, family=family.name, stage=stage.name,
                     config=config, record=record, metrics=metrics)


def latest_checkpoint(run_dir: str):
    return tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))


def restore_weights(model, run_dir: str):
    """The model's variables (not its optimisers) from the run's latest checkpoint."""
    path = latest_checkpoint(run_dir)
    if path is None:
        raise RunLoadError(f"{run_dir} has no checkpoint under checkpoints/; rerun the "
                           f"run_all.py command that wrote it")
    try:
        status = tf.train.Checkpoint(model=model).read(path)
    except (tf.errors.OpError, ValueError, IndexError, OSError) as err:
        # (a truncated shard surfaces as IndexError "Read less bytes than requested")
        # An older checkpoint would hold older weights than the run reported: never fall back.
        raise RunLoadError(f"{path} is damaged ({type(err).__name__}: "
                           f"{(str(err).strip().splitlines() or [''])[0][:160]}); the run's final "
                           f"weights are lost: delete {os.path.join(run_dir, 'metrics.json')} "
                           f"and rerun run_all.py to train its last steps again") from err
    try:
        status.expect_partial().assert_existing_objects_matched()
    except AssertionError as err:
        raise RunLoadError(f"{path} does not hold the weights of the model its config.json "
                           f"describes ({str(err).splitlines()[0]})") from err
    return path
