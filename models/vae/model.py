"""The VAE's training model: owns train_step/test_step and the sampler."""
from __future__ import annotations

import keras
import tensorflow as tf

from models.base import GenerativeModel
from models.vae.losses import LOSSES, VAEOutput
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
        if config.loss not in LOSSES:
            raise ValueError(f"unknown VAE loss {config.loss!r}; known: {', '.join(sorted(LOSSES))}")
        self.loss_fn = LOSSES[config.loss]
        self.deterministic_encoder = getattr(self.loss_fn, "deterministic_encoder", False)
        self.encoder = build_encoder(self.image_shape, config.latent_size, config.widths,
                                     stochastic=not self.deterministic_encoder)
        self.decoder = build_decoder(self.image_shape, config.latent_size, config.widths)

    def build_optimizers(self):
        cfg = self.config
        self.optimizer = keras.optimizers.Adam(cfg.learning_rate, beta_1=cfg.beta_1,
                                               beta_2=cfg.beta_2)
        self.optimizer.build(self.trainable_variables)

    def encode(self, x, training=False):
        """(mu, log_var) [b, z] each; log_var = 0 for a deterministic encoder (unused)."""
        if self.deterministic_encoder:
            mu = self.encoder(x, training=training)
            return mu, tf.zeros_like(mu)
        return self.encoder(x, training=training)

    def call(self, x, training=False):
        mu, _ = self.encode(x, training=training)
        return self.decoder(mu, training=training)

    # ------------------------------------------------------------- steps
    def reparameterise(self, mu, log_var, evaluation):
        """z = sigma * eps + mu (Kingma & Welling 2014, eq. 10; thesis eq. 2.6)."""
        if self.deterministic_encoder:
            return mu
        eps = self.normal(tf.shape(mu)[0], [self.config.latent_size], _SALT_POSTERIOR,
                          evaluation=evaluation)
        return mu + tf.exp(0.5 * log_var) * eps

    def forward(self, x, training, evaluation=False) -> VAEOutput:
        mu, log_var = self.encode(x, training=training)
        z = self.reparameterise(mu, log_var, evaluation)
        z_prior = self.config.latent_scale * self.normal(
            tf.shape(mu)[0], [self.config.latent_size], _SALT_PRIOR, evaluation=evaluation)
        return VAEOutput(x=x, x_hat=self.decoder(z, training=training), mu=mu,
                         log_var=log_var, z=z, z_prior=z_prior)

    def train_step(self, data):
        x, _ = data
        self.check_images(x)
        with tf.GradientTape() as tape:
            terms = self.loss_fn(self.forward(x, training=True), self, self.config)
        grads = tape.gradient(terms["loss"], self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        return terms

    def test_step(self, data):
        x, _ = data
        self.check_images(x)
        return self.loss_fn(self.forward(x, training=False, evaluation=True), self, self.config)

    # ------------------------------------------------------------- sampler
    def sample_latents(self, n, seed):
        """z ~ N(0, sigma_z^2 I): [n, latent_size]."""
        return self.config.latent_scale * tf.random.stateless_normal(
            [n, self.config.latent_size], [self.seed, seed])

    def generate(self, latents):
        return self.decoder(latents, training=False)
