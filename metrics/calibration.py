"""Calibration rows: what each metric makes of real images degraded in known ways.

``n`` real held-out images (the test split, never seen by either evaluator nor by any
model; drawn by ``seed``) are scored clean and degraded, each set against the train
split, by every metric of the tables (:func:`metrics.second_opinion.score_both`):

=================  ===================================================================
``clean``          the test images as they are: the floor every number is read against
``blur_1px``       Gaussian blur, sigma 1 pixel (zero background beyond the border)
``noise_20``       additive Gaussian pixel noise, sigma 20 grey levels, rounded, clipped
                   to 0..255
``blocks_4x4``     every 4x4 block of the 32x32 image gets +25 or -25 grey levels
                   (random sign per block), **on the garment only**: pixels that are 0
                   in the clean image (Fashion-MNIST's background) stay 0, so the
                   silhouette is unchanged and only the garment gets the blocky
                   pattern (what a blocky decoder paints); clipped to 0..255
``pixelate_4``     each 4x4 block replaced by its mean (down-sampling by 4, area), then
                   nearest-neighbour up-sampling back to 32x32
=================  ===================================================================

The same ``n`` test images underlie every set, and each degradation draws its noise from
its own seeded stream, so the rows are reproducible and differ only by the degradation.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .errors import MetricsError

CALIBRATION_SETS = ("clean", "blur_1px", "noise_20", "blocks_4x4", "pixelate_4")
DESCRIPTIONS = {
    "clean": "real test images, clean",
    "blur_1px": "Gaussian blur, sigma 1 px",
    "noise_20": "Gaussian pixel noise, sigma 20 grey levels, clipped",
    "blocks_4x4": "+-25 grey levels per 4x4 block (random sign), garment pixels only",
    "pixelate_4": "4x4 block means, nearest up-sampling (pixelation by 4)",
}
NOISE_SIGMA = 20.0
BLUR_SIGMA = 1.0
BLOCK = 4
BLOCK_OFFSET = 25.0
PIXELATE = 4
#: The columns of calibration rows (and of ``python -m metrics calibrate``'s CSV).
#: Each row names both networks (label and weights' SHA-256) and its image counts.
COLUMNS = ("set", "n_samples", "reference_images", "fd_eval", "kid", "precision", "recall",
           "is_eval", "fd_eval2", "kid_eval2", "precision_eval2", "recall_eval2", "description",
           "metric_network", "metric_network_sha256", "metric_network2",
           "metric_network2_sha256")


def _to_uint8(x) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def degrade(images, kind: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """``images`` (uint8 [N, H, W, C]) degraded by ``kind`` (one of CALIBRATION_SETS);
    ``rng`` draws the noise and the block signs."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise MetricsError(f"degrade: uint8 [N, H, W, C] images expected, got {images.dtype} "
                           f"{list(images.shape)}")
    rng = rng if rng is not None else np.random.default_rng(0)
    x = images.astype(np.float64)
    n, h, w, c = images.shape
    if kind == "clean":
        return images.copy()
    if kind == "blur_1px":
        from scipy.ndimage import gaussian_filter

        return _to_uint8(gaussian_filter(x, sigma=(0, BLUR_SIGMA, BLUR_SIGMA, 0), mode="constant",
                                         cval=0.0, truncate=4.0))
    if kind == "noise_20":
        return _to_uint8(x + rng.normal(0.0, NOISE_SIGMA, size=x.shape))
    if kind in ("blocks_4x4", "pixelate_4"):
        size = BLOCK if kind == "blocks_4x4" else PIXELATE
        if h % size or w % size:
            raise MetricsError(f"{kind}: image size {h}x{w} is not a multiple of {size}")
        if kind == "blocks_4x4":
            signs = rng.choice(np.array([-1.0, 1.0]), size=(n, h // size, w // size, 1))
            offsets = np.repeat(np.repeat(signs * BLOCK_OFFSET, size, axis=1), size, axis=2)
            return _to_uint8(np.where(images > 0, x + offsets, x))
        means = x.reshape(n, h // size, size, w // size, size, c).mean(axis=(2, 4))
        return _to_uint8(np.repeat(np.repeat(means, size, axis=1), size, axis=2))
    raise MetricsError(f"unknown degradation {kind!r}; choose one of {CALIBRATION_SETS}")


def held_out_images(n: int = 2000, *, seed: int = 0, dataset: str = "fashion_mnist",
                    image_size: int = 32, channels: int = 1, data_dir=None) -> np.ndarray:
    """``n`` test-split images (uint8), drawn without replacement by ``seed``, in index
    order."""
    from data import DatasetError, open_dataset

    try:
        test = open_dataset(dataset, "test", image_size=image_size, channels=channels,
                            data_dir=data_dir)
    except (DatasetError, ValueError) as err:
        raise MetricsError(f"the held-out images cannot be read: {err}") from None
    images, _ = test.arrays()
    if not 1 <= n <= len(images):
        raise MetricsError(f"n={n}: the {dataset} test split holds {len(images)} images")
    index = np.sort(np.random.default_rng(seed).choice(len(images), size=n, replace=False))
    return images[index]


def calibration_sets(n: int = 2000, *, seed: int = 0, dataset: str = "fashion_mnist",
                     image_size: int = 32, channels: int = 1, data_dir=None,
                     images=None, kinds=CALIBRATION_SETS) -> dict:
    """{set name: uint8 [n, H, W, C]} for each of ``kinds``: the same ``n`` held-out images
    (:func:`held_out_images`, or the given ``images``), clean and degraded
    (:func:`degrade`, degradation k drawing from ``default_rng([seed, k])``)."""
    if images is None:
        images = held_out_images(n, seed=seed, dataset=dataset, image_size=image_size,
                                 channels=channels, data_dir=data_dir)
    images = np.asarray(images)
    return {kind: degrade(images, kind, np.random.default_rng([seed, k]))
            for k, kind in enumerate(kinds)}


def score_calibration(sets: dict, *, dataset: str = "fashion_mnist", cache_dir=None,
                      data_dir=None, seed: int = 0, reference_limit: int | None = None,
                      progress: bool = False) -> list[dict]:
    """One row per set of ``sets`` ({name: uint8 images}), in their order: ``set``,
    ``description`` and every metric of :func:`metrics.second_opinion.score_both`
    (both evaluators, against the train split, KID subsets drawn with ``seed``)."""
    from .second_opinion import score_both

    rows = []
    for name, images in sets.items():
        scores = score_both(images, dataset=dataset, cache_dir=cache_dir, data_dir=data_dir,
                            seed=seed, reference_limit=reference_limit, progress=progress)
        rows.append({"set": name, "description": DESCRIPTIONS.get(name, name), **scores})
        if progress:
            print(f"[metrics] calibration {name}: fd_eval {scores['fd_eval']:.4g}, "
                  f"fd_eval2 {scores['fd_eval2']:.4g}", file=sys.stderr, flush=True)
    return rows


def calibration_rows(n: int = 2000, *, seed: int = 0, dataset: str = "fashion_mnist",
                     data_dir=None, cache_dir=None, image_size: int = 32, channels: int = 1,
                     progress: bool = False) -> list[dict]:
    """:func:`score_calibration` of :func:`calibration_sets`: the calibration rows of a
    table (n = 2000 as the runs are scored on 2,000 samples)."""
    sets = calibration_sets(n, seed=seed, dataset=dataset, image_size=image_size,
                            channels=channels, data_dir=data_dir)
    return score_calibration(sets, dataset=dataset, cache_dir=cache_dir, data_dir=data_dir,
                             seed=seed, progress=progress)


def format_rows(rows) -> str:
    """A plain-text table of calibration rows."""
    keys = ("fd_eval", "kid", "precision", "recall", "fd_eval2", "kid_eval2",
            "precision_eval2", "recall_eval2")
    lines = [f"{'set':<12}" + "".join(f"{k:>16}" for k in keys)]
    for row in rows:
        lines.append(f"{row['set']:<12}" + "".join(f"{row[k]:>16.4g}" for k in keys))
    return "\n".join(lines)


def calibrate_command(args) -> int:
    """``python -m metrics calibrate --out FILE.csv``."""
    from .second_opinion import write_csv

    if args.n < 10:
        raise MetricsError(f"--n {args.n}: at least 10 images per set are needed")
    out = Path(args.out)
    rows = calibration_rows(args.n, seed=args.seed, dataset=args.dataset, data_dir=args.data_dir,
                            cache_dir=args.cache_dir, progress=not args.quiet)
    write_csv(rows, out, COLUMNS)
    print(format_rows(rows))
    print(f"[metrics] wrote {out}", file=sys.stderr)
    return 0
