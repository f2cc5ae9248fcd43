"""A family's loss registry: names -> objectives, and the one place a loss name is checked.

Each family builds one (``models/<family>/losses.py``: ``LOSSES = LossRegistry("vae",
{...})``). The runner and the command line check a row's loss by resolving it
(``Family.loss(name)``), and the family's model resolves its config's loss the same way
when it is built; nothing else checks the name.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

from common.config import ConfigError


class UnknownLossError(ConfigError):
    """A loss name the family's registry does not hold."""


class LossRegistry(Mapping):
    """A read-only mapping name -> objective (one call signature per family) whose
    :meth:`resolve` is the only check of a loss name.

    family: the family's registry name, for the error.
    noun: what the family calls a loss in the error ("loss"; the face GAN: "face GAN
        mode").
    """

    def __init__(self, family: str, entries: Mapping[str, Callable], *, noun: str = "loss"):
        if not entries:
            raise ValueError(f"family {family!r} registers no loss")
        self.family, self.noun = family, noun
        self._entries = dict(entries)

    def resolve(self, name: str) -> Callable:
        """The objective called ``name``; UnknownLossError naming the known ones otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownLossError(
                f"unknown {self.noun} {name!r} for family {self.family!r}; "
                f"known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __getitem__(self, name: str) -> Callable:
        return self._entries[name]

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"LossRegistry({self.family!r}, {self.names()})"
