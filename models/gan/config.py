"""Configuration of the GAN family (thesis 004, section A: "StyleGAN2")."""
from __future__ import annotations

import dataclasses
import typing

from models.config import FamilyConfig, StageTraining

#: StyleGAN2-ADA's ``cifar`` configuration in full (Karras et al. 2020b, "Training
#: Generative Adversarial Networks with Limited Data", ``train.py --cfg=cifar``: its
#: spec ref_gpus=2, mb=64, mbstd=32, fmaps=1, lrate=0.0025, gamma=0.01, ema=500,
#: ramp=0.05, map=2, plus the cifar-only changes: no path-length regularisation, no
#: style mixing, the "orig" (non-residual) discriminator; ADA on with target 0.6).
#: The paper profile uses it; docs/gan.md ("the paper profile's configuration") lists
#: where the suite departs from it and why (z dimension, objective, precision, ...).
STYLEGAN2_ADA_CIFAR = {
    "channel_base": 32768,       # fmaps=1 -> 32768; 512 maps at every resolution <= 64
    "channel_max": 512,
    "w_dim": 512,
    "mapping_layers": 2,         # map=2
    "mbstd_group": 32,           # mbstd=32
    "g_learning_rate": 0.0025,   # lrate
    "d_learning_rate": 0.0025,
    "r1_gamma": 0.01,            # gamma, R1 every 16 D steps (lazy regularisation)
    "d_reg_every": 16,
    "ema_kimg": 500.0,           # ema=500 with ramp=0.05
    "ema_rampup": 0.05,
    "style_mixing_prob": 0.0,    # cifar: style mixing off
    "d_architecture": "orig",    # cifar: no residual skips in D
    "ada": True,                 # --aug=ada (the default), target 0.6, ada_kimg 500
    "ada_target": 0.6,
    "ada_interval": 4,
    "ada_kimg": 500.0,
}

#: Named presets for ``GANConfig.preset``: ``small`` (the defaults: 32 feature maps up
#: to 16x16, 16 at 32x32) is the CPU width of the smoke and quick profiles
#: (``benchmarks/bench_gan.py``); ``cifar`` is StyleGAN2-ADA's configuration above.
WIDTH_PRESETS = {"small": {}, "cifar": STYLEGAN2_ADA_CIFAR}


