"""Loading a finished run: one public call for the runner (later stages build on the
earlier ones), tests and ``python -m experiments.sample``.

A run folder's ``config.json`` (``common.run_record.RunConfig``) records what built the
model (family, stage, the family config, image shape, batch, seed, and the folders of
the earlier stages it was built on); ``checkpoints/`` holds the trainer's checkpoints of
it (``training.checkpoints``). A run is finished when ``metrics.json`` exists (written
last by the runner).
"""
from __future__ import annotations

import dataclasses
import os
import sys

import tensorflow as tf

from common.config import ConfigError, from_dict
from common.run_record import NotARecord, RunConfig, RunMetrics, read_metrics
from models import UnknownFamilyError, get_family
from training.checkpoints import CheckpointError
from training.checkpoints import restore_weights as _restore_weights
from training.runtime import precision_policy


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
    record: RunConfig
    metrics: object  # RunMetrics or StageMetrics; {} for an unfinished run


def _read(read, path, what):
    try:
        return read()
    except NotARecord:
        raise RunLoadError(f"{path}: the run's {what} is not a JSON object") from None
    except (OSError, ValueError) as err:
        raise RunLoadError(f"{path}: cannot read the run's {what} ({err}); "
                           f"it is damaged or not written by this suite") from err


def read_record(run_dir: str, *, require_finished: bool = True) -> tuple:
    """(config.json, metrics.json) of a run folder as records, with a clear error when it is
    not one; metrics is {} for an unfinished run when ``require_finished`` is False."""
    if not os.path.isdir(run_dir):
        raise RunLoadError(f"{run_dir}: no such run folder")
    config_path = RunConfig.path(run_dir)
    if not os.path.exists(config_path):
        raise RunLoadError(f"{run_dir} is not a run folder of this suite (no config.json); "
                           f"pass a folder under <out>/runs/")
    record = _read(lambda: RunConfig.read(run_dir), config_path, "configuration")
    if not isinstance(record.identity, dict) or "family" not in record.identity:
        raise RunLoadError(f"{config_path} is not a run configuration of this suite "
                           f"(no identity.family)")
    metrics_path = RunMetrics.path(run_dir)
    if not os.path.exists(metrics_path):
        if require_finished:
            raise RunLoadError(f"{run_dir} is an unfinished run (no metrics.json); rerun the "
                               f"run_all.py command that started it to finish it")
        return record, {}
    return record, _read(lambda: read_metrics(run_dir), metrics_path, "metrics")


def _stage_of(family, record):
    name = record.get("stage", family.final_stage.name)
    for stage in family.stages:
        if stage.name == name:
            return stage
    raise RunLoadError(f"the run records stage {name!r}, which family {family.name!r} "
                       f"does not have (stages: {', '.join(s.name for s in family.stages)})")


def _image_shape(record):
    if "image_shape" in record:
        return tuple(int(d) for d in record.image_shape)
    size = int(record.identity["image_size"])  # runs written before image_shape was recorded
    return (size, size, 3)


def load_run(run_dir: str, *, require_finished: bool = True,
             weights_only: bool = False) -> LoadedRun:
    """Rebuild the model of the run in ``run_dir`` and restore its latest checkpoint.

    Earlier stages are loaded first from the folders the run recorded, and handed
    to the stage's builder (which freezes them). Call it inside a strategy's
    scope to get distributed variables. Raises :class:`RunLoadError` for a folder
    that is not a (finished) run of this suite, or whose checkpoint does not
    match the model its configuration describes.
    """
    run_dir = os.path.abspath(run_dir)
    record, metrics = read_record(run_dir, require_finished=require_finished)
    identity = record.identity
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
    inputs = _inputs(family, config, record, run_dir)
    batch = int(record.get("batch_size", getattr(config, stage.batch_field)))
    # a run trained in half precision is rebuilt under its dtype policy (its weights are
    # float32 in every policy; its layers then compute as they did in training)
    with precision_policy(identity.get("precision", "float32")):
        model = stage.build(config, _image_shape(record), batch,
                            seed=int(identity.get("seed", 0)), inputs=inputs)
        model(tf.zeros([1, *model.image_shape]))  # create every variable before restoring
    restore_weights(model, run_dir, weights_only=weights_only)
    return LoadedRun(run_dir=run_dir, model=model, family=family.name, stage=stage.name,
                     config=config, record=record, metrics=metrics)


def _inputs(family, config, record, run_dir) -> dict:
    """The earlier stages the run was built on, each restored from its own folder; a
    folder deleted or damaged since is built afresh instead, with a line on stderr: the
    run's own checkpoint holds the frozen stage's weights too (they are part of its
    model), and ``restore_weights`` then refuses a checkpoint that does not."""
    inputs = {}
    for name, rel in record.get("inputs", {}).items():
        folder = os.path.normpath(os.path.join(run_dir, rel))
        try:
            inputs[name] = load_run(folder).model
        except RunLoadError as err:
            stage = _stage_of(family, {"stage": name})
            inputs[name] = stage.build(config, _image_shape(record),
                                       int(getattr(config, stage.batch_field)),
                                       seed=int(record.identity.get("seed", 0)),
                                       inputs=dict(inputs))
            print(f"note: the {name} stage cannot be loaded from {folder} "
                  f"({str(err).splitlines()[0][:200]}); its weights come from the run's own "
                  f"checkpoint, which holds them", file=sys.stderr)
    return inputs


def restore_weights(model, run_dir: str, *, weights_only: bool = False):
    """The model's variables (not its optimisers) from the run's latest checkpoint, or its
    shipped ``weights/`` (``experiments.export``); RunLoadError when there is none or it
    does not fit."""
    try:
        return _restore_weights(model, run_dir, weights_only=weights_only)
    except CheckpointError as err:
        raise RunLoadError(str(err)) from err
