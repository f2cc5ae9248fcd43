"""Configuration of thesis 003's face GAN (appendices 2-4), in its two modes.

``FacesConfig``'s defaults are the ``faithful`` mode: the appendix's training as written.
``MODES["fixed"]`` holds the overrides of the ``fixed`` mode (the thesis's own advice:
data in [-1, 1], the non-saturating loss, Adam, a real batch, EMA of G, optional R1/ADA).
``PRESETS[profile]`` scales the networks per profile, ``TRAINING[profile]`` sets the
run's length and ``BATCH_CAPS[profile]`` caps the batch.
"""
from __future__ import annotations

import dataclasses

from common.optimizers import check_optimizer_name
from models.config import FamilyConfig, StageTraining


@dataclasses.dataclass
class FacesConfig(FamilyConfig):
    """The face GAN's settings (defaults: the ``faithful`` mode, appendices 2-4).

    batch_size, latent_size: 2 and 32 in the listing.
    loss: the mode, which names its objective in ``models.faces.losses.LOSSES``:
        "faithful" (the listing's binary cross-entropy, labels generated = 1, real = 0,
        plus label noise, G towards label 0) or "fixed" (non-saturating, Goodfellow 2014).
    optimizer: a name in ``common.optimizers.OPTIMIZERS`` for both players ("rmsprop",
        "adam", "extra_adam", "past_extra_adam", ...).
    learning_rate, clipvalue, lr_decay: the listing's RMSprop(lr=1e-4, clipvalue=1.0,
        decay=1e-8); Keras 2's ``decay`` is lr / (1 + decay * iterations). clipvalue 0 = off.
    beta_1, beta_2, rho, epsilon: Adam's betas, RMSprop's rho, both's epsilon (Keras defaults).
    image_range: "unit" (the listing: images / 255 in [0, 1] against a tanh G) or
        "symmetric" ([-1, 1], matching tanh).
    label_noise: the listing's 0.05 * U[0, 1) added to every discriminator label.
    leaky_slope: LeakyReLU's slope: Keras' default 0.3 ran in the listing (the text says 0.01).
    dropout: before D's last layer (0.4 in the listing).
    channel_divisor: every width of appendices 2 and 3 divided by this (1 = the thesis's
        networks; CPU profiles use 4-16).
    ema_kimg, ema_rampup: EMA of G's weights (StyleGAN2-ADA's half-life rule); 0 = off.
    r1_gamma: R1 penalty on real images (Mescheder et al. 2018), 0 = off, every step.
    ada, ada_target, ada_interval, ada_kimg: adaptive discriminator augmentation (Karras et
        al. 2020b), the GAN family's implementation.
    control_grid: the control latents form a control_grid x control_grid grid (2 in the
        listing's code, 4 in its text); control_scale: they are N(0, 1) * scale (the listing
        divides by 2).
    control_every: steps between renders of the control grid (the listing: every step).
    """
    batch_size: int = 2
    latent_size: int = 32
    loss: str = "faithful"
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-4
    clipvalue: float = 1.0
    lr_decay: float = 1e-8
    beta_1: float = 0.9
    beta_2: float = 0.999
    rho: float = 0.9
    epsilon: float = 1e-7
    image_range: str = "unit"
    label_noise: float = 0.05
    leaky_slope: float = 0.3
    dropout: float = 0.4
    channel_divisor: int = 1
    ema_kimg: float = 0.0
    ema_rampup: float = 0.05
    r1_gamma: float = 0.0
    ada: bool = False
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float = 100.0
    control_grid: int = 4
    control_scale: float = 0.5
    control_every: int = 1

    def validate(self) -> None:
        """The options' own checks (the mode's name is the loss registry's)."""
        check_optimizer_name(self.optimizer, "face GAN optimizer")
        if self.image_range not in ("unit", "symmetric"):
            raise ValueError(f"image_range must be 'unit' or 'symmetric', got {self.image_range!r}")
        if int(self.channel_divisor) < 1 or 128 % int(self.channel_divisor):
            raise ValueError(f"channel_divisor must divide 128, got {self.channel_divisor}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


#: The two modes: overrides of the defaults (faithful = the defaults themselves).
MODES = {
    "faithful": {},
    "fixed": dict(loss="fixed", optimizer="adam", learning_rate=2e-4, clipvalue=0.0,
                  lr_decay=0.0, beta_1=0.5, beta_2=0.999, epsilon=1e-8, image_range="symmetric",
                  label_noise=0.0, ema_kimg=10.0),
}

#: Per-profile overrides of the defaults (family fields only).
PRESETS = {
    "smoke": {"channel_divisor": 16, "control_grid": 2, "control_every": 2},
    "quick": {"channel_divisor": 8, "control_every": 20},
    "paper": {"control_every": 50},
    "colab": {"control_every": 50},  # the paper preset
}

#: The run's length where the profile's own does not fit the recipe.
#: paper: the listing's 15,000 iterations (15 x 1,000) at the thesis's full widths.
TRAINING = {
    "smoke": {"model": StageTraining(epochs=2, steps_per_epoch=2)},
    "quick": {"model": StageTraining(epochs=5, steps_per_epoch=60)},
    "paper": {"model": StageTraining(epochs=15, steps_per_epoch=1000, checkpoint_every=250)},
    "colab": {"model": StageTraining(epochs=15, steps_per_epoch=1000, checkpoint_every=250)},
}

#: The family's cap on the batch per profile, applied after the profile's.
#: quick: 8, since the listing's 5x5 convolutions at 64x64 made a fixed-mode step of 64
#: take ~12 s on 2 cores (see docs/recipes.md); the faithful mode's 2 is unchanged.
BATCH_CAPS = {"quick": 8}


def mode_overrides(mode: str) -> dict:
    """The overrides of ``mode``; ValueError naming the known modes otherwise."""
    if mode not in MODES:
        raise ValueError(f"unknown face GAN mode {mode!r}; known modes: {', '.join(sorted(MODES))}")
    return dict(MODES[mode])