@dataclasses.dataclass
class GANConfig(FamilyConfig):
    """Defaults are the thesis's Table 3.1 baseline (Wasserstein-GP, batch 64,
    latent 128) with CPU-sized widths.

    batch_size, latent_size: the thesis's batch (64) and z dimension (128, 1024).
    loss: name in ``models.gan.losses.LOSSES``.
    channel_base, channel_max: feature maps at resolution r are
        ``min(channel_base // r, channel_max)`` in both networks (StyleGAN2's rule).
    w_dim, mapping_layers, mapping_lr_mul: the mapping network z -> w.
    mbstd_group, mbstd_channels: the discriminator's minibatch-stddev layer.
    d_architecture: "resnet" (StyleGAN2's residual discriminator) or "orig" (plain
        blocks, StyleGAN2-ADA's cifar configuration).
    optimizer: both players' optimiser, a name in ``common.optimizers.OPTIMIZERS``
        ("adam", StyleGAN2's; "extra_adam" / "past_extra_adam": Gidel et al. 2019).
    g_learning_rate, d_learning_rate, beta_1, beta_2, epsilon: Adam (StyleGAN2:
        0.002, betas (0, 0.99), eps 1e-8).
    d_steps: discriminator (critic) steps per generator step, each on its own batch
        of real images with its own noise; None = the objective's published value
        (``LOSSES[loss].d_steps``: 5 for WGAN-GP, Gulrajani et al. 2017, Algorithm 1,
        n_critic = 5; 1 for the others, as their papers train).
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
        (weights, activations between layers and optimiser state stay float32). The
        run's ``--precision`` (a Keras dtype policy for every layer, every family:
        ``training.runtime``) is the general switch; "float32" here means "the layers'
        compute dtype", "bfloat16" forces bfloat16 convolutions even in a float32 run.
    jit_compile: no longer read: XLA is the run's ``jit`` (``--jit auto|on|off``,
        ``training.runtime.Runtime``), the same switch for every family. Kept so the
        config.json of runs written before it still loads; None is the only value new
        runs write.
    truncation_psi: the sampler's truncation trick (Karras et al. 2019, StyleGAN,
        sec. 3.1 and appendix B): w' = w_avg + psi (w - w_avg), trading diversity for
        fidelity; 1 = no truncation (how FIDs are usually reported). A sampler field:
        changing it re-samples a finished run, never retrains it.
    """
    batch_size: int = 64
    latent_size: int = 128
    loss: str = "wasserstein_gp"
    d_steps: typing.Optional[int] = None
    channel_base: int = 512
    channel_max: int = 32
    w_dim: int = 128
    mapping_layers: int = 2
    mapping_lr_mul: float = 0.01
    mbstd_group: int = 4
    mbstd_channels: int = 1
    d_architecture: str = "resnet"
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
    truncation_psi: float = 1.0

    @classmethod
    def preset(cls, name: str, **overrides) -> "GANConfig":
        """A config from a named width preset (``WIDTH_PRESETS``) plus overrides."""
        if name not in WIDTH_PRESETS:
            raise ValueError(f"unknown GAN width preset {name!r}; known: {sorted(WIDTH_PRESETS)}")
        return cls(**{**WIDTH_PRESETS[name], **overrides})

    def critic_steps(self) -> int:
        """D steps per G step: ``d_steps``, or the objective's published default."""
        if self.d_steps is not None:
            return int(self.d_steps)
        from models.gan.losses import LOSSES  # the registry holds each objective's default

        # an unknown loss is the registry's error (when the run is planned or the model
        # built), not this method's: it counts one step for it
        return LOSSES[self.loss].d_steps if self.loss in LOSSES else 1

    def batches_per_step(self) -> int:
        """Real batches one train step consumes: one per critic step."""
        return self.critic_steps()

    def validate(self) -> None:
        """The options' own checks (plan_run calls it before anything trains)."""
        from common.optimizers import check_optimizer_name

        check_optimizer_name(self.optimizer, "GAN optimizer")
        if self.d_architecture not in ("resnet", "orig"):
            raise ValueError(f"d_architecture must be 'resnet' or 'orig', got "
                             f"{self.d_architecture!r}")
        if self.d_steps is not None and (isinstance(self.d_steps, bool) or int(self.d_steps) < 1):
            raise ValueError(f"d_steps must be a positive integer (critic steps per generator "
                             f"step), got {self.d_steps!r}")
        if not 0 <= self.truncation_psi <= 1:
            raise ValueError(f"truncation_psi must be in [0, 1] (1 = no truncation), got "
                             f"{self.truncation_psi}")

    def channels(self, resolution: int) -> int:
        """Feature maps at ``resolution`` (StyleGAN2: min(base / r, max))."""
        return max(1, min(self.channel_base // resolution, self.channel_max))


#: Per-profile overrides of the defaults above (one per profile of
#: ``experiments/profiles.py``; a profile missing here is an error). The paper
#: profile is StyleGAN2-ADA's cifar configuration (about 20M parameters each in G and D).
PRESETS = {
    "smoke": dict(WIDTH_PRESETS["small"]),
    # quick: one critic step per G step (Progressive GAN's WGAN-GP recipe; n_critic = 5
    # spends 5/6 of a CPU budget on the critic) at StyleGAN2-ADA cifar's learning rate
    # 0.0025 (its batch is ours, 64); truncation_psi stays 1. The measurements behind
    # each choice: docs/recipes.md, "Tuning history of the presets".
    "quick": {**WIDTH_PRESETS["small"], "d_steps": 1,
              "g_learning_rate": STYLEGAN2_ADA_CIFAR["g_learning_rate"],
              "d_learning_rate": STYLEGAN2_ADA_CIFAR["d_learning_rate"]},
    "paper": dict(STYLEGAN2_ADA_CIFAR),
    "colab": dict(STYLEGAN2_ADA_CIFAR),
}

#: A stage's training length where the profile's own does not fit the recipe.
#: quick: 17 x 200 generator steps of 64 (about 9.5 minutes of WGAN-GP on 2 cores).
#: colab: 25 of the paper's 100 epochs, the most whole tens of kimg that keep a row within
#: the thesis's 2.5 h on a Colab T4 (the paper length plans 9 T4-hours; docs/paper-path.md).
TRAINING = {
    "quick": {"model": StageTraining(epochs=17, steps_per_epoch=200)},
    "colab": {"model": StageTraining(epochs=25)},
}

#: The family's cap on the batch per profile (none).
BATCH_CAPS = {}
