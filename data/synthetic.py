"""``synthetic``: small procedural images for tests and smoke runs.

Ten classes, each a distinct pattern in its own colour on a dark background
(circle, square, horizontal stripes, vertical stripes, linear gradient,
checkerboard, ring, cross, triangle, soft blob), with random position, size,
phase and colour jitter.  Image ``i`` of a split is drawn from
``numpy.random.default_rng([seed, split_id, i])`` and has label ``i % 10``,
so the first ``limit`` images do not depend on ``limit``, the data is a pure
function of ``seed``, and every class appears once in each run of 10.
Default sizes: 512 train and 128 test images, made directly at image_size.
"""

import numpy as np

from data.raw import RawSplit

CLASS_NAMES = ["circle", "square", "hstripes", "vstripes", "gradient",
               "checker", "ring", "cross", "triangle", "blob"]
SPLIT_SIZES = {"train": 512, "test": 128}
_SPLIT_IDS = {"train": 0, "test": 1}

# One base colour per class (RGB in [0, 1]).
_COLOURS = np.array([
    [0.95, 0.20, 0.20], [0.20, 0.90, 0.25], [0.25, 0.35, 0.95], [0.95, 0.90, 0.20],
    [0.90, 0.25, 0.85], [0.20, 0.90, 0.90], [1.00, 0.55, 0.10], [0.95, 0.95, 0.95],
    [0.55, 0.25, 0.90], [0.60, 0.95, 0.20],
])


def _mask(label: int, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Foreground weight in [0, 1], shape [S, S], for one image of class `label`."""
    cy, cx = rng.uniform(0.3, 0.7, size=2)
    r = rng.uniform(0.18, 0.32)
    freq, phase = rng.uniform(3.0, 5.0), rng.uniform(0.0, 2 * np.pi)
    dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    if label == 0:  # circle
        mask = dist < r
    elif label == 1:  # square
        mask = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r)
    elif label == 2:  # horizontal stripes
        mask = np.sin(2 * np.pi * freq * yy + phase) > 0
    elif label == 3:  # vertical stripes
        mask = np.sin(2 * np.pi * freq * xx + phase) > 0
    elif label == 4:  # linear gradient at a random angle
        angle = rng.uniform(0.0, 2 * np.pi)
        t = (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle)
        return np.clip(t / 1.42 + 0.5, 0.0, 1.0)
    elif label == 5:  # checkerboard
        cells = int(round(freq))
        mask = (np.floor(yy * cells + phase) + np.floor(xx * cells)) % 2 == 0
    elif label == 6:  # ring
        mask = (dist < r) & (dist > 0.55 * r)
    elif label == 7:  # cross
        w = r / 3
        mask = (((np.abs(xx - cx) < w) & (np.abs(yy - cy) < r))
                | ((np.abs(yy - cy) < w) & (np.abs(xx - cx) < r)))
    elif label == 8:  # triangle, apex up
        mask = (yy > cy - r) & (yy < cy + r) & (np.abs(xx - cx) < (yy - (cy - r)) / 2)
    else:  # soft blob
        return np.exp(-(dist ** 2) / (2 * (0.6 * r) ** 2))
    return mask.astype(np.float64)


def make_image(seed: int, split: str, index: int, image_size: int):
    """Image `index` of `split`: (uint8 [S, S, 3], label)."""
    label = index % len(CLASS_NAMES)
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], index])
    grid = (np.arange(image_size) + 0.5) / image_size
    yy, xx = np.meshgrid(grid, grid, indexing="ij")  # [S, S] each
    mask = _mask(label, rng, yy, xx)[..., None]
    background = rng.uniform(0.0, 0.25, size=3)
    colour = np.clip(_COLOURS[label] + rng.uniform(-0.08, 0.08, size=3), 0.0, 1.0)
    image = background * (1 - mask) + colour * mask
    image = image + rng.normal(0.0, 0.03, size=image.shape)
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8), label


def load(split: str, seed: int, image_size: int, limit: int | None = None) -> RawSplit:
    """The synthetic `split` -> uint8 [N, S, S, 3], int32 [N]."""
    count = SPLIT_SIZES[split] if limit is None else min(limit, SPLIT_SIZES[split])
    pairs = [make_image(seed, split, i, image_size) for i in range(count)]
    images = np.stack([image for image, _ in pairs])
    labels = np.asarray([label for _, label in pairs], np.int32)
    return RawSplit(images, labels, list(CLASS_NAMES),
                    f"synthetic patterns (seed={seed}, {split})")
