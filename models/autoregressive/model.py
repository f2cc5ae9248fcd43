"""The autoregressive family's two trainable models: the VQ tokenizer (stage 1) and the
transformer prior over its codes (stage 2), each owning its train_step/test_step; the
prior also owns the sampler (temperature, top-k, guidance, key/value cache).

DALL-E (Ramesh et al. 2021) trains a discrete VAE, then a transformer on
[text tokens] + [image tokens]; here the tokenizer is a VQ-VAE with an EMA codebook
(van den Oord et al. 2017) and the "caption" is one class-label token.

Precision, XLA and accumulation (``models.base``): the encoder's outputs, the decoder's
images and the prior's logits are cast to float32 before the quantiser, the losses and
the sampler read them (the codebook and its EMA are float32 variables; attention's
softmax runs in float32). The tokenizer's terms are per example, so k micro-batches give
exactly the whole batch's gradient; its codebook's EMA step spans the batch and runs
once per step after the update, on the encoder outputs and codes of every micro-batch
(all-gathered): the same update as the whole batch's. The prior's terms are per example
(its label dropout is drawn for the whole batch and cut with it): exact.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from data.sources import FeatureSource
from models.autoregressive.config import check_context, token_grid
from models.autoregressive.losses import (LOSSES, needs_images, token_cross_entropy,
                                          tokenizer_terms)
from models.autoregressive.networks import TransformerPrior, build_encoder, feature_model
from models.autoregressive.quantizer import (code_statistics, ema_codebook_update,
                                             nearest_codes, straight_through)
from models.base import GenerativeModel
from models.shared.blocks import build_decoder
from models.shared.precision import scale_loss, to_float32

# Salts that keep the steps' independent noise streams apart.
_SALT_RESTART = 1  # which encoder outputs restart the dead codes
_SALT_DROP = 2     # label dropout
_SALT_SAMPLER = 7919  # the sampler's Gumbel noise: key (seed, 7919 + position)


class Tokenizer(GenerativeModel):
    """Stage 1: the VQ-VAE x -> z_e [b, h, w, D] -> codes [b, h, w] in 0..K-1 ->
    z_q = codebook[codes] -> x_hat, with K = config.latent_size.

    The codebook is state, not a trainable weight: an EMA of the encoder outputs
    assigned to each code, with dead codes restarted at random encoder outputs
    (``quantizer.ema_codebook_update``). The update is computed in train_step from the
    all-gathered global batch and the step's stateless noise, so every replica computes
    the same new codebook as one device would (and a resumed run the same as an
    uninterrupted one); the variables aggregate "only_first_replica".
    """

    IS_FIRST_STAGE = True
    LOSS_PAIRS = [("loss", "val_loss"), ("mse", "val_mse"), ("perplexity", "val_perplexity"),
                  ("codes_used", "val_codes_used")]

    def __init__(self, config, *, image_shape, global_batch_size, seed=0, **kwargs):
        super().__init__(config, image_shape=image_shape,
                         global_batch_size=global_batch_size, seed=seed, **kwargs)
        self.grid = token_grid(config, self.image_shape)
        self.num_codes, self.code_dim = int(config.latent_size), int(config.code_dim)
        latent = (*self.grid, self.code_dim)
        self.encoder = build_encoder(self.image_shape, self.grid, self.code_dim,
                                     config.vq_widths)
        self.decoder = build_decoder(latent, self.image_shape, config.vq_widths,
                                     name="vq_decoder")
        self.feature_net = feature_model(self.encoder, len(config.vq_widths))
        # Initial codes: small, seeded; the first steps move or restart them onto the data.
        initial = 0.1 * tf.random.stateless_normal([self.num_codes, self.code_dim],
                                                   [self.seed, 271828])
        # float32 state, read as float32 even inside the model's call under mixed precision
        state = dict(trainable=False, aggregation="only_first_replica", autocast=False)
        self.codebook = keras.Variable(initial, name="codebook", **state)
        self.ema_sum = keras.Variable(initial, name="ema_sum", **state)
        self.ema_count = keras.Variable(tf.ones([self.num_codes]), name="ema_count", **state)

    def build_optimizers(self):
        self.optimizer = self.loss_scaled(keras.optimizers.Adam(self.config.vq_learning_rate))
        self.optimizer.build(self.trainable_variables)

    # ------------------------------------------------------------- codes
    def codebook_tensor(self):
        """The codebook [K, D]."""
        return tf.convert_to_tensor(self.codebook)

    def vector_quantize(self, z_e):
        """z_e [b, h, w, D] -> (codes [b, h, w] int32, z_q [b, h, w, D])."""
        codebook = self.codebook_tensor()
        codes = nearest_codes(z_e, codebook)
        return codes, tf.gather(codebook, codes)

    def tokens(self, x):
        """Images [b, H, W, C] -> codes [b, n] in raster order (n = h * w)."""
        codes, _ = self.vector_quantize(to_float32(self.encoder(x, training=False)))
        return tf.reshape(codes, [tf.shape(x)[0], -1])

    def decode(self, z):
        """Code vectors [b, h, w, D] -> images [b, H, W, C] (unclipped, float32)."""
        return to_float32(self.decoder(z, training=False))

    def decode_codes(self, codes):
        """Codes [b, n] -> images [b, H, W, C] in [-1, 1]."""
        z = tf.gather(self.codebook_tensor(), tf.reshape(codes, [-1, *self.grid]))
        return tf.clip_by_value(self.decode(z), -1.0, 1.0)

    def features(self, x):
        """The encoder's residual-level activations of images [b, H, W, C]: a list of
        [b, H / 2^l, W / 2^l, width_l] (the perceptual loss's feature network)."""
        out = to_float32(self.feature_net(x, training=False))
        return out if isinstance(out, (list, tuple)) else [out]

    def call(self, x, training=False):
        _, z_q = self.vector_quantize(to_float32(self.encoder(x, training=training)))
        return to_float32(self.decoder(z_q, training=training))

    # ------------------------------------------------------------- steps
    def _forward(self, x, training):
        """(per-example terms, z_e [b, h, w, D], codes [b, h, w])."""
        z_e = to_float32(self.encoder(x, training=training))
        codes, z_q = self.vector_quantize(z_e)
        x_hat = to_float32(self.decoder(straight_through(z_e, z_q), training=training))
        return tokenizer_terms(x, x_hat, z_e, z_q, self.config), z_e, codes

    def _logs(self, shares, codes_global):
        """The terms' shares (``replica_mean`` of each per-example term) and the code
        statistics of the global batch."""
        logs = dict(shares)
        _, perplexity, used = code_statistics(codes_global, self.num_codes)
        logs.update(perplexity=self.replica_share(perplexity), codes_used=self.replica_share(used))
        return logs

    def _gradients(self, x, scale):
        """((gradients, the per-example terms' shares), (z_e, codes)) of a (micro-)batch."""
        with tf.GradientTape() as tape:
            terms, z_e, codes = self._forward(x, training=True)
            loss = scale_loss(self.replica_mean(terms["loss"]), scale)
        shares = {k: self.replica_mean(v) for k, v in terms.items()}
        return ((tape.gradient(loss, self.trainable_variables), shares),
                (tf.stop_gradient(z_e), codes))

    def _evaluation(self, x):
        terms, _, codes = self._forward(x, training=False)
        return {k: self.replica_mean(v) for k, v in terms.items()}, codes

    def train_step(self, data):
        x, _ = data
        self.check_images(x)
        (grads, shares), (z_e, codes) = self.over_micro_batches(
            self.step_function(self._gradients, "gradients"), x,
            self.loss_scale(self.optimizer))
        self.apply_update(self.optimizer, grads, self.trainable_variables)
        # The codebook's EMA step, on the global batch (identical on every replica).
        z_all = self.gather(tf.reshape(tf.stop_gradient(z_e), [-1, self.code_dim]))  # [B*n, D]
        codes_all = self.gather(tf.reshape(codes, [-1]))  # [B*n]
        pick = tf.random.stateless_uniform(
            [self.num_codes], self._noise_seed(_SALT_RESTART, self.step_counter), minval=0,
            maxval=tf.shape(z_all)[0], dtype=tf.int32)
        count, total, codebook, dead = ema_codebook_update(
            tf.convert_to_tensor(self.ema_count), tf.convert_to_tensor(self.ema_sum), z_all,
            codes_all, self.config.codebook_decay, self.config.restart_threshold,
            tf.gather(z_all, pick))
        self.ema_count.assign(count)
        self.ema_sum.assign(total)
        self.codebook.assign(codebook)
        logs = self._logs(shares, codes_all)
        logs["restarts"] = self.replica_share(tf.reduce_sum(tf.cast(dead, tf.float32)))
        return logs

    def test_step(self, data):
        x, _ = data
        self.check_images(x)
        shares, codes = self.over_micro_batches(
            self.step_function(self._evaluation, "evaluation"), x)
        return self._logs(shares, self.gather(tf.reshape(codes, [-1])))

    # ------------------------------------------------------------- first stage
    def reconstruct(self, images):
        return tf.clip_by_value(self(tf.convert_to_tensor(images, tf.float32)), -1.0, 1.0)

    def evaluate_stage(self, source, limit: int = 2048) -> dict:
        """Reconstruction error and codebook usage on up to ``limit`` images of ``source``."""
        sq, ab, counts, n = 0.0, 0.0, np.zeros(self.num_codes), 0
        for images, _ in source.batches(256):
            images = images[:limit - n]
            codes = self.tokens(images)
            x_hat = self.decode_codes(codes)
            sq += float(tf.reduce_sum(tf.reduce_mean(tf.square(images - x_hat), [1, 2, 3])))
            ab += float(tf.reduce_sum(tf.reduce_mean(tf.abs(images - x_hat), [1, 2, 3])))
            counts += np.bincount(codes.numpy().ravel(), minlength=self.num_codes)
            n += len(images)
            if n >= limit:
                break
        p = counts / counts.sum()
        nz = p[p > 0]
        return {"recon_mse": sq / n, "recon_mae": ab / n, "recon_images": n,
                "recon_split": source.split, "codebook_size": self.num_codes,
                "token_grid": list(self.grid),
                "codebook_perplexity": float(np.exp(-np.sum(nz * np.log(nz)))),
                "codes_used_fraction": float(np.mean(counts > 0))}


class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """rate x min(1, (step + 1) / steps): the linear warm-up of GPT's optimiser."""

    def __init__(self, rate: float, steps: int):
        self.rate, self.steps = float(rate), max(int(steps), 1)

    def __call__(self, step):
        return self.rate * tf.minimum(1.0, (tf.cast(step, tf.float32) + 1.0) / self.steps)

    def get_config(self):
        return {"rate": self.rate, "steps": self.steps}


class AutoregressivePrior(GenerativeModel):
    """Stage 2: the class-conditional transformer prior over the frozen tokenizer's codes,
    and its sampler. The loss is looked up once, here; the steps call it without
    knowing its name."""

    LOSS_PAIRS = [("loss", "val_loss"), ("nll", "val_nll")]

    def __init__(self, config, *, image_shape, global_batch_size, seed=0, tokenizer=None,
                 **kwargs):
        super().__init__(config, image_shape=image_shape,
                         global_batch_size=global_batch_size, seed=seed, **kwargs)
        self.loss_fn = LOSSES.resolve(config.loss)
        if tokenizer is None:
            raise ValueError("the autoregressive prior needs its trained tokenizer (stage 1)")
        if tokenizer.num_codes != config.latent_size:
            raise ValueError(f"the tokenizer has a codebook of {tokenizer.num_codes} codes but "
                             f"this row's latent size (codebook size K) is "
                             f"{config.latent_size}; use the tokenizer folder of that size")
        if tokenizer.image_shape != self.image_shape:
            raise ValueError(f"the tokenizer was trained on {tokenizer.image_shape} images, "
                             f"this run has {self.image_shape}; train a first stage for them")
        self.tokenizer = tokenizer.freeze()
        self.num_tokens = check_context(config, self.image_shape)
        self.num_codes = int(config.latent_size)
        self.prior = TransformerPrior(self.num_codes, config.num_classes, config.context_length,
                                      config.width, config.depth, config.heads, name="prior")
        self.configure_sampler()

    def build_optimizers(self):
        self.optimizer = self.loss_scaled(keras.optimizers.Adam(
            LinearWarmup(self.config.learning_rate, self.config.warmup_steps), beta_2=0.95))
        self.optimizer.build(self.prior.trainable_variables)

    @property
    def null_label(self) -> int:
        return self.config.num_classes

    def call(self, x, training=False):
        codes = self.tokenizer.tokens(x)
        labels = tf.fill([tf.shape(x)[0]], self.null_label)
        return self.prior((labels, codes[:, :-1]), training=training)

    # ------------------------------------------------------------- steps
    def training_source(self, source):
        """The tokenizer is frozen and an image's codes are a function of the image
        alone, so a loss that reads only the codes (``needs_images`` false: cross_entropy,
        mse) trains on codes computed once per fit: a FeatureSource of int32 [N, n]. The
        perceptual loss compares images, so its steps take the images and tokenize them."""
        if needs_images(self.loss_fn):
            return source
        return FeatureSource.computed(source, self.tokenizer.tokens)

    def step_codes(self, x):
        """A step's input -> (codes [b, n] int32, images or None): the cached codes of
        ``training_source``, or images [b, H, W, C] tokenized here."""
        if x.dtype.is_integer:
            if x.shape.rank != 2 or x.shape[1] not in (None, self.num_tokens):
                raise ValueError(f"the prior's steps take codes [b, {self.num_tokens}] or "
                                 f"images, got {tuple(x.shape)}")
            if needs_images(self.loss_fn):
                raise ValueError(f"the {self.config.loss!r} loss compares images: give its "
                                 f"steps images, not codes")
            return tf.cast(x, tf.int32), None
        self.check_images(x)
        return self.tokenizer.tokens(x), x

    def _inputs(self, data, evaluation):
        """A step's per-example inputs: the images (a loss that reads them; else None is
        left out), the codes and the labels after the label dropout (drawn for the batch)."""
        x, labels = data
        codes, images = self.step_codes(x)  # [b, n]
        b = tf.shape(codes)[0]
        drop = self.uniform(b, [], _SALT_DROP, evaluation=evaluation) < self.config.label_dropout
        y = tf.where(drop, tf.fill([b], self.null_label), tf.cast(labels, tf.int32))
        inputs = {"codes": codes, "y": y}
        if images is not None:
            inputs["images"] = images
        return inputs

    def _terms(self, data, evaluation):
        """The terms of a step's data (x, labels): its inputs, then their terms."""
        return self._micro_terms(self._inputs(data, evaluation), evaluation)

    def _micro_terms(self, micro, evaluation):
        """The terms of a (micro-)batch of ``_inputs``."""
        codes, y = micro["codes"], micro["y"]
        logits = to_float32(self.prior((y, codes[:, :-1]), training=not evaluation))  # [b, n, K]
        return {"loss": self.replica_mean(self.loss_fn(logits, codes, micro.get("images"),
                                                       self.tokenizer, self.config)),
                "nll": self.replica_mean(token_cross_entropy(logits, codes))}

    def _gradients(self, micro, scale):
        variables = self.prior.trainable_variables
        with tf.GradientTape() as tape:
            terms = self._micro_terms(micro, evaluation=False)
            loss = scale_loss(terms["loss"], scale)
        return (tape.gradient(loss, variables), terms), ()

    def train_step(self, data):
        (grads, terms), _ = self.over_micro_batches(
            self.step_function(self._gradients, "gradients"), self._inputs(data, False),
            self.loss_scale(self.optimizer))
        self.apply_update(self.optimizer, grads, self.prior.trainable_variables)
        return terms

    def test_step(self, data):
        terms, _ = self.over_micro_batches(
            self.step_function(lambda m: (self._micro_terms(m, evaluation=True), ()),
                               "evaluation"),
            self._inputs(data, True))
        return terms

    # ------------------------------------------------------------- sampler
    def configure_sampler(self):
        """(Re)read the sampler settings from the config (they may change after training)."""
        self.config.validate()
        self._sample_fn = tf.function(self.sample_codes, reduce_retracing=True)

    def sample_codes(self, labels, seed, use_cache=True):
        """Codes [b, n] drawn left to right for labels [b] (the null label: unconditional).

        Each position's logits (guided: uncond + s (cond - uncond)) are divided by the
        temperature, cut to the top k, and sampled by the Gumbel-max trick with the
        stateless noise of (seed, 7919 + position): a pure function of (weights, labels,
        seed). ``use_cache`` False recomputes the whole prefix at every position (the
        reference the key/value cache is tested against).
        """
        cfg, n, num_codes = self.config, self.num_tokens, self.num_codes
        labels = tf.cast(labels, tf.int32)
        b = tf.shape(labels)[0]
        guided = cfg.guidance_scale != 1.0
        rows = tf.concat([labels, tf.fill([b], self.null_label)], 0) if guided else labels
        k = min(int(cfg.top_k), num_codes)
        seed = tf.cast(seed, tf.int64)

        def next_logits(i, codes, cache):
            both = tf.concat([codes, codes], 0) if guided else codes
            if use_cache:
                logits, cache = self.prior.step(rows, tf.gather(both, tf.maximum(i - 1, 0),
                                                                axis=1), i, cache)
            else:
                logits = to_float32(tf.gather(self.prior((rows, both[:, :n - 1])), i, axis=1))
            if guided:
                cond, uncond = tf.split(logits, 2)
                logits = uncond + cfg.guidance_scale * (cond - uncond)
            return logits, cache

        def body(i, codes, cache):
            logits, cache = next_logits(i, codes, cache)
            logits = logits / cfg.temperature
            if k < num_codes:
                kth = tf.math.top_k(logits, k).values[:, -1:]
                logits = tf.where(logits < kth, -np.inf, logits)
            u = tf.random.stateless_uniform([b, num_codes],
                                            tf.stack([seed, _SALT_SAMPLER + tf.cast(i, tf.int64)]),
                                            minval=1e-20, maxval=1.0)
            code = tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=-1, output_type=tf.int32)
            codes = codes + tf.one_hot(i, n, dtype=tf.int32)[None] * code[:, None]
            return i + 1, codes, cache

        cache = self.prior.empty_cache(tf.shape(rows)[0]) if use_cache else []
        _, codes, _ = tf.while_loop(lambda i, *_: i < n, body,
                                    (tf.constant(0), tf.zeros([b, n], tf.int32), cache))
        return codes

    def sample_latents(self, n, seed):
        """Labels ~ U{0..num_classes-1} [n] and the seed of the sampler's noise."""
        key = tf.constant([self.seed, seed], tf.int64)
        labels = tf.random.stateless_uniform([n], key, minval=0, maxval=self.config.num_classes,
                                             dtype=tf.int32)
        return {"labels": labels, "seed": int(seed)}

    def generate(self, latents):
        codes = self._sample_fn(latents["labels"], tf.constant(latents["seed"], tf.int64))
        return self.tokenizer.decode_codes(codes)
