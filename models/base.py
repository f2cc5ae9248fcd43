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
"""
from __future__ import annotations

import keras
import tensorflow as tf


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
    #: data batches one train_step consumes: the trainer hands it their concatenation
    #: [batches_per_step * global batch, ...] (a WGAN's critic steps: 5); an instance
    #: may set its own. Its config's ``batches_per_step()``, if any, must agree (the
    #: runner passes that to the trainer, which checks it when the model is built).
    batches_per_step = 1

    def __init__(self, config, *, image_shape, global_batch_size, seed=0, **kwargs):
        super().__init__(**kwargs)
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

    # ----------------------------------------------------------------- contract
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

    # ------------------------------------------------------- shared helpers
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
