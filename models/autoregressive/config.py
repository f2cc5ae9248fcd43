"""Configuration of the autoregressive family (thesis 004, section A: "DALL-E")."""
from __future__ import annotations

import dataclasses

from models.config import FamilyConfig, StageTraining

#: A top_k at least this large keeps every code (no truncation).
NO_TOP_K = 1 << 16


@dataclasses.dataclass
class AutoregressiveConfig(FamilyConfig):
    """DALL-E's recipe (Ramesh et al. 2021) at CPU scale: a discrete tokenizer (stage 1)
    turns an image into a grid of codes, and a decoder-only transformer (stage 2) models
    [class label] + codes left to right, as DALL-E puts the caption before the image.

    batch_size: the prior's global batch (the thesis's 128, or 2048 at latent 2048).
    latent_size: the **codebook size K** of the tokenizer (the thesis's "latent size":
        128 or 2048). An image of H x W becomes an (H / downsample) x (W / downsample)
        grid of codes in 0..K-1: with ``downsample`` = 4, 32x32 -> 8x8 = 64 tokens,
        64x64 -> 16x16 = 256 tokens.
    loss: name in ``models.autoregressive.losses.LOSSES`` (cross_entropy, mse,
        perceptual), applied to the prior's next-token predictions.

    Tokenizer (stage 1, a VQ-VAE, van den Oord et al. 2017): ``vq_widths`` are the
    channels of its levels (one residual block each, a stride-2 convolution between
    levels, so log2(downsample) + 1 widths), ``code_dim`` the dimension of a code
    vector, ``vq_batch_size`` its global batch, ``vq_learning_rate`` Adam's rate,
    ``commitment_weight`` beta of the commitment term (0.25 in the paper),
    ``codebook_decay`` the EMA decay of the codebook (0.99, their appendix A.1),
    ``restart_threshold`` the EMA usage (assignments per step) under which a code is
    dead and restarted at a random encoder output of the batch (Jukebox, Dhariwal
    et al. 2020; 0 disables restarts).

    Prior (stage 2, a GPT: Radford et al. 2019): ``width`` (d_model), ``depth``
    pre-norm blocks of causal self-attention with ``heads`` heads and a 4 x width MLP,
    learned positions for at most ``context_length`` positions (1 label token + the
    first n - 1 image tokens predict the n image tokens, so n <= context_length);
    ``num_classes`` labels (set from the dataset by the runner) plus a null label used
    with probability ``label_dropout`` (unconditional and guided sampling);
    ``learning_rate`` of Adam after ``warmup_steps`` of linear warm-up;
    ``perceptual_weight`` of the perceptual term of the ``perceptual`` loss.

    Sampler (metrics and samples.png): ``temperature`` (> 0) divides the logits,
    ``top_k`` (>= 1) keeps the k most likely codes (Fan et al. 2018; >= K keeps all),
    ``guidance_scale`` mixes conditional and unconditional logits (1 = the conditional
    model, 0 = unconditional; Ho & Salimans 2022, as in Parti / Make-A-Scene).
    """
    batch_size: int = 128
    latent_size: int = 128
    loss: str = "cross_entropy"
    downsample: int = 4
    # stage 1: tokenizer
    vq_widths: tuple = (32, 64, 128)
    code_dim: int = 32
    vq_batch_size: int = 64
    vq_learning_rate: float = 1e-3
    commitment_weight: float = 0.25
    codebook_decay: float = 0.99
    restart_threshold: float = 1.0
    # stage 2: prior
    width: int = 128
    depth: int = 4
    heads: int = 4
    context_length: int = 64
    num_classes: int = 100
    label_dropout: float = 0.1
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    perceptual_weight: float = 1.0
    # sampler
    temperature: float = 1.0
    top_k: int = NO_TOP_K
    guidance_scale: float = 1.0

    def validate(self) -> None:
        """One-line errors for options that cannot work, before anything trains."""
        if self.latent_size < 2:
            raise ValueError(f"the latent size is the codebook size K and must be >= 2, got "
                             f"{self.latent_size}")
        if self.downsample < 1 or self.downsample & (self.downsample - 1):
            raise ValueError(f"downsample must be a power of two >= 1, got {self.downsample}")
        if len(self.vq_widths) != self.downsample.bit_length():
            raise ValueError(f"vq_widths needs log2(downsample) + 1 = "
                             f"{self.downsample.bit_length()} widths, got {tuple(self.vq_widths)}")
        if self.code_dim < 1:
            raise ValueError(f"code_dim must be >= 1, got {self.code_dim}")
        if not 0 <= self.codebook_decay < 1:
            raise ValueError(f"codebook_decay must be in [0, 1), got {self.codebook_decay}")
        if self.restart_threshold < 0:
            raise ValueError(f"restart_threshold must be >= 0 (0: no restarts), got "
                             f"{self.restart_threshold}")
        if self.commitment_weight < 0:
            raise ValueError(f"commitment_weight must be >= 0, got {self.commitment_weight}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.depth < 1 or self.context_length < 1:
            raise ValueError(f"depth and context_length must be >= 1, got {self.depth}, "
                             f"{self.context_length}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if not 0 <= self.label_dropout < 1:
            raise ValueError(f"label_dropout must be in [0, 1), got {self.label_dropout}")
        if self.perceptual_weight < 0:
            raise ValueError(f"perceptual_weight must be >= 0, got {self.perceptual_weight}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 (it divides the logits), got "
                             f"{self.temperature}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1 (the number of codes kept; {NO_TOP_K} keeps "
                             f"all), got {self.top_k}")
        if not self.guidance_scale >= 0:
            raise ValueError(f"guidance_scale must be >= 0 (1 = conditional model, "
                             f"0 = unconditional), got {self.guidance_scale}")


def token_grid(config: AutoregressiveConfig, image_shape) -> tuple:
    """(h, w) of the tokenizer's code grid for ``image_shape``: (H / downsample, W / downsample)."""
    height, width = int(image_shape[0]), int(image_shape[1])
    f = config.downsample
    if height % f or width % f:
        raise ValueError(f"{height}x{width} images cannot be tokenized with downsample {f}: "
                         f"both sides must be multiples of it")
    return height // f, width // f


def check_context(config: AutoregressiveConfig, image_shape) -> int:
    """The number n of image tokens, after checking that the prior's context holds them."""
    h, w = token_grid(config, image_shape)
    n = h * w
    if n > config.context_length:
        raise ValueError(f"{image_shape[0]}x{image_shape[1]} images make {h}x{w} = {n} tokens "
                         f"(downsample {config.downsample}), longer than the prior's "
                         f"context_length {config.context_length}; raise context_length to "
                         f">= {n} or raise downsample")
    return n


#: Per-profile overrides (one per profile of ``experiments/profiles.py``).
PRESETS = {
    "smoke": {"vq_widths": (8, 8, 16), "code_dim": 8, "vq_batch_size": 8, "width": 16,
              "depth": 1, "heads": 2, "warmup_steps": 2},
    "quick": {"vq_widths": (32, 64, 128), "code_dim": 32, "vq_batch_size": 64,
              "vq_learning_rate": 1e-3, "width": 128, "depth": 4, "heads": 4,
              "learning_rate": 1e-3, "warmup_steps": 30},
    "paper": {"vq_widths": (64, 128, 256), "code_dim": 64, "vq_batch_size": 128, "width": 512,
              "depth": 8, "heads": 8, "learning_rate": 3e-4, "warmup_steps": 1000,
              "context_length": 256},
}
#: colab: the paper preset (the thesis's networks; experiments/profiles.py)
PRESETS["colab"] = dict(PRESETS["paper"])

#: Each stage's training length where the profile's own does not fit the recipe.
#: quick: sized so that each stage trains in at most ~10 minutes on 2 CPU cores.
TRAINING = {
    "quick": {"tokenizer": StageTraining(epochs=5, steps_per_epoch=160),
              "prior": StageTraining(epochs=5, steps_per_epoch=60)},
}

#: The family's cap on the batch per profile (none).
BATCH_CAPS = {}
