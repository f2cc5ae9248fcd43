"""Model families. Each lives in ``models/<family>/`` and exposes a ``FAMILY``.

A family module provides ``FAMILY = Family(...)`` (see :class:`Family`); the
registry below maps names to modules and imports them lazily, so a family that
needs heavy imports costs nothing until it is selected.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Mapping

_FAMILY_MODULES = {
    "vae": "models.vae",
    "gan": "models.gan",
}


@dataclasses.dataclass(frozen=True)
class Family:
    """What the trainer needs to know about a family of generative models.

    name: registry name ("vae").
    model_name: the name the thesis tables use ("VAE", "StyleGAN2").
    config_cls: the family's config dataclass (all defaults set).
    losses: the family's loss registry, name -> callable (one signature per family).
    build: ``build(config, image_shape, global_batch_size, seed) -> GenerativeModel``.
    """
    name: str
    model_name: str
    config_cls: type
    losses: Mapping[str, Callable]
    build: Callable


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
