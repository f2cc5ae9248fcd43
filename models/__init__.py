"""Model families. Each lives in ``models/<family>/`` and exposes a ``FAMILY``.

A family module provides ``FAMILY = Family(...)``, written in the types of the contract:
its config dataclass derives from :class:`FamilyConfig` (``validate()``,
``batches_per_step()``), its losses are a :class:`LossRegistry` (``Family.loss(name)``
is the one check of a loss name), its models derive from
``models.base.GenerativeModel``; ``PRESETS`` (family fields per profile),
``TRAINING`` (:class:`StageTraining` per profile and stage) and ``BATCH_CAPS`` live in
its ``config.py``. Parts two families share are in ``models/shared/``. The registry
below maps names to modules and imports them lazily, so a family that needs heavy
imports costs nothing until it is selected. Adding a family: copy a folder, fill the
contract, add one line to ``_FAMILY_MODULES``.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Mapping, Optional

from models.config import FamilyConfig, StageTraining
from models.losses import LossRegistry, UnknownLossError

__all__ = ["Family", "FamilyConfig", "LossRegistry", "Stage", "StageTraining",
           "UnknownFamilyError", "UnknownLossError", "family_names", "get_family",
           "single_stage"]

_FAMILY_MODULES = {
    "vae": "models.vae",
    "gan": "models.gan",
    "diffusion": "models.diffusion",
    "autoregressive": "models.autoregressive",
    "faces": "models.faces",
}


@dataclasses.dataclass(frozen=True)
class Stage:
    """One model a family trains; a family's stages train in order, each in its own run folder.

    name: "model" for one-stage families; e.g. "autoencoder", "denoiser".
    build: ``build(config, image_shape, global_batch_size, seed=0, inputs=None)
        -> GenerativeModel``; ``inputs`` maps each earlier stage's name to its
        restored model, frozen (``trainable = False``) by the receiving stage.
    shared_fields: for a first stage, the family-config fields that define it
        (the loss is never one of them): it is trained once per (family, these
        fields, dataset, profile, image size, seed) in ``runs/<family>-<name>-z<latent>-s<seed>/``
        and reused by every loss row that agrees on them. None for the final
        stage, which is the row's own run.
    Its training length per profile is the family's ``training[profile][name]``.
    batch_field: the family-config field holding this stage's global batch.
    needed: ``needed(config) -> bool``; False skips the stage (e.g. pixel-space
        diffusion has no autoencoder).
    """
    name: str
    build: Callable
    shared_fields: Optional[tuple] = None
    batch_field: str = "batch_size"
    needed: Callable = lambda config: True


@dataclasses.dataclass(frozen=True)
class Family:
    """What the runner and trainer need to know about a family of generative models.

    name: registry name ("vae").
    model_name: the name the thesis tables use ("VAE", "StyleGAN2").
    config_cls: the family's config dataclass, a :class:`FamilyConfig` (all defaults set).
    losses: the family's :class:`LossRegistry` (one call signature per family).
    presets: profile name -> overrides of ``config_cls``'s defaults (family fields
        only). Every profile must have an entry (a missing one is an error, never a
        fallback).
    stages: the ordered stages; the last one is the row's model.
    sampler_fields: config fields that only the sampler reads (diffusion's guidance
        scale, the prior's temperature): a finished run asked for with other values is
        sampled and scored again (``experiments.runner.resample_run``), never retrained.
    training: profile name -> stage name -> :class:`StageTraining`, a stage's training
        length where the profile's own does not fit the family's recipe.
    batch_caps: profile name -> the family's cap on the batch under that profile,
        applied after the profile's own (a CPU budget), where it has one.
    """
    name: str
    model_name: str
    config_cls: type
    losses: LossRegistry
    presets: Mapping[str, dict]
    stages: tuple
    sampler_fields: tuple = ()
    training: Mapping[str, Mapping[str, StageTraining]] = dataclasses.field(
        default_factory=dict)
    batch_caps: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        where = f"models/{self.name}"
        if not (isinstance(self.config_cls, type) and issubclass(self.config_cls, FamilyConfig)):
            raise TypeError(f"{where}: config_cls must derive from models.FamilyConfig")
        if not isinstance(self.losses, LossRegistry):
            raise TypeError(f"{where}: losses must be a models.LossRegistry")
        self.losses.resolve(self.config_cls().loss)  # the default loss is a registered one
        fields = {f.name for f in dataclasses.fields(self.config_cls)}
        for profile, preset in self.presets.items():
            unknown = sorted(set(preset) - fields)
            if unknown:
                raise TypeError(f"{where}/config.py: PRESETS[{profile!r}] holds {unknown}, "
                                f"which are not {self.config_cls.__name__} fields (a stage's "
                                f"training length goes in TRAINING, a batch cap in BATCH_CAPS)")
        stage_names = {s.name for s in self.stages}
        for profile, by_stage in self.training.items():
            unknown = sorted(set(by_stage) - stage_names)
            if unknown or not all(isinstance(t, StageTraining) for t in by_stage.values()):
                raise TypeError(f"{where}/config.py: TRAINING[{profile!r}] must map stage "
                                f"names {sorted(stage_names)} to StageTraining, got "
                                f"{dict(by_stage)!r}")

    @property
    def final_stage(self) -> Stage:
        return self.stages[-1]

    def loss(self, name: str) -> Callable:
        """The objective called ``name``: the one check of a loss name (an
        ``UnknownLossError``, a ``ConfigError``, naming the family's known losses)."""
        return self.losses.resolve(name)

    def build(self, config, image_shape, global_batch_size, seed=0, inputs=None):
        """The final stage's model (fresh first stages are built when none are given)."""
        if inputs is None:
            inputs = {}
            for stage in self.stages[:-1]:
                if stage.needed(config):
                    inputs[stage.name] = stage.build(
                        config, image_shape, getattr(config, stage.batch_field), seed=seed,
                        inputs=dict(inputs))
        return self.final_stage.build(config, image_shape, global_batch_size, seed=seed,
                                      inputs=inputs)

    def stages_for(self, config) -> tuple:
        return tuple(s for s in self.stages if s.needed(config))

    def preset(self, profile: str) -> dict:
        """The family's overrides of its config's defaults for ``profile``."""
        if profile not in self.presets:
            raise UnknownFamilyError(
                f"family {self.name!r} has no preset for profile {profile!r}; add "
                f"PRESETS[{profile!r}] to models/{self.name}/config.py")
        return dict(self.presets[profile])

    def max_batch_size(self, profile: str) -> int | None:
        """The family's own cap on the batch under ``profile`` (``BATCH_CAPS``, applied
        after the profile's), or None."""
        self.preset(profile)  # the same error for a missing profile
        cap = self.batch_caps.get(profile)
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"models/{self.name}/config.py: BATCH_CAPS[{profile!r}] must be "
                             f"a positive integer, not {cap!r}")
        return cap

    def stage_train_overrides(self, profile: str, stage: Stage) -> dict:
        """``stage``'s TrainConfig overrides under ``profile`` (``TRAINING``), or {}."""
        self.preset(profile)  # the same error for a missing profile
        training = self.training.get(profile, {}).get(stage.name)
        return {} if training is None else training.overrides()


def single_stage(build: Callable) -> tuple:
    """The stages of a family that trains one model."""
    return (Stage("model", build),)


class UnknownFamilyError(ValueError):
    pass


def family_names() -> list[str]:
    return sorted(_FAMILY_MODULES)


def get_family(name: str) -> Family:
    if name not in _FAMILY_MODULES:
        raise UnknownFamilyError(
            f"unknown model family {name!r}; known families: {', '.join(family_names())}")
    try:
        module = importlib.import_module(_FAMILY_MODULES[name])
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith(_FAMILY_MODULES[name]):
            raise UnknownFamilyError(
                f"model family {name!r} is registered but not installed in this checkout") from err
        raise
    return module.FAMILY
