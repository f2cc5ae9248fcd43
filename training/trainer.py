"""The shared training loop: every family trains here, under a tf.distribute strategy.

Why our own loop and not ``Model.fit``: ``fit`` (and BackupAndRestore) resumes
at epoch boundaries and restarts the data iterator, so a run killed mid-epoch
would not continue on the same batches with the same noise. Here the training
state is (weights, optimiser slots, step counter, epoch progress); the batches
of epoch ``e`` are a pure function of (seed, e) and the noise of step ``s`` a
pure function of (seed, s), so a resumed run computes exactly what an
uninterrupted one would have.

How the steps run on this machine (``training.runtime.Runtime``, the same for every
family): the model is built under the run's precision's Keras dtype policy (set for the
build, restored after it), and told the run's XLA and accumulation settings before its
first step is traced (``GenerativeModel.configure_steps``). ``max_steps`` (a
rehearsal) ends the stage after that many optimisation steps, mid-epoch if need be: that
partial epoch is reported and checkpointed as the stage's last.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from models.base import GenerativeModel
from training import callbacks as cbs
from training import checkpoints
from common import files as artifacts
from training.config import TrainConfig
from training.runtime import Runtime, check_max_steps, precision_policy
from training.strategy import is_chief

_MAX_LOG_KEYS = 64
_KEEP_CHECKPOINTS = 2  # the newest and one before it, to fall back on if the newest is damaged


@dataclasses.dataclass
class TrainResult:
    history: list
    model: object
    steps: int
    resumed_from_step: int
    #: the stage ended at the trainer's ``max_steps`` (a rehearsal), before its planned end
    stopped_at_max_steps: bool = False


class EpochProgress(tf.Module):
    """Running sums of the current epoch's logs, checkpointed with the model so a
    resumed epoch's means include the steps before the kill."""

    def __init__(self):
        super().__init__(name="epoch_progress")
        self.sums = tf.Variable(tf.zeros([_MAX_LOG_KEYS], tf.float64), trainable=False)
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.keys = tf.Variable("", dtype=tf.string, trainable=False)
        self.epochs_done = tf.Variable(0, dtype=tf.int64, trainable=False)


def _distribute(strategy, dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def read_history(run_dir) -> list:
    """history.csv's rows (the epochs done), or [] when there is none; a damaged file is
    a ValueError naming it and what to do."""
    path = os.path.join(run_dir, "history.csv")
    if not os.path.exists(path):
        return []
    try:
        rows = artifacts.read_csv(path)
        for row in rows:
            int(row["epoch"])
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err}); the losses of "
                         f"the epochs before the checkpoint cannot be rebuilt from it: move it "
                         f"aside to resume without them, or delete {run_dir} to train the run "
                         f"afresh") from err
    return rows


def _reduce_logs(strategy, logs):
    # Every value a step returns is that replica's share: their sum is the global value.
    return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in logs.items()}


