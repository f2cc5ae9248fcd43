"""The types every family's configuration is written in.

- :class:`FamilyConfig`: the base of each family's config dataclass
  (``models/<family>/config.py``). It declares what the runner sets on every family
  (``batch_size``, ``latent_size``, ``loss``) and the two methods the runner and
  trainer call on any family: ``validate()`` and ``batches_per_step()``.
- :class:`StageTraining`: one stage's training length under one profile (the family's
  ``TRAINING`` table), kept apart from the presets, which hold family fields only.

The loss name is not checked here: the family's loss registry checks it when it
resolves it (``models.losses.LossRegistry``, ``Family.loss``).
"""
from __future__ import annotations

import dataclasses
import typing


@dataclasses.dataclass
class FamilyConfig:
    """Base of a family's config dataclass; a family sets its own defaults.

    batch_size: the final stage's global batch (the thesis's batch size).
    latent_size: the thesis's latent size (what it means is the family's: z's
        dimension, the codebook size, the latent's element count).
    loss: a name in the family's loss registry (``Family.losses``), resolved and
        checked by it alone.
    """
    batch_size: int = 0
    latent_size: int = 0
    loss: str = ""

    def validate(self) -> None:
        """The family's own checks of its options (not the loss name): a one-line
        ValueError for an option that cannot work, before anything trains. Called by the
        runner when it plans a run and by a model when it is built."""

    def batches_per_step(self) -> int:
        """Data batches one train step of the final stage consumes (a WGAN's critic
        steps); the model built from this config has the same ``batches_per_step``."""
        return 1


@dataclasses.dataclass(frozen=True)
class StageTraining:
    """A stage's training length under one profile: overrides of the profile's
    ``TrainConfig`` fields (None: the profile's own value)."""
    epochs: typing.Optional[int] = None
    steps_per_epoch: typing.Optional[int] = None
    checkpoint_every: typing.Optional[int] = None

    def overrides(self) -> dict:
        """The fields set here, as TrainConfig overrides."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}
