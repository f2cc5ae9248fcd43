"""Configuration of the GAN family (thesis 004, section A: "StyleGAN2")."""
from __future__ import annotations

import dataclasses
import typing

#: Width presets. ``small`` (the defaults: 32 feature maps up to 16x16, 16 at 32x32)
#: trains a quick-profile run (300 steps of 64 images) in about 2-3 minutes on 2 CPU
#: cores (``benchmarks/bench_gan.py``); ``full`` is the
#: StyleGAN2 / StyleGAN2-ADA CIFAR configuration (Karras et al. 2020b, the
#: ``cifar`` spec of ``train.py``: 512 feature maps at every resolution <= 32,
#: a 2-layer mapping network, w of dimension 512, minibatch-std groups of 32 and
#: learning rate 0.0025). Use it as ``GANConfig.preset("full", latent_size=1024)``
#: or copy the dict into a profile's overrides.
WIDTH_PRESETS = {
    "small": {},
    "full": {
        "channel_base": 32768,
        "channel_max": 512,
        "w_dim": 512,
        "mapping_layers": 2,
        "mbstd_group": 32,
        "g_learning_rate": 0.0025,
        "d_learning_rate": 0.0025,
    },
}


@dataclasses.dataclass
class GANConfig:
    """Defaults are the thesis's Table 3.1 baseline (Wasserstein-GP, batch 64,
    latent 128) with CPU-sized widths.

    batch_size, latent_size: the thesis's batch (64) and z dimension (128, 1024).
    loss: name in ``models.gan.losses.LOSSES``.
    channel_base, channel_max: feature maps at resolution r are
        ``min(channel_base // r, channel_max)`` in both networks (StyleGAN2's rule).
    w_dim, mapping_layers, mapping_lr_mul: the mapping network z -> w.
    mbstd_group, mbstd_channels: the discriminator's minibatch-stddev layer.
    optimizer: both players' optimiser, a name in ``training.optimizers.OPTIMIZERS``
        ("adam", StyleGAN2's; "extra_adam" / "past_extra_adam": Gidel et al. 2019).
    g_learning_rate, d_learning_rate, beta_1, beta_2, epsilon: Adam (StyleGAN2:
        0.002, betas (0, 0.99), eps 1e-8).
    gp_weight: lambda of the WGAN-GP gradient penalty (Gulrajani et al. 2017: 10).
    r1_gamma: gamma of the R1 penalty (Mescheder et al. 2018); 0 = off.
    d_reg_every: lazy regularisation interval of R1 (Karras et al. 2020, sec. 3.1).
    style_mixing_prob: probability that a generated image mixes two w's.
    ema_kimg, ema_rampup: half-life of the generator's weight average in
        thousands of images, ramped up as ``min(ema_kimg, rampup * kimg_seen)``
        (StyleGAN2-ADA); ema_rampup = 0 turns the ramp off.
    diffaugment: DiffAugment policy, comma-separated subset of
        "color,translation,cutout" ("" = off).
    ada, ada_target, ada_interval, ada_kimg: adaptive discriminator augmentation
        (Karras et al. 2020b): on/off, target of r_t = E[sign D(real)], steps
        between updates of p, and how many thousand images p needs to go 0 -> 1.
    modconv: "input_scaling" (scale activations, one shared convolution: fast) or
        "per_sample_weights" (textbook modulated weights as a grouped conv).
    conv_dtype: precision of the convolutions' arithmetic, "float32" or "bfloat16"
        (weights, activations between layers and optimiser state stay float32).
    jit_compile: XLA-compile the gradient computations of the train step; None =
        only where an accelerator (GPU/TPU) is present (on CPU, XLA's convolutions
        are ~3x slower than oneDNN's: see benchmarks/bench_gan.py).
    """
    batch_size: int = 64
    latent_size: int = 128
    loss: str = "wasserstein_gp"
    channel_base: int = 512
    channel_max: int = 32
    w_dim: int = 128
    mapping_layers: int = 2
    mapping_lr_mul: float = 0.01
    mbstd_group: int = 4
    mbstd_channels: int = 1
    optimizer: str = "adam"
    g_learning_rate: float = 0.002
    d_learning_rate: float = 0.002
    beta_1: float = 0.0
    beta_2: float = 0.99
    epsilon: float = 1e-8
    gp_weight: float = 10.0
    r1_gamma: float = 0.0
    d_reg_every: int = 16
    style_mixing_prob: float = 0.9
    ema_kimg: float = 10.0
    ema_rampup: float = 0.05
    diffaugment: str = ""
    ada: bool = False
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_kimg: float = 500.0
    modconv: str = "input_scaling"
    conv_dtype: str = "float32"
    jit_compile: typing.Optional[bool] = None

    def validate(self):
        from training.optimizers import check_optimizer_name
        check_optimizer_name(self.optimizer, "GAN optimizer")

    @classmethod
    def preset(cls, name: str, **overrides) -> "GANConfig":
        """A config from a named width preset (``WIDTH_PRESETS``) plus overrides."""
        if name not in WIDTH_PRESETS:
            raise ValueError(f"unknown GAN width preset {name!r}; known: {sorted(WIDTH_PRESETS)}")
        return cls(**{**WIDTH_PRESETS[name], **overrides})

    def channels(self, resolution: int) -> int:
        """Feature maps at ``resolution`` (StyleGAN2: min(base / r, max))."""
        return max(1, min(self.channel_base // resolution, self.channel_max))


#: Per-profile overrides of the defaults above (one per profile of
#: ``experiments/profiles.py``; a profile missing here is an error). The paper
#: profile uses StyleGAN2-ADA's CIFAR widths (about 20M parameters each in G and D).
PRESETS = {
    "smoke": dict(WIDTH_PRESETS["small"]),
    "quick": dict(WIDTH_PRESETS["small"]),
    "paper": dict(WIDTH_PRESETS["full"]),
}
