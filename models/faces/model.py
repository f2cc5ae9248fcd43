"""Thesis 003's face GAN as a training model: one class, two modes set by its config.

One train step (appendix 4, the listing's loop, in both modes):

1. D: fakes G(z) from fresh z ~ N(0, I), D on [fakes; reals] (augmented when ADA is on),
   the mode's objective (``LOSSES[config.loss]``) with the mode's label noise, + R1 if set;
2. G: fresh z, G's loss through the just-updated D (D's dropout active, as in Keras'
   ``train_on_batch`` of the combined model);
3. EMA of G (if ``ema_kimg`` > 0) and ADA's p (if ``ada``), shared with the GAN family
   (``models.shared``).

With an extragradient optimiser (``common.optimizers``) the step above first runs as a
look-ahead (``extrapolate``, its own noise), then again from the saved point (``apply``).
Randomness comes only from ``GenerativeModel.normal/uniform`` (seed, step, salt), drawn
before the step's compiled units (D's and G's gradients) and passed in, and from the
discriminator's Dropout layer (Keras' own seed generator).

Precision, XLA and accumulation (``models.base``): G's images and D's logits are cast to
float32 before ADA and the losses; the EMA and ADA's state are float32 variables; with
float16 both optimisers are loss-scaled. With ``accumulate`` k, D's and G's batches are
cut into k micro-batches: the objectives, the label noise and R1 are per example, so
the summed gradients are the whole batch's exactly, except D's dropout: Keras draws a
mask per call, so a micro-batch's mask is a fresh draw (the same distribution, not the
whole batch's numbers). Under XLA Keras draws it with XLA's generator, so a compiled
step with dropout equals the plain one in distribution only (with dropout 0, in value).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from models.base import GenerativeModel
from models.faces.losses import LOSSES
from models.faces.networks import build_discriminator, build_generator
from models.shared.augment import ADA_NORMALS, ADA_UNIFORMS, AdaptiveAugmentation, ada_augment
from models.shared.ema import ema_beta, update_ema
from models.shared.precision import agree_on_overflow, scale_loss, to_float32
from models.shared.regularizers import r1_penalty
from common.optimizers import extrapolates, make_optimizer

_STREAM_D = 10        # z, real label noise, fake label noise, ADA (real), ADA (fake)
_STREAM_G = 30        # z, ADA
_STREAM_EXTRAPOLATION = 200
_EVAL_OFFSET = 500
_CONTROL_SALT = 77_000


class FaceGANModel(AdaptiveAugmentation, GenerativeModel):
    """Generator and discriminator of appendices 2-3, trained as ``config.loss`` (the mode)
    says; samples come from the EMA generator when ``ema_kimg`` > 0, else from G.

    The generator's images live in the data range of ``config.image_range``: [0, 1] in the
    faithful mode (the listing feeds /255 images to D while G ends in tanh), [-1, 1] in the
    fixed mode; ``generate`` maps them to [-1, 1] (the suite's contract), clipping.
    """

    TRAIN_LOSS_KEY = "g_loss"
    VAL_LOSS_KEY = "d_loss"
    LOSS_PAIRS = [("g_loss", "d_loss"), ("d_loss", "val_d_loss"),
                  ("d_real", "d_fake")]

    def __init__(self, config, *, image_shape, global_batch_size, seed=0, **kwargs):
        super().__init__(config, image_shape=image_shape, global_batch_size=global_batch_size,
                         seed=seed, **kwargs)
        self.loss_fn = LOSSES.resolve(config.loss)
        if self.image_shape[:2] != (64, 64):
            raise ValueError(f"the thesis 003 networks take 64x64 images, got {self.image_shape}; "
                             f"open the dataset with image_size=64")
        divisor, slope = int(config.channel_divisor), config.leaky_slope
        channels = self.image_shape[2]
        self.generator = build_generator(config.latent_size, channels=channels, slope=slope,
                                         divisor=divisor, seed=seed * 7 + 1)
        self.discriminator = build_discriminator(self.image_shape, slope=slope,
                                                 dropout=config.dropout, divisor=divisor,
                                                 seed=seed * 7 + 2)
        self.use_ema = config.ema_kimg > 0
        if self.use_ema:
            self.ema_generator = build_generator(config.latent_size, channels=channels,
                                                 slope=slope, divisor=divisor, seed=seed * 7 + 1,
                                                 name="ema_generator")
            self.ema_generator.trainable = False
            for ema, weight in zip(self.ema_generator.weights, self.generator.weights):
                ema.assign(weight)
        self.make_ada_state()  # ADA's p and its accumulators (models.shared.augment)

    # ------------------------------------------------------------ bookkeeping
    def _optimizer(self):
        cfg = self.config
        lr = cfg.learning_rate
        if cfg.lr_decay > 0:  # Keras 2's decay=: lr / (1 + decay * iterations)
            lr = keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1,
                                                             decay_rate=cfg.lr_decay)
        return self.loss_scaled(make_optimizer(
            cfg.optimizer, lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2, rho=cfg.rho,
            epsilon=cfg.epsilon, clipvalue=cfg.clipvalue if cfg.clipvalue > 0 else None))

    def build_optimizers(self):
        # The listing compiles D and the combined model with separate RMSprop instances.
        self.d_optimizer = self._optimizer()
        self.g_optimizer = self._optimizer()
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def checkpoint_objects(self) -> dict:
        return {"g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}

    def call(self, images, training=False):
        return to_float32(self.discriminator(images, training=training))

    # ------------------------------------------------------------------ ranges
    def to_model_range(self, images):
        """Data in [-1, 1] -> the mode's image range ([0, 1]: the listing's /255)."""
        return (images + 1.0) * 0.5 if self.config.image_range == "unit" else images

    def to_suite_range(self, images):
        """The mode's image range -> [-1, 1], clipped (tanh's negative half is outside [0, 1])."""
        if self.config.image_range == "unit":
            return tf.clip_by_value(images, 0.0, 1.0) * 2.0 - 1.0
        return tf.clip_by_value(images, -1.0, 1.0)

    # -------------------------------------------------------------- one step
    def _augment(self, images, u, n):
        return ada_augment(images, tf.convert_to_tensor(self.ada_p), u, n) if self.config.ada \
            else images

    def _noise(self, b, stream, evaluation=False):
        salt = stream + (_EVAL_OFFSET if evaluation else 0)
        cfg = self.config
        noise = {"z": self.normal(b, [cfg.latent_size], salt, evaluation=evaluation),
                 "n_real": cfg.label_noise * self.uniform(b, [], salt + 1, evaluation=evaluation),
                 "n_fake": cfg.label_noise * self.uniform(b, [], salt + 2, evaluation=evaluation)}
        if cfg.ada:
            for i, name in enumerate(("real", "fake")):
                noise[f"ada_u_{name}"] = self.uniform(b, [ADA_UNIFORMS], salt + 3 + 2 * i,
                                                      evaluation=evaluation)
                noise[f"ada_n_{name}"] = self.normal(b, [ADA_NORMALS], salt + 4 + 2 * i,
                                                     evaluation=evaluation)
        return noise

    def discriminator_terms(self, real, noise):
        fake = to_float32(self.generator(noise["z"], training=True))
        x_real = self._augment(real, noise.get("ada_u_real"), noise.get("ada_n_real"))
        x_fake = self._augment(fake, noise.get("ada_u_fake"), noise.get("ada_n_fake"))
        l_real = to_float32(self.discriminator(x_real, training=True))[:, 0]
        l_fake = to_float32(self.discriminator(x_fake, training=True))[:, 0]
        terms = self.loss_fn(l_real, l_fake, noise["n_real"], noise["n_fake"])
        if self.config.r1_gamma > 0:
            critic = lambda x: self.discriminator(x, training=True)[:, 0]  # noqa: E731
            terms["r1"] = r1_penalty(critic, x_real, self.config.r1_gamma)
            terms["d_loss"] = terms["d_loss"] + terms["r1"]
        return terms, l_real, l_fake

    def generator_loss(self, noise):
        fake = to_float32(self.generator(noise["z"], training=True))
        x_fake = self._augment(fake, noise.get("ada_u_fake"), noise.get("ada_n_fake"))
        return self.loss_fn.generator(
            to_float32(self.discriminator(x_fake, training=True))[:, 0])

    def discriminator_gradients(self, micro, scale):
        """((D's gradients, its log shares), D's logits of the reals [b]) of a (micro-)batch
        of reals and their noise."""
        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([v.value for v in d_vars])
            terms, l_real, l_fake = self.discriminator_terms(micro["real"], micro["noise"])
            d_total = scale_loss(self.replica_mean(terms["d_loss"]), scale)
        logs = {k: self.replica_mean(terms[k]) for k in ("d_loss", "d_real_loss", "d_fake_loss")}
        logs.update(d_real=self.replica_mean(tf.sigmoid(l_real)),
                    d_fake=self.replica_mean(tf.sigmoid(l_fake)))
        return (tape.gradient(d_total, d_vars), logs), l_real

    def generator_gradients(self, noise, scale):
        """((G's gradients, its share of g_loss), ()) of a (micro-)batch's noise."""
        g_vars = self.generator.trainable_variables
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([v.value for v in g_vars])
            g_total = self.replica_mean(self.generator_loss(noise))
            scaled = scale_loss(g_total, scale)
        return (tape.gradient(scaled, g_vars), {"g_loss": g_total}), ()

    def alternating_step(self, real, move, salt=0):
        """D's step, then G's through the updated D; each moved by ``move(opt, grads, vars)``."""
        b = self._batch(real)
        d_vars = self.discriminator.trainable_variables
        (d_grads, logs), l_real = self.over_micro_batches(
            self.step_function(self.discriminator_gradients, "d"),
            {"real": real, "noise": self._noise(b, _STREAM_D + salt)},
            self.loss_scale(self.d_optimizer))
        move(self.d_optimizer, d_grads, d_vars)

        g_vars = self.generator.trainable_variables
        (g_grads, g_logs), _ = self.over_micro_batches(
            self.step_function(self.generator_gradients, "g"), self._noise(b, _STREAM_G + salt),
            self.loss_scale(self.g_optimizer))
        move(self.g_optimizer, g_grads, g_vars)
        logs.update(g_logs)
        return logs, l_real

    @staticmethod
    def _batch(images):
        return images.shape[0] if images.shape[0] is not None else tf.shape(images)[0]

    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        real, _ = data
        self.check_images(real)
        real = self.to_model_range(real)
        if extrapolates(self.g_optimizer):  # extragradient: the look-ahead first
            if self.g_optimizer.extrapolation_uses_gradients:
                self.alternating_step(
                    real, lambda opt, g, v: opt.extrapolate(agree_on_overflow(opt, g), v),
                    salt=_STREAM_EXTRAPOLATION)
            else:
                self.d_optimizer.extrapolate(None, self.discriminator.trainable_variables)
                self.g_optimizer.extrapolate(None, self.generator.trainable_variables)
        logs, l_real = self.alternating_step(real, self.apply_update)
        if self.use_ema:
            cfg = self.config
            update_ema(self.ema_generator.weights, self.generator.weights,
                       ema_beta(self.step_counter, self.global_batch_size, cfg.ema_kimg,
                                cfg.ema_rampup))
        if self.config.ada:
            self.update_ada(l_real)
        logs["ada_p"] = self.replica_share(self.ada_p)
        return logs

    @tf.autograph.experimental.do_not_convert
    def test_step(self, data):
        real, _ = data
        self.check_images(real)
        real = self.to_model_range(real)
        b = self._batch(real)
        logs, _ = self.over_micro_batches(
            self.step_function(self.evaluation_terms, "evaluate"),
            {"real": real, "noise": self._noise(b, _STREAM_D, True)})
        return logs

    def evaluation_terms(self, micro):
        terms, l_real, l_fake = self.discriminator_terms(micro["real"], micro["noise"])
        logs = {k: self.replica_mean(terms[k])
                for k in ("d_loss", "d_real_loss", "d_fake_loss", "g_loss")}
        logs.update(d_real=self.replica_mean(tf.sigmoid(l_real)),
                    d_fake=self.replica_mean(tf.sigmoid(l_fake)))
        return logs, ()

    # ----------------------------------------------------------------- sampler
    def sample_latents(self, n, seed):
        """z ~ N(0, I): [n, latent_size]."""
        return tf.random.stateless_normal([n, self.config.latent_size], [self.seed, seed])

    def control_latents(self):
        """The listing's fixed control vectors N(0, 1) * control_scale, control_grid^2 of them
        (a function of the run's seed, so a resumed run renders the same ones)."""
        n = int(self.config.control_grid) ** 2
        return self.config.control_scale * tf.random.stateless_normal(
            [n, self.config.latent_size], [self.seed, _CONTROL_SALT])

    def generate(self, latents):
        """Images in [-1, 1] from the EMA generator (or G), inference mode."""
        net = self.ema_generator if self.use_ema else self.generator
        return self.to_suite_range(to_float32(net(tf.convert_to_tensor(latents, tf.float32),
                                                  training=False)))
