"""A run folder's checkpoints: its latest one, and a model's weights read back from it.

``checkpoints/`` holds the trainer's ``tf.train.Checkpoint`` of the model (weights, EMA
copies where the family keeps them, optimiser slots). Loading a whole finished run
(its record, its earlier stages, its model) is ``experiments.runs.load_run``.
"""
from __future__ import annotations

import os
import re
import shutil
import sys

import tensorflow as tf

from common.run_record import METRICS_FILE

#: the index file TensorFlow reads to find a folder's newest checkpoint
INDEX_FILE = "checkpoint"
_CKPT_INDEX = re.compile(r"ckpt-(\d+)\.index")


class CheckpointError(ValueError):
    """A run folder without a checkpoint, or one that does not fit the model (the message
    says why and what to do)."""


def on_disk(folder) -> list:
    """The path prefixes of the ``ckpt-N`` checkpoints in ``folder`` (those whose
    ``.index`` file is there; the trainer writes it last), oldest (smallest N) first."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = sorted((int(m.group(1)), m.group(0)[:-len(".index")])
                   for m in map(_CKPT_INDEX.fullmatch, names) if m)
    return [os.path.join(folder, name) for _, name in found]


def index_problem(folder) -> str | None:
    """Why ``folder``'s index file (``checkpoint``: TensorFlow finds the newest checkpoint
    through it) cannot be trusted, in words; None when it is sound, or when it is missing
    and there is no checkpoint to find. Read here, not by TensorFlow, which ignores a
    damaged index with a warning (a run would silently restart from step 0) or raises on
    an empty one."""
    from google.protobuf import text_format
    from tensorflow.python.training.checkpoint_state_pb2 import CheckpointState

    disk = on_disk(folder)
    path = os.path.join(folder, INDEX_FILE)
    try:
        with open(path, "rb") as f:
            state = text_format.Parse(f.read().decode("utf-8"), CheckpointState())
    except FileNotFoundError:
        return "missing" if disk else None
    except Exception as err:  # noqa: BLE001 (text_format.ParseError, UnicodeDecodeError, OSError)
        return f"unreadable: {type(err).__name__}"
    named = state.model_checkpoint_path
    if not named:
        return "names no checkpoint"
    named = os.path.normpath(named if os.path.isabs(named) else os.path.join(folder, named))
    if not disk or named != os.path.normpath(disk[-1]):
        newest = os.path.basename(disk[-1]) if disk else "none"
        return (f"names {os.path.basename(named)}, the newest checkpoint on disk is "
                f"{newest}")
    return None


def rebuild_index(folder) -> list:
    """Write ``folder``'s index file afresh from the checkpoints on disk (newest last, each
    with its file's time, so that ``tf.train.CheckpointManager`` keeps counting them), or
    remove it when there are none; returns the checkpoints listed."""
    from tensorflow.python.checkpoint import checkpoint_management

    disk = on_disk(folder)
    if not disk:
        if os.path.lexists(os.path.join(folder, INDEX_FILE)):
            os.remove(os.path.join(folder, INDEX_FILE))
        return []
    stamps = [os.path.getmtime(path + ".index") for path in disk]
    checkpoint_management.update_checkpoint_state_internal(
        save_dir=folder, model_checkpoint_path=disk[-1], all_model_checkpoint_paths=disk,
        save_relative_paths=True, all_model_checkpoint_timestamps=stamps,
        last_preserved_timestamp=min(stamps) - 1.0)
    return disk


def remove_partial(folder) -> None:
    """Remove what a checkpoint save cut short leaves in ``folder``: TensorFlow writes a
    checkpoint's shards into ``ckpt-N_temp/`` and merges them into ``ckpt-N.*`` last, so
    after a full disk or a kill the folder holds an empty or partial ``ckpt-N_temp/``."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if name.startswith("ckpt-") and name.endswith("_temp"):
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)


