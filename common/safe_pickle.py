"""A restricted unpickler: a pickle may name only the globals its caller allows.

``pickle.load`` runs whatever code a pickle names, so the suite never uses it on a file
it did not write. :class:`RestrictedUnpickler` resolves a global only when it is in the
caller's ``allowed`` mapping ``{(module, name): object}`` and refuses every other one
(and every persistent id, unless the caller reads them), so a malicious file cannot run
code. Two callers, each with its own allowed globals:

- ``data/safe_pickle.py``: the CIFAR "python version" batches (numpy arrays only);
- ``metrics/weights.py``: the PyTorch port of the FID Inception weights (tensor-rebuild
  functions mapped onto numpy, storage types, ``OrderedDict``).
"""
from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping


class RefusedGlobal(Exception):
    """A pickle asked for a global outside the allowed ones, or for a persistent id
    its reader does not read; ``str()`` names what it asked for (``module.name``)."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose only importable names are ``allowed``.

    allowed: ``{(module, name): object}``, what ``find_class`` may return.
    refuse: ``refuse(what) -> Exception``, the error raised for any other global
        (``what`` = "module.name") or an unread persistent id; :class:`RefusedGlobal`
        by default.
    persistent_load: ``persistent_load(pid) -> object`` for pickles that carry
        persistent ids (torch's storages), or None to refuse them.
    Other keyword arguments go to ``pickle.Unpickler`` (e.g. ``encoding``).
    """

    def __init__(self, file, allowed: Mapping, *, refuse: Callable = RefusedGlobal,
                 persistent_load: Callable | None = None, **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = allowed
        self._refuse = refuse
        self._persistent_load = persistent_load

    def find_class(self, module, name):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise self._refuse(f"{module}.{name}") from None

    def persistent_load(self, pid):
        if self._persistent_load is None:
            raise self._refuse(f"persistent id {pid!r}")
        return self._persistent_load(pid)
