"""Profiles scale every experiment: ``smoke`` (seconds, for tests), ``quick``
(a few CPU minutes per run), ``paper`` (the thesis's settings, for GPUs) and ``colab``
(the paper's networks, each row within the thesis's 2.5 hours on a Colab T4).

A profile changes how long and how wide a run is, never which runs exist.
"""
from __future__ import annotations

import dataclasses
import typing


@dataclasses.dataclass(frozen=True)
class Profile:
    """How one profile scales a run.

    train_limit: first N train images used (None = all).
    max_batch_size: cap on the thesis's batch size (None = the thesis's).
    n_samples: generated images saved to samples.npz and scored by the metrics.
    epochs, steps_per_epoch, ...: the default training length of every stage.

    Family widths and other per-profile settings (including a family's own
    training length where its recipe needs one) live beside each family, in
    ``models/<family>/config.py`` as ``PRESETS[profile name]``, so this module
    knows no family.
    """
    name: str
    epochs: int
    steps_per_epoch: typing.Optional[int]
    val_batches: typing.Optional[int]
    train_limit: typing.Optional[int]
    val_limit: typing.Optional[int]
    max_batch_size: typing.Optional[int]
    n_samples: int
    checkpoint_every: int
    sample_every: int

    def batch_size(self, thesis_batch: int) -> int:
        return thesis_batch if self.max_batch_size is None else min(thesis_batch, self.max_batch_size)

    def train_config(self, seed: int) -> dict:
        return dict(epochs=self.epochs, steps_per_epoch=self.steps_per_epoch,
                    val_batches=self.val_batches, checkpoint_every=self.checkpoint_every,
                    sample_every=self.sample_every, seed=seed)


PROFILES = {
    "smoke": Profile(
        name="smoke", epochs=2, steps_per_epoch=2, val_batches=1, train_limit=64, val_limit=32,
        max_batch_size=8, n_samples=64, checkpoint_every=1, sample_every=1),
    "quick": Profile(
        name="quick", epochs=5, steps_per_epoch=60, val_batches=8, train_limit=None,
        val_limit=2048, max_batch_size=128, n_samples=2000, checkpoint_every=20, sample_every=1),
    "paper": Profile(
        name="paper", epochs=100, steps_per_epoch=None, val_batches=None, train_limit=None,
        val_limit=None, max_batch_size=None, n_samples=10000, checkpoint_every=500,
        sample_every=5),
    # colab: the paper's configurations sized to the thesis's own budget, "up to 2.5 h per
    # model on Colab": every row at most 2.5 projected hours on a Colab T4 (run_all.py
    # --plan --profile colab). The families' colab presets are their paper presets; only
    # a stage whose paper length exceeds the budget trains shorter (the GAN: 25 of 100
    # epochs, models/gan/config.py). docs/paper-path.md gives the plan of both.
    "colab": Profile(
        name="colab", epochs=100, steps_per_epoch=None, val_batches=None, train_limit=None,
        val_limit=None, max_batch_size=None, n_samples=10000, checkpoint_every=500,
        sample_every=5),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]