#: A finished run's weights alone (the model's variables, EMA copies included, no optimiser
#: slots): what a committed run ships so that a fresh clone can sample it. The same
#: tf.train.Checkpoint format as ``checkpoints/`` (float32 stored exactly), a fraction of
#: its size.
WEIGHTS_PREFIX = os.path.join("weights", "model")


def shipped_weights(run_dir: str):
    """The path prefix of the run's weights-only checkpoint, None when it has none."""
    path = os.path.join(run_dir, WEIGHTS_PREFIX)
    return path if os.path.exists(path + ".index") else None


def write_weights(model, run_dir: str) -> str:
    """Write the model's variables (not its optimisers) to ``run_dir/weights/``, whole or
    not at all (written beside it, then renamed into place); returns the path prefix.
    What is written is the model's ``shipped_parts()`` (models.base.GenerativeModel)."""
    folder = os.path.join(run_dir, os.path.dirname(WEIGHTS_PREFIX))
    scratch = folder + ".partial"
    shutil.rmtree(scratch, ignore_errors=True)
    tf.train.Checkpoint(**model.shipped_parts()).write(
        os.path.join(scratch, os.path.basename(WEIGHTS_PREFIX)))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(scratch, folder)
    return os.path.join(run_dir, WEIGHTS_PREFIX)


def latest_checkpoint(run_dir: str):
    """The path prefix of the run's newest checkpoint (the ``ckpt-N`` with the largest N
    on disk, which a sound index file also names), None when it has none."""
    disk = on_disk(os.path.join(run_dir, "checkpoints"))
    return disk[-1] if disk else None


def weights_path(run_dir: str, *, weights_only: bool = False):
    """What ``restore_weights`` reads: the latest checkpoint's path prefix, else the shipped
    ``weights/`` (always those with ``weights_only``), None when the run has neither."""
    return (None if weights_only else latest_checkpoint(run_dir)) or shipped_weights(run_dir)


def restore_weights(model, run_dir: str, *, weights_only: bool = False):
    """The model's variables (not its optimisers) from the run's latest checkpoint, or from
    its shipped ``weights/`` when it has none (a fresh clone) or ``weights_only`` asks."""
    path = weights_path(run_dir, weights_only=weights_only)
    if path is None:
        metrics = os.path.join(run_dir, METRICS_FILE)
        fix = (f"its weights are lost: delete {metrics} and rerun the run_all.py command "
               f"that wrote it to train it again" if os.path.exists(metrics) else
               "rerun the run_all.py command that started it to train it")
        raise CheckpointError(f"{run_dir} has no checkpoint under checkpoints/; {fix}")
    shipped = path == shipped_weights(run_dir)
    problem = None if shipped else index_problem(os.path.dirname(path))
    if problem:
        print(f"note: {os.path.join(os.path.dirname(path), INDEX_FILE)} is damaged "
              f"({problem}); restoring {os.path.basename(path)}, the newest checkpoint on "
              f"disk", file=sys.stderr)
    parts = model.shipped_parts() if shipped else {"model": model}
    try:
        status = tf.train.Checkpoint(**parts).read(path)
    except (tf.errors.OpError, ValueError, IndexError, OSError) as err:
        # (a truncated shard surfaces as IndexError "Read less bytes than requested")
        # An older checkpoint would hold older weights than the run reported: never fall back.
        raise CheckpointError(f"{path} is damaged ({type(err).__name__}: "
                              f"{(str(err).strip().splitlines() or [''])[0][:160]}); the run's "
                              f"final weights are lost: delete "
                              f"{os.path.join(run_dir, METRICS_FILE)} and rerun run_all.py to "
                              f"train its last steps again") from err
    try:
        status.expect_partial().assert_existing_objects_matched()
    except AssertionError as err:
        raise CheckpointError(f"{path} does not hold the weights of the model its config.json "
                              f"describes ({str(err).splitlines()[0]})") from err
    if shipped:
        model.after_shipped_restore()
    return path
