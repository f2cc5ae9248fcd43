"""Configuration of the diffusion family (thesis 004, section A: "Stable Diffusion")."""
from __future__ import annotations

import dataclasses

from models.config import FamilyConfig, StageTraining

SAMPLERS = ("ddim", "ddpm")
SCHEDULES = ("linear", "cosine")
FIRST_STAGES = ("autoencoder", "none")


@dataclasses.dataclass
class DiffusionConfig(FamilyConfig):
    """Latent diffusion (Rombach et al. 2022): a KL-regularised autoencoder (stage 1)
    and a class-conditional U-Net denoiser on its latents (stage 2), trained with
    DDPM's epsilon prediction (Ho et al. 2020; thesis eq. 2.12).

    Defaults are the thesis's Table 3.1 baseline (MSE, batch = latent = 128) with
    CPU-sized widths; ``PRESETS`` below scale them per profile.

    batch_size: the denoiser's global batch (the thesis's: 128, or 2048 at latent 2048).
    latent_size: the number of elements of the autoencoder's latent z, of shape
        (s, s, c) with s the largest power-of-two side <= H / 4 such that
        c = latent_size / s^2 is a power of two from 4 to 64 (``latent_shape``; LDM's
        autoencoders have 3 to 64 latent channels). For 32x32
        images: 128 -> 4x4x8 (8x downsampling), 2048 -> 8x8x32 (4x); for 64x64:
        128 -> 4x4x8, 2048 -> 8x8x32 as well. ``latent_side`` > 0 forces s.
    loss: name in ``models.diffusion.losses.LOSSES`` (mse, mae, huber), applied to
        the predicted noise.
    first_stage: "autoencoder" (latent diffusion) or "none" (pixel-space diffusion,
        for comparison; the row's latent size is then not used).

    Autoencoder (stage 1): ``ae_widths`` are the channels of its levels (one
    residual block each, a stride-2 convolution between levels; the first
    len = log2(H / s) + 1 widths are used), ``ae_batch_size`` its global batch,
    ``ae_learning_rate`` Adam's rate, ``ae_kl_weight`` the weight of KL(q(z|x) || N(0, I))
    per latent element beside the per-pixel reconstruction error (Rombach et al.
    use a tiny weight, 1e-6, so the latent stays nearly deterministic and the KL
    only stops its scale from drifting).

    Denoiser (stage 2): ``unet_widths`` per resolution level (``unet_blocks``
    residual blocks each), self-attention at levels whose side is <=
    ``attention_side``; ``unet_input_side`` (0 = off) folds a latent whose side is
    larger into non-overlapping p x p patches first, p = side / unet_input_side
    (space-to-depth, DiT's "patchify" with patch size p, Peebles & Xie 2023), so
    an 8x8x32 latent enters the U-Net as 4x4x128 and its levels cost what 4x4x8's
    do; ``num_classes`` labels (set from the dataset by the runner) plus a null label used with probability ``label_dropout`` (classifier-free
    guidance, Ho & Salimans 2022); ``ema_decay`` of the weights used for sampling
    (with the usual warm-up min(decay, (1 + n) / (10 + n))).

    Schedule: ``schedule`` "linear" (DDPM / thesis eq. 2.12: beta from
    ``beta_start`` to ``beta_end`` over ``timesteps`` = 1000) or "cosine" (Nichol &
    Dhariwal 2021). ``huber_delta``: the Huber loss's delta on the noise (unit variance).

    Sampler (metrics and samples.png): ``sampler`` "ddim" (Song et al. 2021; with
    ``ddim_eta`` and ``sampling_steps``) or "ddpm" (ancestral, every step), and the
    classifier-free ``guidance_scale`` (1 = the conditional model, 0 = unconditional).
    DDPM always walks all ``timesteps``; ``sampling_steps`` is DDIM's.
    """
    batch_size: int = 128
    latent_size: int = 128
    loss: str = "mse"
    first_stage: str = "autoencoder"
    latent_side: int = 0
    # stage 1: autoencoder
    ae_widths: tuple = (32, 64, 128, 128)
    ae_batch_size: int = 64
    ae_learning_rate: float = 1e-3
    ae_kl_weight: float = 1e-6
    # stage 2: denoiser
    unet_widths: tuple = (64, 128)
    unet_blocks: int = 1
    unet_input_side: int = 0
    attention_side: int = 8
    attention_heads: int = 4
    num_classes: int = 100
    label_dropout: float = 0.1
    learning_rate: float = 2e-4
    ema_decay: float = 0.999
    # forward process
    schedule: str = "linear"
    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    huber_delta: float = 1.0
    # sampler
    sampler: str = "ddim"
    sampling_steps: int = 50
    ddim_eta: float = 0.0
    guidance_scale: float = 1.0

    def validate(self) -> None:
        """One-line errors for options that cannot work, before anything trains."""
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown diffusion sampler {self.sampler!r}; choose one of "
                             f"{', '.join(SAMPLERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown noise schedule {self.schedule!r}; choose one of "
                             f"{', '.join(SCHEDULES)}")
        if self.first_stage not in FIRST_STAGES:
            raise ValueError(f"unknown first_stage {self.first_stage!r}; choose one of "
                             f"{', '.join(FIRST_STAGES)}")
        if not self.guidance_scale >= 0:
            raise ValueError(f"guidance_scale must be >= 0 (1 = conditional model, "
                             f"0 = unconditional), got {self.guidance_scale}")
        if not 0 <= self.label_dropout < 1:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.unet_input_side < 0 or self.unet_input_side & (self.unet_input_side - 1):
            raise ValueError(f"unet_input_side must be 0 (off) or a power of two, got "
                             f"{self.unet_input_side}")
        if self.timesteps < 2:
            raise ValueError(f"timesteps must be at least 2, got {self.timesteps}")
        if not 1 <= self.sampling_steps <= self.timesteps:
            raise ValueError(f"sampling_steps must be in 1..timesteps ({self.timesteps}), "
                             f"got {self.sampling_steps}")
        if not 0 <= self.ddim_eta <= 1:
            raise ValueError(f"ddim_eta must be in [0, 1], got {self.ddim_eta}")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, "
                             f"{self.beta_end}")
        if self.huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0, got {self.huber_delta}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")


