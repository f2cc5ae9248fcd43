"""Image datasets for the generative-model experiments.

``open_dataset(name, split, ...)`` returns an in-memory :class:`ImageSource`
whose ``batches()`` yield (float32 images in [-1, 1], int32 labels) in an
order fixed by (shuffle_seed, epoch); ``load_dataset`` is the one-call
version.  See :mod:`data.sources` for how names are resolved (offline files
first, then tfds) and :func:`known_datasets` for the names.
"""

from data.errors import DatasetError
from data.sources import (FeatureSource, ImageSource, known_datasets, load_dataset,
                          native_channels, open_dataset)

__all__ = ["open_dataset", "load_dataset", "ImageSource", "FeatureSource", "DatasetError",
           "known_datasets", "native_channels"]
