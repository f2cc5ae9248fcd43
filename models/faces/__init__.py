"""Thesis 003's face GAN (appendices 2-4): the listing's networks, trained ``faithful`` (as
written) or ``fixed`` (as the thesis advises), with any optimiser of ``common.optimizers``."""
from models import Family, single_stage
from models.faces.config import BATCH_CAPS, PRESETS, TRAINING, FacesConfig
from models.faces.losses import LOSSES
from models.faces.model import FaceGANModel


def build(config: FacesConfig, image_shape, global_batch_size, seed=0, inputs=None):
    return FaceGANModel(config, image_shape=image_shape, global_batch_size=global_batch_size,
                        seed=seed)


FAMILY = Family(name="faces", model_name="Face GAN (thesis 003)", config_cls=FacesConfig,
                losses=LOSSES, presets=PRESETS, stages=single_stage(build),
                training=TRAINING, batch_caps=BATCH_CAPS)
