"""GAN family (thesis 004, "StyleGAN2"): Wasserstein-GP, hinge, LSGAN and
non-saturating objectives, R1, EMA generator, style mixing, DiffAugment and ADA."""
from models import Family, single_stage
from models.gan.config import BATCH_CAPS, PRESETS, TRAINING, GANConfig
from models.gan.losses import LOSSES
from models.gan.model import GANModel


def build(config: GANConfig, image_shape, global_batch_size, seed=0, inputs=None) -> GANModel:
    return GANModel(config, image_shape=image_shape, global_batch_size=global_batch_size,
                    seed=seed)


FAMILY = Family(name="gan", model_name="StyleGAN2", config_cls=GANConfig, losses=LOSSES,
                presets=PRESETS,
                stages=single_stage(build), sampler_fields=("truncation_psi",),
                training=TRAINING, batch_caps=BATCH_CAPS)
