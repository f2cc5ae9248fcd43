"""The VAE's training model: owns train_step/test_step and the sampler.

Precision, XLA and accumulation (``models.base``): the encoder's moments and the
decoder's images are cast to float32 before the losses read them; the noise (the
posterior's eps, the prior's samples) is drawn for the replica's whole batch before the
compiled units and cut with it. Every term of the ELBO is per example, so k
micro-batches give exactly the whole batch's gradient. The MMD of InfoVAE and WAE spans
the batch: with accumulation (or XLA) it is the MMD of the *whole global batch*,
exactly, by gathering: a forward pass of the encoder alone gives every latent of the
batch (all micro-batches, all-gathered over the replicas, constants), then each
micro-batch's step computes the MMD of those latents with its own rows put back live
(``losses.global_mmd``), so its gradient is the whole-batch MMD's gradient through that
micro-batch's latents and the k micro-batches' sum is the whole batch's gradient (at
the cost of one more encoder forward pass). Without either, the step is the one
it always was (one pass, the gather differentiated).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from models.base import GenerativeModel
from models.shared.precision import scale_loss, to_float32
from models.vae.losses import LOSSES, BatchLatents, VAEOutput, spans_batch
from models.vae.networks import build_decoder, build_encoder

# Salts that keep the step's independent noise streams apart.
_SALT_POSTERIOR = 1
_SALT_PRIOR = 2


class VAE(GenerativeModel):
    """Encoder + decoder trained with one objective from ``LOSSES``.

    The loss is looked up once, here; the steps call it without knowing its name.
    """

    def __init__(self, config, *, image_shape, global_batch_size, seed=0, **kwargs):
        super().__init__(config, image_shape=image_shape,
                         global_batch_size=global_batch_size, seed=seed, **kwargs)
        self.loss_fn = LOSSES.resolve(config.loss)
        self.deterministic_encoder = getattr(self.loss_fn, "deterministic_encoder", False)
        self.encoder = build_encoder(self.image_shape, config.latent_size, config.widths,
                                     stochastic=not self.deterministic_encoder)
        self.decoder = build_decoder(self.image_shape, config.latent_size, config.widths)

    def build_optimizers(self):
        cfg = self.config
        self.optimizer = self.loss_scaled(keras.optimizers.Adam(
            cfg.learning_rate, beta_1=cfg.beta_1, beta_2=cfg.beta_2))
        self.optimizer.build(self.trainable_variables)

    def encode(self, x, training=False):
        """(mu, log_var) [b, z] each, float32; log_var = 0 for a deterministic encoder
        (unused)."""
        if self.deterministic_encoder:
            mu = to_float32(self.encoder(x, training=training))
            return mu, tf.zeros_like(mu)
        return to_float32(self.encoder(x, training=training))

    def call(self, x, training=False):
        mu, _ = self.encode(x, training=training)
        return to_float32(self.decoder(mu, training=training))

    # ------------------------------------------------------------- steps
    def step_noise(self, batch, evaluation=False) -> dict:
        """The step's noise for ``batch`` examples: the posterior's eps (a stochastic
        encoder) and the prior's samples, [batch, z] each."""
        size = [self.config.latent_size]
        noise = {"prior": self.config.latent_scale * self.normal(
            batch, size, _SALT_PRIOR, evaluation=evaluation)}
        if not self.deterministic_encoder:
            noise["eps"] = self.normal(batch, size, _SALT_POSTERIOR, evaluation=evaluation)
        return noise

    def reparameterise(self, mu, log_var, noise):
        """z = sigma * eps + mu (Kingma & Welling 2014, eq. 10; thesis eq. 2.6)."""
        if self.deterministic_encoder:
            return mu
        return mu + tf.exp(0.5 * log_var) * noise["eps"]

    def forward(self, x, noise, training, batch=None, rows=None) -> VAEOutput:
        mu, log_var = self.encode(x, training=training)
        z = self.reparameterise(mu, log_var, noise)
        return VAEOutput(x=x, x_hat=to_float32(self.decoder(z, training=training)), mu=mu,
                         log_var=log_var, z=z, z_prior=noise["prior"], batch=batch, rows=rows)

    def _latents(self, micro, training):
        """The latents z of a micro-batch (forward pass of the encoder alone)."""
        mu, log_var = self.encode(micro["x"], training=training)
        return (), self.reparameterise(mu, log_var, micro["noise"])

    def _terms(self, micro, batch, training):
        """The objective's terms on a micro-batch; ``batch``: (z, z_prior) of the whole
        global batch, or None (a plain step)."""
        latents = None if batch is None else BatchLatents(*batch, parts=self.accumulate)
        out = self.forward(micro["x"], micro["noise"], training, latents, micro.get("rows"))
        return self.loss_fn(out, self, self.config)

    def _gradients(self, micro, batch, scale):
        with tf.GradientTape() as tape:
            terms = self._terms(micro, batch, training=True)
            loss = scale_loss(terms["loss"], scale)
        return (tape.gradient(loss, self.trainable_variables), terms), ()

    def _evaluation(self, micro, batch):
        return self._terms(micro, batch, training=False), ()

    def _step_inputs(self, x, training, evaluation):
        """(per-example inputs, the whole batch's latents or None) of a step."""
        b = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
        inputs = {"x": x, "noise": self.step_noise(b, evaluation=evaluation)}
        if not (spans_batch(self.loss_fn) and (self.accumulate > 1 or self.xla_steps)):
            return inputs, None
        _, z = self.over_micro_batches(
            self.step_function(lambda m: self._latents(m, training), f"latents_{training}"),
            inputs)
        inputs["rows"] = self.replica_rows(b)
        return inputs, (self.gather(z), self.gather(inputs["noise"]["prior"]))

    def train_step(self, data):
        x, _ = data
        self.check_images(x)
        inputs, batch = self._step_inputs(x, training=True, evaluation=False)
        (grads, terms), _ = self.over_micro_batches(
            self.step_function(self._gradients, "gradients"), inputs, batch,
            self.loss_scale(self.optimizer))
        self.apply_update(self.optimizer, grads, self.trainable_variables)
        return terms

    def test_step(self, data):
        x, _ = data
        self.check_images(x)
        inputs, batch = self._step_inputs(x, training=False, evaluation=True)
        terms, _ = self.over_micro_batches(self.step_function(self._evaluation, "evaluation"),
                                           inputs, batch)
        return terms

    # ------------------------------------------------------------- sampler
    def sample_latents(self, n, seed):
        """z ~ N(0, sigma_z^2 I): [n, latent_size]."""
        return self.config.latent_scale * tf.random.stateless_normal(
            [n, self.config.latent_size], [self.seed, seed])

    def generate(self, latents):
        return to_float32(self.decoder(latents, training=False))