class Trainer:
    """Trains one model on one dataset and keeps its run folder's training files.

    build_model: ``() -> GenerativeModel``, called inside the strategy scope and the
        runtime's precision policy.
    train_source / val_source: ``data.ImageSource`` (val may be None).
    runtime: precision, XLA and accumulation (``training.runtime.Runtime``; None: float32,
        no XLA, no accumulation). An accumulation that does not divide the per-replica
        batch is a ValueError here, before anything is built.
    max_steps: end the stage after this many optimisation steps in all (a rehearsal;
        None: the planned length); not a positive integer: ValueError.
    """

    def __init__(self, build_model, train_source, val_source, config: TrainConfig, *,
                 global_batch_size: int, run_dir: str, strategy=None, title: str = "",
                 extra_callbacks=(), verbose: bool = True, batches_per_step: int | None = None,
                 runtime: Runtime | None = None, max_steps: int | None = None):
        self.build_model = build_model
        self.train_source, self.val_source = train_source, val_source
        self.config = config
        self.global_batch_size = int(global_batch_size)
        # A train step may consume several batches (a WGAN's critic steps): the pipeline
        # then hands it their concatenation [batches_per_step * B, ...], and an epoch
        # counts train steps, so resuming skips whole steps, as with one batch. The
        # built model's ``batches_per_step`` decides; given here, it is checked up front.
        self.batches_per_step = 1 if batches_per_step is None else int(batches_per_step)
        if self.batches_per_step < 1:
            raise ValueError(f"batches_per_step must be >= 1, got {batches_per_step}")
        self._declared_batches_per_step = batches_per_step
        self.run_dir = run_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        self.title = title
        self.extra_callbacks = list(extra_callbacks)
        self.verbose = verbose
        self.chief = is_chief(self.strategy)
        self.steps_per_epoch = self._steps_per_epoch()
        if self.global_batch_size % self.strategy.num_replicas_in_sync:
            raise ValueError(f"global batch {self.global_batch_size} is not divisible by the "
                             f"{self.strategy.num_replicas_in_sync} replicas")
        self.runtime = Runtime() if runtime is None else runtime
        self.runtime.check_batch(self.global_batch_size, self.strategy.num_replicas_in_sync)
        self.max_steps = check_max_steps(max_steps)

    @property
    def images_per_step(self) -> int:
        return self.global_batch_size * self.batches_per_step

    def _steps_per_epoch(self) -> int:
        full = self.train_source.num_examples // self.images_per_step
        if full == 0:
            raise ValueError(
                f"the train split has {self.train_source.num_examples} images, fewer than one "
                f"step's {self.images_per_step} ({self.batches_per_step} batch(es) of "
                f"{self.global_batch_size}): use more train images or a smaller batch")
        steps = self.config.steps_per_epoch
        return full if steps is None else min(int(steps), full)

    def _adopt_batches_per_step(self, k: int) -> None:
        declared = self._declared_batches_per_step
        if declared is not None and int(declared) != k:
            raise ValueError(f"the model consumes {k} batch(es) per step, the trainer was "
                             f"told {declared}")
        self.batches_per_step = k
        self.steps_per_epoch = self._steps_per_epoch()

    # ------------------------------------------------------------ state
    def _checkpoint_dir(self):
        folder = os.path.join(self.run_dir, "checkpoints")
        if self.chief:
            return folder
        # Non-chief workers must write too (collective ops), but to a scratch folder.
        task = self.strategy.cluster_resolver.task_id
        return os.path.join(folder, f".worker-{task}")

    def _make_state(self, model):
        self.progress = EpochProgress()
        self.checkpoint = tf.train.Checkpoint(model=model, progress=self.progress,
                                              **model.checkpoint_objects())
        folder = self._checkpoint_dir()
        checkpoints.remove_partial(folder)  # a save cut short by a kill or a full disk
        problem = checkpoints.index_problem(folder) if self.chief else None
        if problem:  # TensorFlow would ignore it (a warning) and restart the run from step 0
            found = checkpoints.rebuild_index(folder)
            print(f"[train] {os.path.join(folder, checkpoints.INDEX_FILE)} is damaged "
                  f"({problem}); rebuilt it from the checkpoints on disk ("
                  f"{', '.join(os.path.basename(p) for p in found) or 'none'}): resuming from "
                  f"the newest that reads back", flush=True)
        self.manager = tf.train.CheckpointManager(self.checkpoint, folder,
                                                  max_to_keep=_KEEP_CHECKPOINTS)

    def _save(self, epochs_done=None):
        if epochs_done is not None:
            self.progress.epochs_done.assign(epochs_done)
            self.progress.count.assign(0)
            self.progress.sums.assign(tf.zeros_like(self.progress.sums))
        else:
            self._store_progress()
        try:
            self.manager.save(checkpoint_number=int(self.model.step_counter.numpy()))
        except BaseException as err:  # a full disk, Ctrl-C mid-save: leave no half checkpoint
            checkpoints.remove_partial(self._checkpoint_dir())
            if isinstance(err, Exception) and artifacts.is_disk_full(err):
                raise artifacts.disk_full(self._checkpoint_dir(), "a checkpoint") from err
            raise
        if not self.chief:
            shutil.rmtree(self._checkpoint_dir(), ignore_errors=True)

    def _store_progress(self):
        sums = np.zeros([_MAX_LOG_KEYS])
        for i, key in enumerate(self.log_keys or []):
            sums[i] = float(self.trackers[key].total.numpy())
        self.progress.sums.assign(sums)
        self.progress.count.assign(int(self.trackers[self.log_keys[0]].count.numpy())
                                   if self.log_keys else 0)
        self.progress.keys.assign(",".join(self.log_keys or []))

    def _restore(self):
        """Restore the newest checkpoint that reads back whole; returns its step (0: none).

        A damaged one (a data shard deleted or truncated, a truncated index) is moved to
        ``checkpoints/damaged/`` with a line saying so, and the one before it is tried:
        the run resumes from there instead of failing on every rerun. Every variable is
        assigned by a successful read, so a failed attempt leaves nothing behind.
        """
        folder = self._checkpoint_dir()
        damaged = []
        for path in reversed(self.manager.checkpoints):
            try:
                self.checkpoint.read(path).assert_existing_objects_matched()
            except (tf.errors.OpError, ValueError, AssertionError, IndexError) as err:
                # (IndexError: TF's reader on a truncated data shard)
                damaged.append(path)
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
                aside = os.path.join(folder, "damaged")
                if self.chief:
                    os.makedirs(aside, exist_ok=True)
                    for part in tf.io.gfile.glob(path + ".*"):
                        os.replace(part, os.path.join(aside, os.path.basename(part)))
                    print(f"[train] checkpoint {path} is damaged ({type(err).__name__}: "
                          f"{reason}); moved it to {aside}/ and trying the one before",
                          flush=True)
                continue
            if damaged:  # forget the damaged ones (moved aside), or the manager would count them
                if self.chief:
                    checkpoints.rebuild_index(folder)
                self.manager = tf.train.CheckpointManager(self.checkpoint, folder,
                                                          max_to_keep=_KEEP_CHECKPOINTS)
            return int(self.model.step_counter.numpy())
        if damaged:
            raise RuntimeError(f"no checkpoint in {folder} reads back (the damaged ones are "
                               f"in {folder}/damaged/); delete {self.run_dir} to start the "
                               f"run afresh")
        return 0

    def _set_trackers(self, keys):
        """One Mean tracker per log key, refilled from a mid-epoch checkpoint if any."""
        self.log_keys = sorted(keys)
        if len(self.log_keys) > _MAX_LOG_KEYS:
            raise ValueError(f"a step returned {len(self.log_keys)} logs; at most {_MAX_LOG_KEYS}")
        self.trackers = {k: keras.metrics.Mean(name=k) for k in self.log_keys}
        saved_keys = self.progress.keys.numpy().decode()
        count = int(self.progress.count.numpy())
        if count and saved_keys.split(",") == self.log_keys:
            sums = self.progress.sums.numpy()
            for i, key in enumerate(self.log_keys):
                self.trackers[key].total.assign(sums[i])
                self.trackers[key].count.assign(count)

    # ------------------------------------------------------------ steps
    def _step_functions(self, model):
        strategy = self.strategy

        # autograph=False: the steps are plain TensorFlow (tf.cond where they branch),
        # and AutoGraph's source rewriting costs seconds per trace.
        @tf.function(autograph=False)
        def train_fn(iterator):
            logs = _reduce_logs(strategy, strategy.run(model.train_step, args=(next(iterator),)))
            model.after_train_step()
            model.step_counter.assign_add(1)
            return logs

        @tf.function(autograph=False)
        def test_fn(batch):
            logs = _reduce_logs(strategy, strategy.run(model.test_step, args=(batch,)))
            model.eval_counter.assign_add(1)
            return logs

        return train_fn, test_fn

    def _train_batches(self, epoch, skip):
        dataset = self.train_data.batches(
            self.images_per_step, shuffle_seed=self.config.seed, epoch=epoch,
            skip_batches=skip, drop_remainder=True)
        if self.batches_per_step > 1:
            dataset = dataset.map(self._replica_major)
        return dataset.take(self.steps_per_epoch - skip)

    def _replica_major(self, images, labels):
        """[k*B, ...] with batch j = rows [jB, (j+1)B) -> the order in which replica r's
        contiguous slice holds its share of batch 0, then of batch 1, ...: each of the
        step's k batches is then the same images whatever the number of replicas."""
        k, replicas = self.batches_per_step, self.strategy.num_replicas_in_sync

        def reorder(x):  # [k*B, ...] -> [k, R, B/R, ...] -> [R, k, B/R, ...] -> [k*B, ...]
            rest = tf.shape(x)[1:]
            grid = tf.reshape(x, tf.concat([[k, replicas, -1], rest], 0))
            perm = tf.concat([[1, 0], tf.range(2, tf.rank(grid))], 0)
            return tf.reshape(tf.transpose(grid, perm), tf.shape(x))

        return reorder(images), reorder(labels)

    def validate(self, test_fn):
        if self.val_source is None:
            return {}
        self.model.eval_counter.assign(0)
        dataset = self.val_data.batches(self.global_batch_size, drop_remainder=True)
        if self.config.val_batches is not None:
            dataset = dataset.take(self.config.val_batches)
        trackers = {}
        for batch in _distribute(self.strategy, dataset):
            for key, value in test_fn(batch).items():
                trackers.setdefault(key, keras.metrics.Mean()).update_state(value)
        if not trackers:
            raise ValueError(f"the held-out split has fewer than one batch of "
                             f"{self.global_batch_size} images")
        return {f"val_{k}": float(t.result()) for k, t in trackers.items()}

    # ------------------------------------------------------------ loop
    def fit(self) -> TrainResult:
        cfg = self.config
        # Initial weights are a function of the seed, like everything after them.
        keras.utils.set_random_seed(cfg.seed)
        with self.strategy.scope(), precision_policy(self.runtime.precision):
            model = self.build_model()
            model(tf.zeros([1, *model.image_shape]))  # create every variable before restoring
            model.build_optimizers()
        model.configure_steps(jit=self.runtime.jit, accumulate=self.runtime.accumulate,
                              replicas=self.strategy.num_replicas_in_sync)
        self.model = model
        self._adopt_batches_per_step(int(model.batches_per_step))
        self._make_state(model)
        start_step = self._restore()
        # What the steps consume (the images, or features a frozen stage makes of them once)
        if self.verbose and self.chief and type(model).training_source is not \
                GenerativeModel.training_source:
            print(f"[train] {type(model).__name__}.training_source: preparing what the steps "
                  f"consume from {self.train_source.num_examples} train images", flush=True)
        self.train_data = model.training_source(self.train_source)
        self.val_data = None if self.val_source is None else model.training_source(
            self.val_source)
        if start_step == 0:
            model.on_train_start(self.train_data)
        train_fn, test_fn = self._step_functions(model)
        epochs_done = int(self.progress.epochs_done.numpy())
        history = self._previous_history(epochs_done)
        self.log_keys, self.trackers = None, {}
        if self.verbose and self.chief:
            where = f"resuming at step {start_step}" if start_step else "starting"
            limit = "" if self.max_steps is None else f", stopping after step {self.max_steps}"
            print(f"[train] {where}; {cfg.epochs} epoch(s) x {self.steps_per_epoch} steps, "
                  f"global batch {self.global_batch_size} on "
                  f"{self.strategy.num_replicas_in_sync} replica(s), "
                  f"{self.runtime.describe()}{limit}; writing {self.run_dir}", flush=True)
        callback_list = self._callbacks(model, history)
        callback_list.on_train_begin()
        saved_keys = self.progress.keys.numpy().decode()
        if saved_keys:
            self._set_trackers(saved_keys.split(","))
        step = start_step
        limit = self.max_steps
        stopped = False
        planned = cfg.epochs * self.steps_per_epoch
        if epochs_done >= cfg.epochs and step < planned and (limit is None or limit > step):
            raise ValueError(f"{self.run_dir} ended at step {step} of {planned} (a rehearsal's "
                             f"max_steps): it cannot continue as a longer run; delete it to "
                             f"train this stage afresh")
        for epoch in range(epochs_done, cfg.epochs):
            if limit is not None and step >= limit:
                stopped = True
                break
            skip = step - epoch * self.steps_per_epoch
            if skip < 0:
                raise ValueError(f"{self.run_dir} ended at step {step}, inside epoch {epoch} "
                                 f"(a rehearsal's max_steps): it cannot continue as a longer "
                                 f"run; delete it to train this stage afresh")
            todo = self.steps_per_epoch - skip
            if limit is not None and limit - step < todo:
                todo, stopped = limit - step, True
            callback_list.on_epoch_begin(epoch)
            iterator = iter(_distribute(self.strategy, self._train_batches(epoch, skip)))
            for _ in range(todo):
                logs = train_fn(iterator)
                if self.log_keys is None:
                    self._set_trackers(logs)
                for key, value in logs.items():
                    self.trackers[key].update_state(value)
                step += 1
                callback_list.on_train_batch_end(step, {k: float(v) for k, v in logs.items()})
            epoch_logs = {k: float(t.result()) for k, t in self.trackers.items()}
            epoch_logs.update(self.validate(test_fn))
            callback_list.on_epoch_end(epoch, epoch_logs)
            for tracker in self.trackers.values():
                tracker.reset_state()
            if stopped:
                break
        callback_list.on_train_end()
        # A rerun of a stage that already ended at max_steps trains nothing: still a rehearsal.
        stopped = stopped or (limit is not None and step >= limit
                              and step < cfg.epochs * self.steps_per_epoch)
        rows = self.history_writer.rows if self.chief else []
        return TrainResult(history=rows, model=model, steps=step, resumed_from_step=start_step,
                           stopped_at_max_steps=stopped)

    def _previous_history(self, epochs_done):
        return [row for row in read_history(self.run_dir) if int(row["epoch"]) <= epochs_done]

    def _callbacks(self, model, history):
        cfg = self.config
        callbacks = []
        if self.chief:
            pairs = model.LOSS_PAIRS
            self.history_writer = cbs.HistoryWriter(self.run_dir, history, pairs, self.title)
            if model.IS_FIRST_STAGE:  # a first stage shows reconstructions of fixed images
                source = self.val_source or self.train_source
                real = next(iter(source.batches(cfg.grid_size ** 2)))[0]
                render = lambda: model.reconstruct(real)  # noqa: E731
            else:
                latents = model.sample_latents(cfg.grid_size ** 2, seed=cfg.seed + 12345)
                render = lambda: model.generate(latents)  # noqa: E731
            callbacks += [
                self.history_writer,
                cbs.TensorBoardLogger(os.path.join(self.run_dir, "tensorboard"),
                                      self.steps_per_epoch),
                cbs.SampleGrid(self.run_dir, render, every=cfg.sample_every,
                               columns=cfg.grid_size),
            ]
            if self.verbose:
                callbacks.append(cbs.ProgressBar(cfg.epochs, self.steps_per_epoch))
        callbacks += self.extra_callbacks
        callbacks.append(cbs.Checkpointer(self._save, cfg.checkpoint_every))
        return keras.callbacks.CallbackList(callbacks, model=model)
