"""Diffusion family (thesis 004, "Stable Diffusion"): latent diffusion with a
KL-regularised autoencoder (stage 1, shared by the loss rows of one latent size)
and a class-conditional U-Net denoiser (stage 2) trained with MSE, MAE or Huber
on the predicted noise; DDPM and DDIM samplers with classifier-free guidance."""
from models import Family, Stage
from models.diffusion.config import BATCH_CAPS, PRESETS, TRAINING, DiffusionConfig
from models.diffusion.losses import LOSSES
from models.diffusion.model import Autoencoder, LatentDiffusion

#: The config fields that define the autoencoder: rows agreeing on them share it.
AUTOENCODER_FIELDS = ("latent_size", "latent_side", "ae_widths", "ae_batch_size",
                      "ae_learning_rate", "ae_kl_weight")
#: The config fields only the sampler reads: changing them re-samples a finished run.
SAMPLER_FIELDS = ("sampler", "sampling_steps", "ddim_eta", "guidance_scale")


def build_autoencoder(config: DiffusionConfig, image_shape, global_batch_size, seed=0,
                      inputs=None) -> Autoencoder:
    return Autoencoder(config, image_shape=image_shape, global_batch_size=global_batch_size,
                       seed=seed)


def build_denoiser(config: DiffusionConfig, image_shape, global_batch_size, seed=0,
                   inputs=None) -> LatentDiffusion:
    return LatentDiffusion(config, image_shape=image_shape, global_batch_size=global_batch_size,
                           seed=seed, autoencoder=(inputs or {}).get("autoencoder"))


FAMILY = Family(
    name="diffusion", model_name="Stable Diffusion", config_cls=DiffusionConfig, losses=LOSSES,
    presets=PRESETS,
    stages=(Stage("autoencoder", build_autoencoder, shared_fields=AUTOENCODER_FIELDS,
                  batch_field="ae_batch_size",
                  needed=lambda config: config.first_stage == "autoencoder"),
            Stage("denoiser", build_denoiser)),
    sampler_fields=SAMPLER_FIELDS, training=TRAINING, batch_caps=BATCH_CAPS)
