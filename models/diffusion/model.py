"""The diffusion family's two trainable models: the autoencoder (stage 1) and the
latent denoiser (stage 2), each owning its train_step/test_step; the denoiser
also owns the sampler.

Latent diffusion (Rombach et al. 2022): stage 2 trains eps_theta on
z_0 = scale * E(x), with scale = 1 / std(E(x)) measured on the training images
before the first step (their "scale factor"), so the latent has unit variance
like the noise it is mixed with; samples are D(z_0 / scale).

Precision, XLA and accumulation (``models.base``): the networks' outputs (moments,
reconstructions, predicted noise) are cast to float32 before the losses, the samplers
and the EMA read them; the noise of a step (the posterior's eps, t, the diffusion's eps,
the label dropout) is drawn for the replica's whole batch before the compiled units and
cut with it. Every term of both stages is per example and GroupNorm normalises each
example alone, so k micro-batches give exactly the whole batch's gradient. The EMA of
the denoiser moves once per step, after the update.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from data.sources import FeatureSource
from models.base import GenerativeModel
from models.shared.precision import scale_loss, to_float32
from models.diffusion.config import latent_shape, unet_patch
from models.diffusion.losses import LOSSES, autoencoder_terms, mse
from models.diffusion.networks import build_encoder, build_unet
from models.diffusion.samplers import ddim_sample, ddpm_sample, guided_eps
from models.diffusion.schedules import Schedule
from models.shared.blocks import build_decoder

# Salts that keep the steps' independent noise streams apart.
_SALT_POSTERIOR = 1   # z ~ q(z | x)
_SALT_TIME = 2        # t ~ U{0, ..., T-1}
_SALT_EPS = 3         # eps ~ N(0, I)
_SALT_DROP = 4        # label dropout
_SCALE_IMAGES = 1024  # training images that measure the latent's scale


class Autoencoder(GenerativeModel):
    """Stage 1: the KL-regularised autoencoder x -> q(z | x) = N(mean, exp(log_var)) -> x_hat.

    Trained with ``losses.autoencoder_terms``; its folder's samples.png shows
    reconstructions of held-out images and metrics.json its reconstruction error.
    """

    IS_FIRST_STAGE = True
    LOSS_PAIRS = [("loss", "val_loss"), ("mse", "val_mse")]

    def __init__(self, config, *, image_shape, global_batch_size, seed=0, **kwargs):
        super().__init__(config, image_shape=image_shape,
                         global_batch_size=global_batch_size, seed=seed, **kwargs)
        self.latent_shape = latent_shape(config, self.image_shape)
        self.encoder = build_encoder(self.image_shape, self.latent_shape, config.ae_widths)
        self.decoder = build_decoder(self.latent_shape, self.image_shape, config.ae_widths)

    def build_optimizers(self):
        self.optimizer = self.loss_scaled(keras.optimizers.Adam(
            self.config.ae_learning_rate, beta_1=0.5, beta_2=0.9))
        self.optimizer.build(self.trainable_variables)

    def encode(self, x, training=False):
        """(mean, log_var) [b, s, s, c], float32; log_var clipped to [-30, 20] as in LDM's
        posterior."""
        mean, log_var = to_float32(self.encoder(x, training=training))
        return mean, tf.clip_by_value(log_var, -30.0, 20.0)

    def decode(self, z, training=False):
        return to_float32(self.decoder(z, training=training))

    def call(self, x, training=False):
        mean, _ = self.encode(x, training=training)
        return self.decode(mean, training=training)

    def _inputs(self, x, evaluation):
        """The step's per-example inputs: the images and the posterior's eps."""
        return {"x": x, "eps": self.normal(tf.shape(x)[0], list(self.latent_shape),
                                           _SALT_POSTERIOR, evaluation=evaluation)}

    def _terms(self, micro, training):
        x = micro["x"]
        mean, log_var = self.encode(x, training=training)
        z = mean + tf.exp(0.5 * log_var) * micro["eps"]  # reparameterisation, [b, s, s, c]
        terms = autoencoder_terms(x, self.decode(z, training=training), mean, log_var,
                                  self.config)
        return {k: self.replica_mean(v) for k, v in terms.items()}

    def _gradients(self, micro, scale):
        with tf.GradientTape() as tape:
            terms = self._terms(micro, training=True)
            loss = scale_loss(terms["loss"], scale)
        return (tape.gradient(loss, self.trainable_variables), terms), ()

    def train_step(self, data):
        x, _ = data
        self.check_images(x)
        (grads, terms), _ = self.over_micro_batches(
            self.step_function(self._gradients, "gradients"), self._inputs(x, False),
            self.loss_scale(self.optimizer))
        self.apply_update(self.optimizer, grads, self.trainable_variables)
        return terms

    def test_step(self, data):
        x, _ = data
        self.check_images(x)
        terms, _ = self.over_micro_batches(
            self.step_function(lambda m: (self._terms(m, training=False), ()), "evaluation"),
            self._inputs(x, True))
        return terms

    def reconstruct(self, images):
        return tf.clip_by_value(self(tf.convert_to_tensor(images, tf.float32)), -1.0, 1.0)

    def evaluate_stage(self, source, limit: int = 2048) -> dict:
        """Reconstruction error of up to ``limit`` images of ``source`` (from the
        posterior mean), and the spread of the latent."""
        errors, abs_errors, means, n = [], [], [], 0
        for images, _ in source.batches(256):
            images = images[:limit - n]
            mean, _ = self.encode(images)
            x_hat = tf.clip_by_value(self.decode(mean), -1.0, 1.0)
            errors.append(tf.reduce_mean(tf.square(images - x_hat)).numpy() * len(images))
            abs_errors.append(tf.reduce_mean(tf.abs(images - x_hat)).numpy() * len(images))
            means.append(mean.numpy())
            n += len(images)
            if n >= limit:
                break
        latents = np.concatenate(means)
        return {"recon_mse": float(np.sum(errors) / n), "recon_mae": float(np.sum(abs_errors) / n),
                "recon_images": n, "recon_split": source.split,
                "latent_shape": list(self.latent_shape), "latent_std": float(latents.std())}


class LatentDiffusion(GenerativeModel):
    """Stage 2: the class-conditional U-Net denoiser eps_theta(z_t, t, y) on the frozen
    autoencoder's latents (or on pixels, ``first_stage = "none"``), an EMA copy of
    it for sampling, and the samplers (DDPM ancestral, DDIM, classifier-free guidance).

    The loss is looked up once, here; the steps call it without knowing its name.
    """

    LOSS_PAIRS = [("loss", "val_loss"), ("eps_mse", "val_eps_mse")]

    def __init__(self, config, *, image_shape, global_batch_size, seed=0, autoencoder=None,
                 **kwargs):
        super().__init__(config, image_shape=image_shape,
                         global_batch_size=global_batch_size, seed=seed, **kwargs)
        self.loss_fn = LOSSES.resolve(config.loss)
        if (config.first_stage == "autoencoder") != (autoencoder is not None):
            raise ValueError("latent diffusion needs its trained autoencoder (first_stage = "
                             "'autoencoder'); pixel-space diffusion takes none")
        self.autoencoder = autoencoder.freeze() if autoencoder is not None else None
        if autoencoder is not None and autoencoder.image_shape != self.image_shape:
            raise ValueError(f"the autoencoder was trained on {autoencoder.image_shape} images, "
                             f"this run has {self.image_shape}; train a first stage for them")
        self.latent_shape = latent_shape(config, self.image_shape)
        self.schedule = Schedule.from_config(config)
        unet_args = (self.latent_shape, config.unet_widths, config.unet_blocks,
                     config.attention_side, config.attention_heads, config.num_classes,
                     unet_patch(config, self.latent_shape[0]),
                     np.sqrt(1.0 - self.schedule.alpha_bar))
        self.unet = build_unet(*unet_args)
        self.ema_unet = build_unet(*unet_args, name="ema_unet")
        self.ema_unet.trainable = False
        self.ema_unet.set_weights(self.unet.get_weights())
        # 1 / std of the autoencoder's latents; measured in on_train_start, checkpointed.
        self.latent_scale = keras.Variable(1.0, trainable=False, autocast=False,
                                           name="latent_scale")
        self.configure_sampler()

    def build_optimizers(self):
        self.optimizer = self.loss_scaled(keras.optimizers.Adam(self.config.learning_rate))
        self.optimizer.build(self.unet.trainable_variables)

    @property
    def null_label(self) -> int:
        return self.config.num_classes

    # ------------------------------------------------------------- latents
    def to_latent(self, x, noise=None):
        """x [b, H, W, C] -> z_0 [b, s, s, c]: a posterior sample (or its mean) times the scale."""
        if self.autoencoder is None:
            return x
        return self.sample_posterior(self.encoder_moments(x), noise)

    def encoder_moments(self, x):
        """x [b, H, W, C] -> the frozen encoder's (mean, log_var) concatenated: [b, s, s, 2c],
        float32."""
        return tf.concat(self.autoencoder.encode(x), axis=-1)

    def sample_posterior(self, moments, noise=None):
        """moments [b, s, s, 2c] -> z_0 = scale * (mean + exp(log_var / 2) * noise), or
        scale * mean without noise: a draw from q(z | x), scaled to unit variance."""
        mean, log_var = tf.split(moments, 2, axis=-1)
        z = mean if noise is None else mean + tf.exp(0.5 * log_var) * noise
        return z * tf.cast(self.latent_scale, z.dtype)

    def from_latent(self, z):
        """z_0 [b, s, s, c] -> images [b, H, W, C] in [-1, 1]."""
        if self.autoencoder is not None:
            z = self.autoencoder.decode(z / tf.cast(self.latent_scale, z.dtype))
        return tf.clip_by_value(z, -1.0, 1.0)

    def call(self, x, training=False):
        z = self.to_latent(x)
        t = tf.zeros([tf.shape(x)[0]], tf.int32)
        y = tf.fill([tf.shape(x)[0]], self.null_label)
        self.ema_unet([z, t, y], training=False)
        return self.unet([z, t, y], training=training)

    def training_source(self, source):
        """The encoder is frozen and its moments are a function of the image alone, so
        they are computed once per fit, not at every step (a third of a step's
        FLOPs at the quick widths): a FeatureSource of float32 [N, s, s, 2c]; the
        steps still draw a fresh posterior sample from them. Pixel space: the images."""
        if self.autoencoder is None:
            return source
        return FeatureSource.computed(source, self.encoder_moments)

    def on_train_start(self, train_source):
        """LDM's scale factor: 1 / std of the posterior means of the first training images."""
        if self.autoencoder is None:
            return
        moments = next(iter(train_source.batches(_SCALE_IMAGES)))[0]  # file order
        mean = tf.split(moments, 2, axis=-1)[0].numpy()
        self.latent_scale.assign(1.0 / max(float(mean.std()), 1e-8))

    # ------------------------------------------------------------- steps
    def check_step_input(self, data):
        """The steps take the encoder's moments (``training_source``), or images in pixel space."""
        if self.autoencoder is None:
            return self.check_images(data)
        s, _, c = self.latent_shape
        got = tuple(data.shape[1:])
        if None not in got and got != (s, s, 2 * c):
            raise ValueError(f"the denoiser's steps take the frozen encoder's moments "
                             f"[b, {s}, {s}, {2 * c}] (what training_source makes of the "
                             f"images), got {got}; train it through training.Trainer")

    def _noisy_batch(self, data, labels, evaluation):
        """(z_t, t, eps, y) of DDPM's training step: z_0 ~ q(z | x) from the moments,
        t ~ U{0..T-1}, eps ~ N(0, I), z_t = q_sample(z_0, t, eps); labels replaced by
        the null label with probability label_dropout (classifier-free guidance's
        joint training)."""
        b = tf.shape(data)[0]
        shape = list(self.latent_shape)
        if self.autoencoder is None:
            z0 = data
        else:
            z0 = self.sample_posterior(data, self.normal(b, shape, _SALT_POSTERIOR,
                                                         evaluation=evaluation))
        t = self.uniform(b, [], _SALT_TIME, evaluation=evaluation, minval=0,
                         maxval=self.schedule.timesteps, dtype=tf.int32)
        eps = self.normal(b, shape, _SALT_EPS, evaluation=evaluation)
        drop = self.uniform(b, [], _SALT_DROP, evaluation=evaluation) < self.config.label_dropout
        y = tf.where(drop, tf.fill([b], self.null_label), tf.cast(labels, tf.int32))
        return self.schedule.q_sample(z0, t, eps), t, eps, y

    def _terms(self, eps, eps_hat):
        eps_hat = to_float32(eps_hat)
        return {"loss": self.replica_mean(self.loss_fn(eps, eps_hat, self.config)),
                "eps_mse": self.replica_mean(mse(eps, eps_hat, self.config))}

    def _gradients(self, micro, scale):
        z_t, t, eps, y = micro
        with tf.GradientTape() as tape:
            terms = self._terms(eps, self.unet([z_t, t, y], training=True))
            loss = scale_loss(terms["loss"], scale)
        return (tape.gradient(loss, self.unet.trainable_variables), terms), ()

    def _evaluation(self, micro):
        z_t, t, eps, y = micro
        return self._terms(eps, self.unet([z_t, t, y], training=False)), ()

    def train_step(self, data):
        x, labels = data  # x: moments [b, s, s, 2c] (or images in pixel space)
        self.check_step_input(x)
        (grads, terms), _ = self.over_micro_batches(
            self.step_function(self._gradients, "gradients"),
            self._noisy_batch(x, labels, evaluation=False), self.loss_scale(self.optimizer))
        self.apply_update(self.optimizer, grads, self.unet.trainable_variables)
        return terms

    def after_train_step(self):
        """EMA of the denoiser's weights (cross-replica, once per step), with the
        warm-up decay min(ema_decay, (1 + n) / (10 + n)) so short runs average
        their recent weights rather than their initialisation."""
        n = tf.cast(self.step_counter, tf.float32)
        decay = tf.minimum(self.config.ema_decay, (1.0 + n) / (10.0 + n))
        for ema, weight in zip(self.ema_unet.weights, self.unet.weights):
            w = tf.convert_to_tensor(weight)
            ema.assign(w + decay * (tf.convert_to_tensor(ema) - w))

    def test_step(self, data):
        x, labels = data
        self.check_step_input(x)
        terms, _ = self.over_micro_batches(self.step_function(self._evaluation, "evaluation"),
                                           self._noisy_batch(x, labels, evaluation=True))
        return terms

    # ------------------------------------------------------------- sampler
    def shipped_parts(self) -> dict:
        # The sampler reads the EMA U-Net (guided_eps), the frozen autoencoder and the
        # latent scale; the counters (the RNG state) are a few bytes and keep a loaded
        # run's state whole. The raw U-Net, as large as its EMA, is left out of weights/.
        parts = {"ema_unet": self.ema_unet, "latent_scale": self.latent_scale,
                 "step_counter": self.step_counter, "eval_counter": self.eval_counter}
        if self.autoencoder is not None:
            parts["autoencoder"] = self.autoencoder
        return parts

    def after_shipped_restore(self) -> None:
        # A shipped run has no raw U-Net: start it from the EMA (what a fine-tune would).
        self.unet.set_weights(self.ema_unet.get_weights())

    def configure_sampler(self):
        """(Re)read the sampler settings from the config (they may change after training)."""
        self.config.validate()
        # One graph for every batch size: traced on the first call's shape, a second shape
        # would retrace it relaxed, and the two graphs' kernels round differently, so the
        # same seed would draw other images after other calls (a grid before the scored
        # samples). z_t float32 [b, s, s, c], t and labels int32 [b].
        self._eps_fn = tf.function(self.guided_eps, input_signature=[
            tf.TensorSpec([None, *self.latent_shape], tf.float32),
            tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32)])

    def guided_eps(self, z_t, t, labels):
        """The EMA denoiser's noise estimate with classifier-free guidance: [b, s, s, c].
        Scale 1 evaluates only the conditional model."""
        scale = self.config.guidance_scale
        eps_cond = to_float32(self.ema_unet([z_t, t, labels], training=False))
        if scale == 1.0:
            return eps_cond
        eps_uncond = to_float32(self.ema_unet(
            [z_t, t, tf.fill(tf.shape(labels), self.null_label)], training=False))
        return guided_eps(eps_cond, eps_uncond, scale)

    def sample_latents(self, n, seed):
        """z_T ~ N(0, I) [n, s, s, c], labels ~ U{0..num_classes-1} [n], and the seed
        of the sampler's own noise (DDPM, DDIM with eta > 0)."""
        key = tf.constant([self.seed, seed], tf.int64)
        noise = tf.random.stateless_normal([n, *self.latent_shape], key)
        labels = tf.random.stateless_uniform([n], key + [0, 1], minval=0,
                                             maxval=self.config.num_classes, dtype=tf.int32)
        return {"noise": noise, "labels": labels, "seed": int(seed)}

    def generate(self, latents):
        cfg = self.config
        labels = latents["labels"]
        shape = tf.shape(latents["noise"])

        def eps_fn(z_t, t):
            return self._eps_fn(z_t, t, labels)

        def noise_fn(i):
            return tf.random.stateless_normal(shape, tf.constant([latents["seed"], 7919 + i],
                                                                 tf.int64))

        # Pixel-space x_0 lives in [-1, 1]: clip its estimates there (DDPM's sampler);
        # latents are unbounded (LDM does not clip them).
        clip = 1.0 if self.autoencoder is None else None
        if cfg.sampler == "ddpm":
            z0 = ddpm_sample(eps_fn, self.schedule, latents["noise"], noise_fn, clip_x0=clip)
        else:
            z0 = ddim_sample(eps_fn, self.schedule, latents["noise"], noise_fn,
                             cfg.sampling_steps, cfg.ddim_eta, clip_x0=clip)
        return self.from_latent(z0)