def unet_patch(config, latent_side: int) -> int:
    """The denoiser's patch size p (1 = none): latent_side / unet_input_side when larger."""
    if not config.unet_input_side or latent_side <= config.unet_input_side:
        return 1
    return latent_side // config.unet_input_side


def latent_shape(config: DiffusionConfig, image_shape) -> tuple:
    """(s, s, c) of the autoencoder's latent for ``image_shape``; see the config docstring."""
    height, width, channels = image_shape
    if config.first_stage == "none":
        return (height, width, channels)
    if height != width or height & (height - 1):
        raise ValueError(f"latent diffusion needs square power-of-two images, got "
                         f"{height}x{width}")
    sides = [config.latent_side] if config.latent_side else \
        [s for s in (2 ** k for k in range(10, 0, -1)) if s <= height // 4]
    for side in sides:
        if side < 1 or height % side:
            continue
        c, rest = divmod(config.latent_size, side * side)
        if rest or c < 1:
            continue
        if config.latent_side or (4 <= c <= 64 and c & (c - 1) == 0):
            return (side, side, c)
    raise ValueError(f"latent size {config.latent_size} does not map onto {height}x{width} "
                     f"images: it must be s*s*c with s a power of two <= {height // 4} and "
                     f"c a power of two from 4 to 64 (e.g. 128 = 4x4x8, 2048 = 8x8x32); "
                     f"choose such a latent size or set latent_side")


#: Per-profile overrides (one per profile of ``experiments/profiles.py``).
#: quick: one residual block per U-Net level, ``unet_input_side`` 4 (the 2048 rows'
#: 8x8x32 latent enters the U-Net as 2x2 patches, a 4x4x128 input: 4x faster steps) and
#: classifier-free guidance 2 (most of the sweep's gain in fd_eval for a small loss of
#: recall, chosen on the row it is reported for). The measurements and the patched
#: U-Net's fixes (its input skip and ``eps_skip``): docs/recipes.md, "Tuning history of
#: the presets".
PRESETS = {
    "smoke": {"ae_widths": (8, 8, 16, 16), "ae_batch_size": 8, "unet_widths": (16, 16),
              "attention_heads": 2, "sampling_steps": 4},
    "quick": {"ae_widths": (16, 32, 64, 128), "ae_batch_size": 64,
              "ae_learning_rate": 1e-3, "unet_widths": (64, 128), "unet_blocks": 1,
              "unet_input_side": 4, "learning_rate": 1e-3, "ema_decay": 0.999,
              "sampling_steps": 50, "guidance_scale": 2.0},
    "paper": {"ae_widths": (64, 128, 256, 256), "ae_batch_size": 64, "unet_widths": (128, 256, 256),
              "unet_blocks": 2, "attention_side": 16, "learning_rate": 1e-4,
              "ema_decay": 0.9999, "sampling_steps": 100},
}
#: colab: the paper preset (the thesis's networks; experiments/profiles.py)
PRESETS["colab"] = dict(PRESETS["paper"])

#: Each stage's training length where the profile's own does not fit the recipe.
#: quick: 1,000 autoencoder steps of 64 and 1,600 denoiser steps of 128.
TRAINING = {
    "quick": {"autoencoder": StageTraining(epochs=5, steps_per_epoch=200),
              "denoiser": StageTraining(epochs=5, steps_per_epoch=320)},
}

#: The family's cap on the batch per profile (none).
BATCH_CAPS = {}
