"""Model families. Each lives in ``models/<family>/`` and exposes a ``FAMILY``.

A family module provides ``FAMILY = Family(...)`` (see :class:`Family` and the
contract in ``models/base.py``); the registry below maps names to modules and
imports them lazily, so a family that needs heavy imports costs nothing until it
is selected. Adding a family: copy a folder, fill the contract, add one line to
``_FAMILY_MODULES``.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Mapping, Optional

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
    train_preset: the key of the family preset holding this stage's TrainConfig
        overrides (e.g. its own step count), if any.
    batch_field: the family-config field holding this stage's global batch.
    needed: ``needed(config) -> bool``; False skips the stage (e.g. pixel-space
        diffusion has no autoencoder).
    """
    name: str
    build: Callable
    shared_fields: Optional[tuple] = None
    train_preset: str = "train"
    batch_field: str = "batch_size"
    needed: Callable = lambda config: True


@dataclasses.dataclass(frozen=True)
class Family:
    """What the runner and trainer need to know about a family of generative models.

    name: registry name ("vae").
    model_name: the name the thesis tables use ("VAE", "StyleGAN2").
    config_cls: the family's config dataclass (all defaults set).
    losses: the family's loss registry, name -> callable (one signature per family).
    presets: profile name -> overrides of ``config_cls``'s defaults; the optional
        key of each stage's ``train_preset`` holds TrainConfig overrides, and the
        optional ``max_batch_size`` caps the batch below the profile's. Every
        profile must have an entry (a missing one is an error, never a fallback).
    stages: the ordered stages; the last one is the row's model.
    sampler_fields: config fields that only the sampler reads (diffusion's guidance
        scale, the prior's temperature): a finished run asked for with other values is
        sampled and scored again (``experiments.runner.resample_run``), never retrained.
    """
    name: str
    model_name: str
    config_cls: type
    losses: Mapping[str, Callable]
    presets: Mapping[str, dict]
    stages: tuple
    sampler_fields: tuple = ()

    @property
    def final_stage(self) -> Stage:
        return self.stages[-1]

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
        """The family's overrides for ``profile`` (stage training keys and the batch cap
        removed)."""
        if profile not in self.presets:
            raise UnknownFamilyError(
                f"family {self.name!r} has no preset for profile {profile!r}; add "
                f"PRESETS[{profile!r}] to models/{self.name}/config.py")
        runner_keys = {s.train_preset for s in self.stages} | {"max_batch_size"}
        return {k: v for k, v in self.presets[profile].items() if k not in runner_keys}

    def max_batch_size(self, profile: str) -> int | None:
        """The family's own cap on the batch under ``profile`` (preset key
        ``max_batch_size``, applied after the profile's), or None."""
        self.preset(profile)  # the same error for a missing profile
        cap = self.presets[profile].get("max_batch_size")
        if cap is not None and (not isinstance(cap, int) or cap < 1):
            raise ValueError(f"models/{self.name}/config.py: PRESETS[{profile!r}]"
                             f"['max_batch_size'] must be a positive integer, not {cap!r}")
        return cap

    def stage_train_overrides(self, profile: str, stage: Stage) -> dict:
        self.preset(profile)  # the same error for a missing profile
        return dict(self.presets[profile].get(stage.train_preset, {}))


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
