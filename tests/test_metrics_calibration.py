"""Calibration rows (metrics/calibration.py): real held-out images degraded in known ways.

The degradations are checked pixel by pixel on small arrays; the ordering of the rows
(clean real images best on every metric) with both committed evaluators on 400 test
images per set against 4,000 train images (the command scores 2,000 against all 60,000)."""
import math
import os

import numpy as np
import pytest

from metrics.calibration import CALIBRATION_SETS, calibration_sets, degrade
from metrics.errors import MetricsError

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
HAVE_FASHION = os.path.isfile(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))


def _garments(n=6, size=8, seed=0):
    """Images with a zero background and a garment of values 1..255 in the middle."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size, 1), np.uint8)
    images[:, 2:6, 1:7] = rng.integers(1, 256, size=(n, 4, 6, 1))
    return images


def test_clean_is_a_copy_and_noise_has_its_sigma():
    images = _garments()
    clean = degrade(images, "clean")
    assert np.array_equal(clean, images) and clean is not images
    flat = np.full((200, 32, 32, 1), 128, np.uint8)  # far from 0 and 255: no clipping
    noisy = degrade(flat, "noise_20", np.random.default_rng(1)).astype(np.float64) - 128
    assert abs(noisy.std() - 20.0) < 0.3 and abs(noisy.mean()) < 0.2


def test_blur_is_a_gaussian_of_sigma_one():
    from scipy.ndimage import gaussian_filter

    images = np.zeros((1, 16, 16, 1), np.uint8)
    images[0, 8, 8, 0] = 255
    blurred = degrade(images, "blur_1px")[0, ..., 0].astype(np.float64)
    expected = np.round(gaussian_filter(images[0, ..., 0].astype(np.float64), 1.0,
                                        mode="constant"))
    assert np.array_equal(blurred, expected)
    # a Gaussian of sigma 1: the neighbour 1 px away is exp(-1/2) of the centre
    assert blurred[8, 9] / blurred[8, 8] == pytest.approx(math.exp(-0.5), rel=0.03)


def test_block_offsets_are_25_per_4x4_block_on_the_garment_only():
    images = np.full((3, 8, 8, 1), 100, np.uint8)
    images[:, :, :2] = 0  # background on the left
    out = degrade(images, "blocks_4x4", np.random.default_rng(2)).astype(int)
    assert (out[:, :, :2] == 0).all()  # the background stays 0
    diff = out[:, :, 2:] - 100
    assert set(np.unique(diff)) <= {-25, 25}
    for by in (0, 4):
        for bx in (4,):  # a block wholly on the garment carries one offset
            assert len(np.unique(diff[:, by:by + 4, bx - 2:bx + 2])) <= 2
            for image in diff:
                assert len(np.unique(image[by:by + 4, bx - 2:bx + 2])) == 1
    # both signs occur, with a seeded draw
    assert {-25, 25} <= set(np.unique(diff))
    again = degrade(images, "blocks_4x4", np.random.default_rng(2))
    assert np.array_equal(out, again)


def test_pixelation_is_4x4_means_upsampled_by_repetition():
    images = _garments(n=2, size=8)
    out = degrade(images, "pixelate_4")
    for image, source in zip(out[..., 0], images[..., 0].astype(np.float64)):
        for by in (0, 4):
            for bx in (0, 4):
                block = image[by:by + 4, bx:bx + 4]
                assert (block == block[0, 0]).all()
                assert block[0, 0] == np.round(source[by:by + 4, bx:bx + 4].mean())
    with pytest.raises(MetricsError, match="multiple of 4"):
        degrade(np.zeros((1, 6, 6, 1), np.uint8), "pixelate_4")
    with pytest.raises(MetricsError, match="unknown degradation"):
        degrade(images, "sepia")


def test_calibration_sets_are_seeded():
    images = _garments(n=4, size=8)
    first = calibration_sets(images=images, seed=3)
    assert tuple(first) == CALIBRATION_SETS
    again = calibration_sets(images=images, seed=3)
    other = calibration_sets(images=images, seed=4)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["noise_20"], other["noise_20"])
    assert all(v.shape == images.shape and v.dtype == np.uint8 for v in first.values())


@pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST idx files not in {FASHION_DIR}")
def test_held_out_images_come_from_the_test_split():
    from metrics.calibration import held_out_images

    a = held_out_images(50, seed=0, data_dir=FASHION_DIR)
    assert a.shape == (50, 32, 32, 1) and a.dtype == np.uint8
    assert np.array_equal(a, held_out_images(50, seed=0, data_dir=FASHION_DIR))
    assert not np.array_equal(a, held_out_images(50, seed=1, data_dir=FASHION_DIR))
    with pytest.raises(MetricsError, match="test split holds"):
        held_out_images(10_001, data_dir=FASHION_DIR)


@pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST idx files not in {FASHION_DIR}")
def test_clean_real_images_score_best_on_every_metric(tmp_path):
    from metrics.calibration import score_calibration
    from metrics.contrastive import contrastive_shipped_dir

    if not contrastive_shipped_dir("fashion_mnist", (32, 32, 1)).is_dir():
        pytest.skip("the committed second evaluator is not in this checkout")
    sets = calibration_sets(400, seed=0, data_dir=FASHION_DIR)
    rows = score_calibration(sets, cache_dir=tmp_path, data_dir=FASHION_DIR,
                             reference_limit=4000)
    assert [r["set"] for r in rows] == list(CALIBRATION_SETS)
    clean, degraded = rows[0], rows[1:]
    for key in ("fd_eval", "kid", "fd_eval2", "kid_eval2"):  # distances: lower is better
        assert all(clean[key] < r[key] for r in degraded), (key, [r[key] for r in rows])
    # the first evaluator's precision and recall: higher is better. (The second
    # evaluator's are not in the tables: nearly blind to pixel noise, it puts noisy real
    # images inside the real manifold as often as clean ones.)
    for key in ("precision", "recall"):
        assert all(clean[key] > r[key] for r in degraded), (key, [r[key] for r in rows])
