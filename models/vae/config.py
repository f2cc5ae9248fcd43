"""Configuration of the VAE family (thesis 004, section A)."""
from __future__ import annotations

import dataclasses

from models.config import FamilyConfig, StageTraining


@dataclasses.dataclass
class VAEConfig(FamilyConfig):
    """Defaults are the thesis's Table 3.1 baseline (ELBO, batch = latent = 128).

    widths: channels of the encoder's stride-2 convolutions (the decoder mirrors
        them); 32x32 input -> 4x4 after three of them.
    latent_size: dimension of z (128 and 2048 in the thesis).
    loss: name in ``models.vae.losses.LOSSES``.
    kl_weight: beta in front of the KL term of the ELBO (1 = Kingma & Welling).
    mi_alpha, mi_lambda: InfoVAE's alpha and lambda (Zhao et al. 2019, eq. 6).
    wae_lambda: WAE-MMD's lambda (Tolstikhin et al. 2018, Algorithm 2).
    latent_scale: sigma_z of the prior N(0, sigma_z^2 I), sets the kernels' scale.
    """
    batch_size: int = 128
    latent_size: int = 128
    loss: str = "elbo"
    widths: tuple = (32, 64, 128)
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    kl_weight: float = 1.0
    mi_alpha: float = 0.5
    mi_lambda: float = 1000.0
    wae_lambda: float = 100.0
    latent_scale: float = 1.0


#: Per-profile overrides of the defaults above (keras-hub's presets, one per
#: profile of ``experiments/profiles.py``). A profile missing here is an error.
PRESETS = {
    "smoke": {"widths": (8, 16)},
    # quick: narrower networks trained longer beat wider ones at a CPU budget
    # (see docs/recipes.md, "Tuning history of the presets").
    "quick": {"widths": (16, 32, 64)},
    "paper": {"widths": (64, 128, 256)},
}
#: colab: the paper preset (the thesis's networks; experiments/profiles.py)
PRESETS["colab"] = dict(PRESETS["paper"])

#: A stage's training length where the profile's own does not fit the recipe.
#: quick: 3,000 steps of 128, about 6 minutes on 2 cores.
TRAINING = {
    "quick": {"model": StageTraining(epochs=10, steps_per_epoch=300)},
}

#: The family's cap on the batch per profile (none).
BATCH_CAPS = {}
