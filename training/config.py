"""The trainer's own settings, independent of the family."""
from __future__ import annotations

import dataclasses
import typing


@dataclasses.dataclass
class TrainConfig:
    """What the shared trainer needs, independent of the family.

    steps_per_epoch: None = one pass over the train split (drop_remainder).
    val_batches: None = the whole held-out split.
    checkpoint_every: steps between mid-epoch checkpoints (0 = epoch ends only).
    """
    epochs: int = 1
    steps_per_epoch: typing.Optional[int] = None
    val_batches: typing.Optional[int] = None
    checkpoint_every: int = 100
    sample_every: int = 1
    grid_size: int = 8
    seed: int = 0
