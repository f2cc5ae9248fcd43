"""StyleGAN2's training model: owns train_step/test_step, the EMA generator and ADA.

One train step (Karras et al. 2020, StyleGAN2 / StyleGAN2-ADA's training loop):

1. discriminator, ``d_steps`` times (WGAN-GP's n_critic = 5; 1 otherwise), each on
   its own batch of reals (the step receives their concatenation): fakes from fresh
   z (with style mixing), D on (augmented) reals and fakes, the objective's loss
   (+ its own penalty, WGAN-GP's), and every ``d_reg_every`` steps (on the first
   critic step) the lazy R1 penalty scaled by the interval;
2. generator: fresh z, G's loss through the (augmented) discriminator;
3. the EMA generator moves towards G; ADA's p is updated from sign(D(real)).

Randomness comes only from ``GenerativeModel.normal/uniform`` (seed, step, salt),
drawn outside the step's compiled units (``GenerativeModel.step_function``: D's and G's
gradients, the evaluation terms) and passed in.

Precision, XLA and accumulation (``models.base``): fakes and D's outputs are cast to
float32 before the augmentations and the losses; the EMA copies and ADA's state are
float32 variables; with float16 both optimisers are loss-scaled, each with its own scale.
XLA compiles the D and G gradient computations (the run's ``jit``; the config's
``jit_compile`` no longer decides). With ``accumulate`` k every critic step's batch and
the G step's batch are cut into k micro-batches (the reals, their noise, their fakes):
the objectives, the WGAN-GP gradient penalty and R1 are per example, so the summed
gradients are the whole batch's exactly; the minibatch-stddev layer sees one
micro-batch, so its groups are the whole batch's when ``mbstd_group`` divides the
micro-batch (else smaller: ``layers.MinibatchStdDev``); ADA reads D(real) of every
micro-batch of the last critic step; the EMA and ADA move once per step.
"""
from __future__ import annotations

import functools

import tensorflow as tf

from models.base import GenerativeModel
from models.shared.precision import agree_on_overflow, scale_loss, to_float32
from common.optimizers import extrapolates, make_optimizer
from models.gan.losses import LOSSES
from models.gan.networks import (build_discriminator, build_mapping, build_synthesis,
                                 noise_shapes, num_ws)
from models.shared.augment import (ADA_NORMALS, ADA_UNIFORMS, DIFFAUGMENT_UNIFORMS,
                                   AdaptiveAugmentation, ada_augment, diff_augment,
                                   parse_policy)
from models.shared.ema import ema_beta, update_ema
from models.shared.regularizers import r1_penalty

# Salt bases of the step's independent noise streams (each stream uses base + 0..4).
_STREAM_D_GENERATOR = 10       # z, z2, mixing, per-pixel noise of the D step's fakes
_STREAM_D_REAL_AUG = 20        # augmentation of the reals
_STREAM_D_FAKE_AUG = 30        # augmentation of the fakes in the D step
_STREAM_GP = 40                # interpolation weights of the gradient penalty
_STREAM_G_GENERATOR = 50       # z, z2, mixing, per-pixel noise of the G step
_STREAM_G_AUG = 60             # augmentation in the G step
_STREAM_EXTRAPOLATION = 200  # added to every stream in an extragradient's look-ahead
_EVAL_OFFSET = 500             # evaluation streams: base + 500 (never collide with training)
_CRITIC_OFFSET = 1000          # critic step i > 0 of a train step: D streams + 1000 * i
_CONST_NOISE_SALT = 90_000     # the sampler's fixed per-pixel noise
_W_AVG_SALT = 91_000           # the z draws whose mean w centres the truncation trick
_W_AVG_SAMPLES = 10_000


