"""The contract every model family implements, and the pieces they share.

A family's model is a thin ``keras.Model`` subclass (keras-io's
``dcgan_overriding_train_step`` pattern) that owns ``train_step``/``test_step``
and a sampler. The shared trainer (``training/trainer.py``) runs those steps
inside ``strategy.run`` and never looks inside a family.

Distribution contract: every step runs once per replica on that replica's slice
of the global batch. Losses returned by a step are that replica's *share* of the
global value (sum over its examples / global batch size), so summing over
replicas gives the global mean and summing gradients (what Keras' optimizer does
under a strategy) gives the same update as one device on the whole batch.

How the steps run (set by the trainer, :meth:`GenerativeModel.configure_steps`, from
the run's ``training.runtime.Runtime``), the same way in every family:

- precision: the Keras dtype policy the model was built under (``self.precision``,
  ``models.shared.precision``); float16 optimisers are loss-scaled (:meth:`loss_scaled`).
- jit (XLA): each family's step is split into the noise draws, one or more compiled
  units (:meth:`step_function`: the forward and backward passes, or the evaluation
  terms) and what follows them (cross-replica gathers, the optimiser's update, EMAs).
  The noise stays outside XLA because XLA's kernels for stateless random floats draw
  other numbers than TensorFlow's CPU/GPU kernels (measured: ``stateless_normal``
  differs by up to 4.8 on CPU), so a compiled step computes what the plain one does;
  collectives and the optimiser stay outside because XLA's support for them varies
  by device and strategy.
- accumulate (k): the replica's batch is cut into k equal micro-batches, run one
  after another through the same compiled units (:meth:`over_micro_batches`), their
  gradients summed and applied once. Losses are shares of the *global* batch (sum over
  the micro-batch's examples / global batch size), so the sum over micro-batches is the
  gradient of the whole batch's mean loss: the update of the whole batch. Each family
  says in its model's docstring what accumulation means for its batch-spanning terms.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from models.shared.precision import (agree_on_overflow, loss_scale, loss_scaled,
                                     precision_of)


def _add(a, b):
    """a + b of two gradients (None: no gradient); an embedding's sparse gradients
    (IndexedSlices) are summed dense, which is what the optimiser makes of them anyway."""
    if a is None:
        return None
    if isinstance(a, tf.IndexedSlices) or isinstance(b, tf.IndexedSlices):
        return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)
    return a + b


class _Units:
    """The compiled units of a model's steps, by name: a plain holder, so neither Keras'
    tracker nor tf.train.Checkpoint sees it (checkpoint keys stay the model's own)."""

    def __init__(self):
        self.by_name = {}


class GenerativeModel(keras.Model):
    """Base class of a family's trainable model.

    Subclasses implement ``build_optimizers``, ``train_step``, ``test_step``,
    ``sample_latents`` and ``generate``; they read randomness only through
    :meth:`normal` / :meth:`uniform`, which makes a run a pure function of its
    seed and step counter (exact resume, same numbers on 1 or N replicas).
    """

    #: True for a first stage (an autoencoder, a tokenizer): it reconstructs, never samples
    IS_FIRST_STAGE = False
    #: history keys the thesis tables call "training loss" / "validation loss"
    TRAIN_LOSS_KEY = "loss"
    VAL_LOSS_KEY = "val_loss"
    #: (train key, val key) panels of loss_curves.png, the first the thesis's pair
    LOSS_PAIRS = [(TRAIN_LOSS_KEY, VAL_LOSS_KEY)]
    #: data batches one train_step consumes: the trainer hands it their concatenation
    #: [batches_per_step * global batch, ...] (a WGAN's critic steps: 5); an instance
    #: may set its own. Its config's ``batches_per_step()`` must agree (the runner
    #: passes that to the trainer, which checks it when the model is built).
    batches_per_step = 1

    def __init__(self, config, *, image_shape, global_batch_size, seed=0, **kwargs):
        """``config``: the family's ``models.FamilyConfig``, validated here (its
        ``validate()``), so no model is built from options that cannot work."""
        super().__init__(**kwargs)
        config.validate()
        self.config = config
        self.image_shape = tuple(int(d) for d in image_shape)
        self.global_batch_size = int(global_batch_size)
        self.seed = int(seed)
        # Counts optimisation steps; advanced by the trainer in cross-replica
        # context, read by the steps to derive their noise. Part of the
        # checkpoint, so it *is* the RNG state.
        self.step_counter = keras.Variable(
            0, dtype="int64", trainable=False, aggregation="only_first_replica",
            name="step_counter")
        # Counts evaluation batches since the trainer last reset it, so that
        # validation noise is the same at every epoch.
        self.eval_counter = keras.Variable(
            0, dtype="int64", trainable=False, aggregation="only_first_replica",
            name="eval_counter")
        # The precision of the layers built below: the dtype policy the model is built
        # under (training.runtime.precision_policy), read from the model's own policy.
        self.precision = precision_of(self.dtype_policy)
        self.xla_steps = False   # jit: the step's compiled units go through XLA
        self.accumulate = 1      # micro-batches per update
        self._units = _Units()

    # ----------------------------------------------------------------- contract
    def shipped_parts(self) -> dict:
        """What a run ships to sample (``experiments.export``, ``weights/``): {name: a
        trackable or variable}, written and read as one ``tf.train.Checkpoint``. The whole
        model by default; a family whose sampler reads only some of it (an EMA copy) names
        those parts, so a clone does not carry a second network it never uses."""
        return {"model": self}

    def after_shipped_restore(self) -> None:
        """Called once the shipped parts are read: a family that ships only some parts
        fills the others from them (so every variable holds a defined value)."""

    def build_optimizers(self):
        """Create (and build) the optimisers; called once inside the strategy scope."""
        raise NotImplementedError(f"{type(self).__name__} must define build_optimizers()")

    def checkpoint_objects(self) -> dict:
        """Trackables saved beside the model (optimisers, schedules, ...)."""
        return {"optimizer": self.optimizer}

    def sample_latents(self, n: int, seed: int) -> tf.Tensor:
        """The random input of the sampler for ``n`` images, deterministic in ``seed``."""
        raise NotImplementedError(f"{type(self).__name__} must define sample_latents()")

    def generate(self, latents) -> tf.Tensor:
        """Images in [-1, 1], shape [n, H, W, C], from ``sample_latents`` output."""
        raise NotImplementedError(f"{type(self).__name__} must define generate()")

    def training_source(self, source):
        """The data this model's train and test steps consume, made from ``source`` (a
        ``data.ImageSource``) by the trainer at the start of every fit, fresh or
        resumed, after the checkpoint is restored: the images themselves by default.
        A model whose steps begin with a frozen, deterministic function of each image
        returns a ``data.FeatureSource`` of it instead, computed once rather than at
        every step (the latent diffusion model's encoder moments). The batches must
        stay in the source's order, so resume and replica sharding are unchanged."""
        return source

    def on_train_start(self, train_source):
        """Called once before the first step of a fresh run (not on resume: whatever
        it sets must live in variables, so the checkpoint carries it), with what
        ``training_source`` made of the training split. E.g. the latent diffusion
        model measures its autoencoder's latent scale here."""

    def reconstruct(self, images):
        """A first stage's reconstruction of real images (same shape, [-1, 1])."""
        raise NotImplementedError(f"{type(self).__name__} is not a first stage")

    def evaluate_stage(self, source) -> dict:
        """A first stage's own figures for its metrics.json (e.g. reconstruction error)."""
        return {}

    def after_train_step(self):
        """Called by the trainer once per step in cross-replica context, after the
        replicas' steps (e.g. an EMA of the weights: one update, every replica's copy)."""

    def configure_sampler(self):
        """Re-read the sampler's settings from ``self.config`` after a change
        (``experiments.sample --set``); raises ValueError for a bad value."""

    def freeze(self):
        """Make this (restored, earlier-stage) model untrainable inside a later stage."""
        self.trainable = False
        return self

    def sample(self, n: int, seed: int, batch_size: int = 256):
        """Yield generated image batches (float32 [b, H, W, C] in [-1, 1]) totalling ``n``."""
        done = 0
        while done < n:
            b = min(batch_size, n - done)
            yield self.generate(self.sample_latents(b, seed * 1_000_003 + done))
            done += b

    # ------------------------------------------------------- how steps run
    def configure_steps(self, *, jit: bool = False, accumulate: int = 1,
                        replicas: int | None = None) -> None:
        """Set how the steps run, before the first is traced (the trainer calls it from
        its ``Runtime``): ``jit`` compiles the step's units with XLA; ``accumulate`` k
        splits each replica's batch into k micro-batches whose gradients are summed and
        applied once. A k that does not divide the replica's batch is a ValueError."""
        if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
            raise ValueError(f"accumulate must be a positive integer, got {accumulate!r}")
        replicas = self.num_replicas if replicas is None else int(replicas)
        local = self.global_batch_size // replicas
        if local % accumulate:
            where = (f"the batch {self.global_batch_size}" if replicas == 1 else
                     f"the per-replica batch {local} (global {self.global_batch_size} "
                     f"over {replicas} replicas)")
            raise ValueError(f"accumulate {accumulate} does not divide {where}")
        self.xla_steps, self.accumulate = bool(jit), accumulate
        self._units = _Units()

    def step_function(self, fn, name: str):
        """``fn`` as one unit of the step: XLA-compiled when the run's jit is on, a
        tf.function when the step accumulates (one graph for its k micro-batches), and
        ``fn`` itself otherwise (the plain step's graph is what it always was). Noise
        must be drawn outside and passed in (see the module docstring)."""
        if not self.xla_steps and self.accumulate == 1:
            return fn
        units = self._units.by_name
        if name not in units:
            # (a TPU compiles the whole replica step with XLA anyway: no nested request)
            on_tpu = isinstance(tf.distribute.get_strategy(), tf.distribute.TPUStrategy)
            units[name] = tf.function(fn, jit_compile=True if self.xla_steps and not on_tpu
                                      else None, autograph=False)
        return units[name]

    def over_micro_batches(self, fn, per_example, *shared):
        """``fn(micro, *shared) -> (summed, concatenated)`` over the step's micro-batches.

        ``per_example``: a nested structure of tensors [b, ...] (this replica's batch),
        cut into ``accumulate`` equal parts along axis 0; ``shared`` is handed to every
        call as it is. Returns the sum over the micro-batches of each leaf of ``summed``
        (None leaves stay None: a variable without a gradient) and the concatenation
        along axis 0 of each leaf of ``concatenated`` (per-example outputs, in batch
        order). The calls run one after another (each waits for the previous one's
        outputs), so only one micro-batch's activations are alive at a time. With
        ``accumulate`` 1 it is ``fn(per_example, *shared)``.
        """
        k = self.accumulate
        if k == 1:
            return fn(per_example, *shared)
        flat = tf.nest.flatten(per_example)
        parts = [tf.split(t, k, axis=0) for t in flat]
        total, pieces, previous = None, [], []
        for j in range(k):
            with tf.control_dependencies(previous):
                micro = tf.nest.pack_sequence_as(per_example,
                                                 [tf.identity(p[j]) for p in parts])
            summed, concatenated = fn(micro, *shared)
            total = summed if total is None else tf.nest.map_structure(_add, total, summed)
            pieces.append(concatenated)
            previous = [t for t in tf.nest.flatten((summed, concatenated), expand_composites=True)
                        if t is not None]
        joined = tf.nest.map_structure(lambda *xs: tf.concat(xs, axis=0), *pieces)
        return total, joined

    def loss_scaled(self, optimizer):
        """``optimizer``, loss-scaled when the model computes in float16
        (``models.shared.precision.loss_scaled``); as it is otherwise."""
        return loss_scaled(optimizer, self.precision)

    @staticmethod
    def loss_scale(optimizer):
        """The tensor a step multiplies its loss by before differentiating (None: none)."""
        return loss_scale(optimizer)

    @staticmethod
    def apply_update(optimizer, grads, variables):
        """``optimizer.apply`` of a step's (possibly loss-scaled) gradients; with loss
        scaling, every replica skips the step when any replica's gradients overflowed."""
        optimizer.apply(agree_on_overflow(optimizer, grads), variables)

    # ------------------------------------------------------- shared helpers
    def replica_rows(self, local_batch: int):
        """The global-batch row indices [local_batch] int32 of this replica's examples
        (the order ``gather`` concatenates the replicas' slices in)."""
        ctx = tf.distribute.get_replica_context()
        rows = tf.range(local_batch, dtype=tf.int32)
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return rows
        return rows + tf.cast(ctx.replica_id_in_sync_group, tf.int32) * local_batch

    @property
    def num_replicas(self) -> int:
        return tf.distribute.get_strategy().num_replicas_in_sync

    def replica_mean(self, per_example):
        """This replica's share of the global-batch mean of a per-example loss [b]."""
        per_example = tf.cast(per_example, tf.float32)
        return tf.reduce_sum(per_example) / tf.cast(self.global_batch_size, tf.float32)

    def replica_share(self, value):
        """This replica's share of a statistic already computed on the whole global batch."""
        return tf.cast(value, tf.float32) / tf.cast(self.num_replicas, tf.float32)

    def gather(self, x):
        """The global batch [B, ...] from every replica's slice [b, ...] (differentiable)."""
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return x
        return ctx.all_gather(x, axis=0)

    def _noise_seed(self, salt: int, counter):
        return tf.stack([tf.constant(self.seed, tf.int64),
                         counter * 1009 + tf.constant(salt, tf.int64)])

    def _replica_rows(self, full, local_batch):
        """Rows of a global-batch tensor that belong to this replica."""
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return full[:local_batch]
        rid = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
        return full[rid * local_batch:(rid + 1) * local_batch]

    def normal(self, local_batch, per_example_shape, salt: int, *, evaluation=False):
        """N(0, I) noise [local_batch, *per_example_shape] for this step.

        The noise of the whole global batch is drawn from a stateless generator
        seeded by (run seed, step, salt) and this replica keeps its rows, so one
        device and N replicas see the same numbers for the same example.
        """
        counter = self.eval_counter if evaluation else self.step_counter
        shape = [self.global_batch_size, *per_example_shape]
        full = tf.random.stateless_normal(shape, self._noise_seed(salt, counter))
        return self._replica_rows(full, local_batch)

    def uniform(self, local_batch, per_example_shape, salt: int, *, evaluation=False,
                minval=0.0, maxval=1.0, dtype=tf.float32):
        """U[minval, maxval) noise, drawn like :meth:`normal`."""
        counter = self.eval_counter if evaluation else self.step_counter
        shape = [self.global_batch_size, *per_example_shape]
        full = tf.random.stateless_uniform(shape, self._noise_seed(salt, counter),
                                           minval=minval, maxval=maxval, dtype=dtype)
        return self._replica_rows(full, local_batch)

    def check_images(self, images):
        """Fail early and clearly when the data does not match the model."""
        got = tuple(images.shape[1:])
        if None not in got and got != self.image_shape:
            raise ValueError(
                f"images of shape {got} do not match the model's {self.image_shape}; "
                f"open the dataset with image_size={self.image_shape[0]} and "
                f"channels={self.image_shape[2]}")
