"""VAE family (thesis 004): ELBO, InfoVAE (MI) and WAE-MMD objectives."""
from models import Family, single_stage
from models.vae.config import BATCH_CAPS, PRESETS, TRAINING, VAEConfig
from models.vae.losses import LOSSES
from models.vae.model import VAE


def build(config: VAEConfig, image_shape, global_batch_size, seed=0, inputs=None) -> VAE:
    return VAE(config, image_shape=image_shape, global_batch_size=global_batch_size, seed=seed)


FAMILY = Family(name="vae", model_name="VAE", config_cls=VAEConfig, losses=LOSSES, presets=PRESETS,
                stages=single_stage(build), training=TRAINING, batch_caps=BATCH_CAPS)
