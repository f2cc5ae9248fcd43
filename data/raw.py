"""The hand-over format between a source reader and :class:`ImageSource`."""

from typing import NamedTuple

import numpy as np


class RawSplit(NamedTuple):
    """One decoded split as a reader returns it."""

    images: np.ndarray       # uint8 [N, H, W, C], C in (1, 3); any H, W
    labels: np.ndarray       # int32 [N]
    class_names: list        # list[str]
    provenance: str          # human-readable origin, e.g. "idx files in /path"