class GANModel(AdaptiveAugmentation, GenerativeModel):
    """StyleGAN2 (mapping + synthesis generator, residual discriminator) trained
    with one objective from ``LOSSES``; samples come from the EMA generator.

    The objective is looked up once, here; the steps call it without knowing its
    name. Tracked state beyond the networks: the EMA copies of the mapping and
    synthesis networks, ADA's p and its accumulators (all saved by the trainer's
    checkpoint), and the two Adam optimisers (``checkpoint_objects``).
    """

    TRAIN_LOSS_KEY = "g_loss"
    VAL_LOSS_KEY = "d_loss"
    #: (train key, val key) panels of loss_curves.png: the thesis's G-vs-D curves,
    #: D's loss on train vs held-out batches, D's loss on held-out *real* images
    #: (overfitting), and ADA's p beside its heuristic r_t = E[sign D(real)].
    LOSS_PAIRS = [("g_loss", "d_loss"), ("d_loss", "val_d_loss"),
                  ("d_real_loss", "val_d_real_loss"), ("ada_p", "d_real_sign")]

    def __init__(self, config, *, image_shape, global_batch_size, seed=0, **kwargs):
        super().__init__(config, image_shape=image_shape,
                         global_batch_size=global_batch_size, seed=seed, **kwargs)
        self.loss_fn = LOSSES.resolve(config.loss)
        if self.image_shape[0] != self.image_shape[1]:
            raise ValueError(f"StyleGAN2 needs square images, got {self.image_shape}")
        if config.conv_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"conv_dtype must be 'float32' or 'bfloat16', got {config.conv_dtype!r}")
        self.d_steps = config.critic_steps()
        self.batches_per_step = self.d_steps  # the trainer hands each step d_steps batches
        self.policy = parse_policy(config.diffaugment)
        self.num_ws = num_ws(self.image_shape[0])
        self.noise_shapes = noise_shapes(self.image_shape[0])
        self.r1_active = config.r1_gamma > 0

        self.mapping = build_mapping(config.latent_size, config.w_dim, config.mapping_layers,
                                     config.mapping_lr_mul, seed=seed * 7 + 1)
        self.synthesis = build_synthesis(self.image_shape, config, seed=seed * 7 + 2)
        self.discriminator = build_discriminator(self.image_shape, config, seed=seed * 7 + 3)
        # The EMA generator (StyleGAN, sec. 4 / Karras et al. 2018): updated inside the
        # replica step with identical values everywhere, hence "only_first_replica".
        self.ema_mapping = build_mapping(config.latent_size, config.w_dim, config.mapping_layers,
                                         config.mapping_lr_mul, seed=seed * 7 + 1,
                                         aggregation="only_first_replica", name="ema_mapping")
        self.ema_synthesis = build_synthesis(self.image_shape, config, seed=seed * 7 + 2,
                                             aggregation="only_first_replica",
                                             name="ema_synthesis")
        self.ema_mapping.trainable = False
        self.ema_synthesis.trainable = False
        for ema, weight in zip(self.ema_weights, self.generator_weights):
            ema.assign(weight)

        self.make_ada_state()  # ADA's p and its accumulators (models.shared.augment)

    # ------------------------------------------------------------ bookkeeping
    @property
    def generator_variables(self):
        return self.mapping.trainable_variables + self.synthesis.trainable_variables

    @property
    def generator_weights(self):
        return self.mapping.weights + self.synthesis.weights

    @property
    def ema_weights(self):
        return self.ema_mapping.weights + self.ema_synthesis.weights

    def build_optimizers(self):
        cfg = self.config
        # config.optimizer names both players' optimiser (common.optimizers.OPTIMIZERS):
        # Adam as in StyleGAN2 by default, or e.g. ExtraAdam (Gidel et al. 2019).
        self.g_optimizer = self.loss_scaled(make_optimizer(
            cfg.optimizer, cfg.g_learning_rate, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
            epsilon=cfg.epsilon))
        # Lazy regularisation (StyleGAN2, sec. 3.1): with R1 every k steps, scale D's
        # learning rate and betas by c = k / (k + 1) to keep the same effective step.
        c = cfg.d_reg_every / (cfg.d_reg_every + 1.0) if self.r1_active else 1.0
        self.d_optimizer = self.loss_scaled(make_optimizer(
            cfg.optimizer, cfg.d_learning_rate * c, beta_1=cfg.beta_1 ** c,
            beta_2=cfg.beta_2 ** c, epsilon=cfg.epsilon))
        self.g_optimizer.build(self.generator_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def checkpoint_objects(self) -> dict:
        return {"g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}

    def call(self, images, training=False):
        return to_float32(self.discriminator(images, training=training))

    # -------------------------------------------------------------- randomness
    def generator_inputs(self, batch, stream, evaluation=False):
        """z, z2 [b, latent], mixing uniforms [b, 2], per-pixel noise [b, sum(H*W)]."""
        salt = stream + (_EVAL_OFFSET if evaluation else 0)
        latent = [self.config.latent_size]
        pixels = sum(h * w for h, w, _ in self.noise_shapes)
        return {"z": self.normal(batch, latent, salt, evaluation=evaluation),
                "z2": self.normal(batch, latent, salt + 1, evaluation=evaluation),
                "mix": self.uniform(batch, [2], salt + 2, evaluation=evaluation),
                "noise": self.normal(batch, [pixels], salt + 3, evaluation=evaluation)}

    def augment_inputs(self, batch, stream, evaluation=False):
        """The per-example random numbers the configured augmentations read."""
        salt = stream + (_EVAL_OFFSET if evaluation else 0)
        inputs = {}
        if self.policy:
            inputs["diff"] = self.uniform(batch, [DIFFAUGMENT_UNIFORMS], salt,
                                          evaluation=evaluation)
        if self.config.ada:
            inputs["ada_u"] = self.uniform(batch, [ADA_UNIFORMS], salt + 1, evaluation=evaluation)
            inputs["ada_n"] = self.normal(batch, [ADA_NORMALS], salt + 2, evaluation=evaluation)
        return inputs

    # ----------------------------------------------------------------- forward
    def mixed_styles(self, mapping, inputs):
        """ws [b, num_ws, w_dim]: w = mapping(z) everywhere, except that with
        probability ``style_mixing_prob`` the layers from a random cutoff in
        [1, num_ws) on read w2 = mapping(z2) (StyleGAN, sec. 3.1 "mixing
        regularization"; drawn per example)."""
        w = mapping(inputs["z"])                                           # [b, w_dim]
        ws = tf.tile(w[:, None, :], [1, self.num_ws, 1])
        prob = self.config.style_mixing_prob
        if prob <= 0:
            return ws
        w2 = mapping(inputs["z2"])
        u = inputs["mix"]
        cutoff = tf.where(u[:, 0] < prob, 1.0 + tf.floor(u[:, 1] * (self.num_ws - 1)),
                          float(self.num_ws))                              # [b]
        first = tf.range(self.num_ws, dtype=tf.float32)[None, :] < cutoff[:, None]
        return tf.where(first[:, :, None], ws, w2[:, None, :])

    def split_noise(self, noise):
        """[b, sum(H*W)] -> the synthesis network's noise inputs [b, H, W, 1] each."""
        sizes = [h * w for h, w, _ in self.noise_shapes]
        return [tf.reshape(n, [-1, *shape])
                for n, shape in zip(tf.split(noise, sizes, axis=1), self.noise_shapes)]

    def synthesize(self, inputs):
        """Training generator's images [b, H, W, C] (float32) from ``generator_inputs``."""
        ws = self.mixed_styles(self.mapping, inputs)
        return to_float32(self.synthesis([ws, *self.split_noise(inputs["noise"])],
                                         training=True))

    def augment(self, images, inputs, p):
        """DiffAugment and/or ADA, as configured (identity when both are off)."""
        if self.policy:
            images = diff_augment(images, self.policy, inputs["diff"])
        if self.config.ada:
            images = ada_augment(images, p, inputs["ada_u"], inputs["ada_n"])
        return images

    def discriminator_terms(self, real, fake, aug_real, aug_fake, eps, p, with_r1=False):
        """Per-example terms of D's objective [b] each, and D's outputs."""
        x_real = self.augment(real, aug_real, p)
        x_fake = self.augment(fake, aug_fake, p)
        d_real = to_float32(self.discriminator(x_real, training=True))     # [b]
        d_fake = to_float32(self.discriminator(x_fake, training=True))     # [b]
        terms = self.loss_fn(d_real, d_fake)
        zeros = tf.zeros_like(d_real)
        penalty = self.loss_fn.penalty
        terms["gp"] = (zeros if penalty is None
                       else penalty(self.discriminator, x_real, x_fake, eps, self.config))
        # Lazy R1 (StyleGAN2, sec. 3.1): every d_reg_every steps, scaled by the interval;
        # averaged over steps, the logged "r1" is the per-step penalty.
        terms["r1"] = (r1_penalty(self.discriminator, x_real, self.config.r1_gamma)
                       * float(self.config.d_reg_every) if with_r1 else zeros)
        terms["d_loss"] = terms["d_loss"] + terms["gp"]
        return terms, d_real, d_fake

    def discriminator_gradients(self, micro, p, scale, with_r1):
        """((D's gradients, this replica's log shares), D(real) [b]) of a (micro-)batch:
        ``micro`` holds the reals and the noise of ``critic_step``; ``scale``: the loss
        scale (None: none)."""
        fake = self.synthesize(micro["gen"])
        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([v.value for v in d_vars])
            terms, d_real, d_fake = self.discriminator_terms(
                micro["real"], fake, micro["aug_real"], micro["aug_fake"], micro["eps"], p,
                with_r1)
            total = scale_loss(self.replica_mean(terms["d_loss"] + terms["r1"]), scale)
        grads = tape.gradient(total, d_vars)
        logs = self._discriminator_logs(terms, d_real, d_fake)
        return (grads, logs), d_real

    def _discriminator_logs(self, terms, d_real, d_fake):
        logs = {k: self.replica_mean(terms[k])
                for k in ("d_loss", "d_real_loss", "d_fake_loss", "gp", "r1")}
        logs["d_real"] = self.replica_mean(d_real)
        logs["d_fake"] = self.replica_mean(d_fake)
        logs["d_real_sign"] = self.replica_mean(tf.sign(d_real))
        return logs

    def generator_gradients(self, micro, p, scale):
        """((G's gradients, this replica's share of g_loss), ()) of a (micro-)batch."""
        # Watch G's variables only, so D's weight gradients are never built.
        g_vars = self.generator_variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([v.value for v in g_vars])
            fake = self.synthesize(micro["gen"])
            d_fake = to_float32(self.discriminator(self.augment(fake, micro["aug"], p),
                                                   training=True))
            g_loss = self.replica_mean(self.loss_fn.generator(d_fake))
            scaled = scale_loss(g_loss, scale)
        return (tape.gradient(scaled, g_vars), {"g_loss": g_loss}), ()

    def evaluation_terms(self, micro, p):
        fake = self.synthesize(micro["gen"])
        terms, d_real, d_fake = self.discriminator_terms(
            micro["real"], fake, micro["aug_real"], micro["aug_fake"], micro["eps"], p)
        logs = self._discriminator_logs(terms, d_real, d_fake)
        logs["g_loss"] = self.replica_mean(terms["g_loss"])
        del logs["r1"]
        return logs, ()

    # ------------------------------------------------------------------- steps
    @staticmethod
    def _batch(images):
        return images.shape[0] if images.shape[0] is not None else tf.shape(images)[0]

    def critic_step(self, real, p, move, salt=0, lazy_r1=True):
        """One D step on reals [b, ...], moved by ``move(optimizer, grads, variables)``;
        returns its logs and D(real) [b]. ``salt`` shifts every noise stream (each
        critic step and an extragradient's look-ahead draw their own); ``lazy_r1``:
        this step may carry the lazy R1 penalty (the first critic step of a G step)."""
        b = self._batch(real)
        micro = {"real": real, "gen": self.generator_inputs(b, _STREAM_D_GENERATOR + salt),
                 "aug_real": self.augment_inputs(b, _STREAM_D_REAL_AUG + salt),
                 "aug_fake": self.augment_inputs(b, _STREAM_D_FAKE_AUG + salt),
                 "eps": self.uniform(b, [], _STREAM_GP + salt)}
        scale = self.loss_scale(self.d_optimizer)

        def gradients(with_r1):
            fn = self.step_function(
                functools.partial(self.discriminator_gradients, with_r1=with_r1),
                "d_with_r1" if with_r1 else "d_plain")
            (grads, logs), d_real = self.over_micro_batches(fn, micro, p, scale)
            return grads, logs, d_real

        if self.r1_active and lazy_r1:
            regularise = tf.equal(self.step_counter % self.config.d_reg_every, 0)
            d_grads, logs, d_real = tf.cond(regularise, lambda: gradients(True),
                                            lambda: gradients(False))
        else:
            d_grads, logs, d_real = gradients(False)
        move(self.d_optimizer, d_grads, self.discriminator.trainable_variables)
        return logs, d_real

    def alternating_step(self, reals, p, move, salt=0):
        """``d_steps`` D steps, critic step i on the i-th batch of reals
        [d_steps * b, ...], then G's step (through the updated D), each moved by
        ``move``; returns (logs, the last D(real)). D's logs are the mean over its steps."""
        critic_logs = []
        for i, real in enumerate(tf.split(reals, self.d_steps, axis=0)):
            logs, d_real = self.critic_step(real, p, move, salt + _CRITIC_OFFSET * i,
                                            lazy_r1=i == 0)
            critic_logs.append(logs)
        logs = {k: tf.add_n([c[k] for c in critic_logs]) / float(self.d_steps)
                for k in critic_logs[0]}
        b = self._batch(real)
        micro = {"gen": self.generator_inputs(b, _STREAM_G_GENERATOR + salt),
                 "aug": self.augment_inputs(b, _STREAM_G_AUG + salt)}
        (g_grads, g_logs), _ = self.over_micro_batches(
            self.step_function(self.generator_gradients, "g"), micro, p,
            self.loss_scale(self.g_optimizer))
        move(self.g_optimizer, g_grads, self.generator_variables)
        logs.update(g_logs)
        return logs, d_real

    # No Python control flow depends on tensors here (tf.cond is explicit), so the
    # steps skip AutoGraph's source transformation: it cost ~7 s per trace.
    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        reals, _ = data  # [d_steps * b, ...]: the critic steps' batches, one after another
        self.check_images(reals)
        p = tf.convert_to_tensor(self.ada_p)
        if extrapolates(self.g_optimizer):  # extragradient: look ahead first (own noise)
            if self.g_optimizer.extrapolation_uses_gradients:
                self.alternating_step(
                    reals, p, lambda opt, g, v: opt.extrapolate(agree_on_overflow(opt, g), v),
                    salt=_STREAM_EXTRAPOLATION)
            else:
                self.d_optimizer.extrapolate(None, self.discriminator.trainable_variables)
                self.g_optimizer.extrapolate(None, self.generator_variables)
        logs, d_real = self.alternating_step(reals, p, self.apply_update)

        self.update_ema()
        if self.config.ada:
            self.update_ada(d_real)  # the last critic step's D(real)
        logs["ada_p"] = self.replica_share(self.ada_p)
        return logs

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        real, _ = data
        self.check_images(real)
        b = self._batch(real)
        micro = {"real": real,
                 "gen": self.generator_inputs(b, _STREAM_D_GENERATOR, evaluation=True),
                 "aug_real": self.augment_inputs(b, _STREAM_D_REAL_AUG, evaluation=True),
                 "aug_fake": self.augment_inputs(b, _STREAM_D_FAKE_AUG, evaluation=True),
                 "eps": self.uniform(b, [], _STREAM_GP, evaluation=True)}
        logs, _ = self.over_micro_batches(self.step_function(self.evaluation_terms, "evaluate"),
                                          micro, tf.convert_to_tensor(self.ada_p))
        return logs

    # ----------------------------------------------------- EMA and ADA updates
    def ema_beta(self):
        """StyleGAN2-ADA's EMA decay for this step (``models.shared.ema.ema_beta``)."""
        cfg = self.config
        return ema_beta(self.step_counter, self.global_batch_size, cfg.ema_kimg, cfg.ema_rampup)

    def update_ema(self, beta=None):
        """ema <- w + beta * (ema - w) for every generator weight."""
        update_ema(self.ema_weights, self.generator_weights,
                   self.ema_beta() if beta is None else beta)

    # ----------------------------------------------------------------- sampler
    def sample_latents(self, n, seed):
        """z ~ N(0, I): [n, latent_size]."""
        return tf.random.stateless_normal([n, self.config.latent_size], [self.seed, seed])

    def const_noise(self, n):
        """The sampler's fixed per-pixel noise (StyleGAN2-ADA's noise_mode='const')."""
        return [tf.tile(tf.random.stateless_normal([1, *shape], [self.seed, _CONST_NOISE_SALT + i]),
                        [n, 1, 1, 1]) for i, shape in enumerate(self.noise_shapes)]

    def configure_sampler(self):
        """Check the sampler's settings (truncation_psi) after a change."""
        self.config.validate()

    def w_avg(self):
        """The EMA mapping's mean w [w_dim] over _W_AVG_SAMPLES fixed z draws: the centre
        of the truncation trick. StyleGAN tracks it as a running average during training;
        the mean over many draws is the same quantity for the weights being sampled."""
        z = tf.random.stateless_normal([_W_AVG_SAMPLES, self.config.latent_size],
                                       [self.seed, _W_AVG_SALT])
        return tf.reduce_mean(to_float32(self.ema_mapping(z, training=False)), axis=0)

    def truncate(self, w):
        """w [b, w_dim] -> w_avg + psi (w - w_avg) (StyleGAN's truncation trick)."""
        psi = self.config.truncation_psi
        if psi == 1.0:
            return w
        centre = self.w_avg()
        return centre + psi * (w - centre)

    def generate(self, latents):
        """Images in [-1, 1] from the EMA generator (no style mixing, fixed noise,
        truncation ``truncation_psi``)."""
        latents = tf.convert_to_tensor(latents, tf.float32)
        n = tf.shape(latents)[0]
        w = self.truncate(to_float32(self.ema_mapping(latents, training=False)))
        ws = tf.tile(w[:, None, :], [1, self.num_ws, 1])
        images = to_float32(self.ema_synthesis([ws, *self.const_noise(n)], training=False))
        return tf.clip_by_value(images, -1.0, 1.0)


