"""The metric formulas: Fréchet distance, Inception Score, KID, precision/recall, and
the float64 streaming accumulators they are fed from."""
import numpy as np
import pytest

from metrics.errors import MetricsError
from metrics.stats import (InceptionScoreAccumulator, RunningMoments, frechet_distance,
                                       inception_score, kernel_inception_distance,
                                       polynomial_mmd2_unbiased, precision_recall)


def _random_stats(rng, d, n=500):
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3 + rng.standard_normal(d)
    return x.mean(0), np.cov(x, rowvar=False)


# ---------------------------------------------------------------- Fréchet distance
def test_frechet_distance_is_zero_for_identical_statistics():
    mu, sigma = _random_stats(np.random.default_rng(0), 64)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    d = 32
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    var1, var2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2.0 * np.sqrt(var1 * var2))
    got = frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert abs(got - closed) < 1e-8


def test_frechet_distance_is_symmetric():
    rng = np.random.default_rng(2)
    a, b = _random_stats(rng, 48), _random_stats(rng, 48)
    assert frechet_distance(*a, *b) == pytest.approx(frechet_distance(*b, *a), rel=1e-9, abs=1e-9)
    assert frechet_distance(*a, *b) > 0.1


def test_frechet_distance_survives_singular_covariances():
    # rank-deficient covariances (fewer samples than dimensions), as with few images
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((10, 40)), rng.standard_normal((10, 40)) + 0.5
    value = frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert np.isfinite(value) and value > 0


def _feature_stats(rng, n, d, shift):
    # features with a correlated, decaying spectrum, like a network's pooled activations
    mixing = rng.standard_normal((d, d)) * np.exp(-np.arange(d) / (d / 8))[None, :]
    x = rng.standard_normal((n, d)) @ mixing + shift
    return x.mean(0), np.cov(x, rowvar=False)


@pytest.mark.parametrize("n, d", [(3000, 256), (500, 256), (100, 64)])
def test_fast_frechet_distance_equals_the_sqrtm_one(n, d):
    """The eigenvalue form against TTUR's sqrtm form, to 1e-6 relative: full-rank and
    rank-deficient (n < d) covariances alike."""
    from metrics.stats import frechet_distance_sqrtm

    rng = np.random.default_rng(n + d)
    a, b = _feature_stats(rng, n, d, 0.0), _feature_stats(rng, n, d, 0.3)
    fast, reference = frechet_distance(*a, *b), frechet_distance_sqrtm(*a, *b)
    assert fast == pytest.approx(reference, rel=1e-6)
    assert fast > 0.01


def test_frechet_distance_refuses_non_finite_statistics():
    with pytest.raises(MetricsError, match="NaN or Inf"):
        frechet_distance(np.zeros(3), np.full((3, 3), np.nan), np.zeros(3), np.eye(3))


def test_frechet_distance_refuses_mismatched_shapes():
    with pytest.raises(MetricsError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ---------------------------------------------------------------- Inception Score
def test_inception_score_is_one_for_constant_predictions():
    probs = np.tile(np.array([0.1, 0.2, 0.3, 0.4]), (1000, 1))
    score, std = inception_score(probs)
    assert score == pytest.approx(1.0, abs=1e-12) and std < 1e-12


@pytest.mark.parametrize("k", [2, 10, 100])
def test_inception_score_is_k_for_confident_even_predictions(k):
    n = 100 * k
    probs = np.eye(k)[np.arange(n) % k]  # every split holds every class equally often
    score, std = inception_score(probs)
    assert score == pytest.approx(k, rel=1e-12) and std < 1e-9


def test_inception_score_streaming_equals_the_whole_matrix_formula():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((1003, 17)) * 3
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    # the textbook (OpenAI) form over the whole matrix
    scores = []
    for k in range(10):
        part = probs[k * 1003 // 10:(k + 1) * 1003 // 10]
        py = part.mean(0, keepdims=True)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), 1))))
    acc = InceptionScoreAccumulator(1003, 17)
    for start in range(0, 1003, 64):  # batches that straddle split boundaries
        acc.update_logits(logits[start:start + 64])
    score, std = acc.result()
    assert score == pytest.approx(np.mean(scores), rel=1e-10)
    assert std == pytest.approx(np.std(scores), rel=1e-8)


def test_inception_score_needs_all_announced_samples():
    acc = InceptionScoreAccumulator(100, 5)
    acc.update_logits(np.zeros((50, 5)))
    with pytest.raises(MetricsError):
        acc.result()
    with pytest.raises(MetricsError):
        acc.update_logits(np.zeros((51, 5)))


# ---------------------------------------------------------------- KID
def test_kid_is_near_zero_for_one_distribution_and_positive_for_shifted_ones():
    rng = np.random.default_rng(5)
    d = 64
    real = rng.standard_normal((3000, d)).astype(np.float32)
    same = rng.standard_normal((3000, d)).astype(np.float32)
    shifted = (rng.standard_normal((3000, d)) + 0.5).astype(np.float32)
    kid_same, std_same = kernel_inception_distance(same, real, subsets=20, subset_size=500)
    kid_shift, _ = kernel_inception_distance(shifted, real, subsets=20, subset_size=500)
    assert abs(kid_same) < 3 * std_same + 1e-3
    assert kid_shift > 0.05 and kid_shift > 50 * abs(kid_same)


def test_kid_kernel_estimate_is_unbiased_closed_form():
    # the cubic-kernel unbiased MMD^2 written out with explicit loops on a tiny set
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)) + 0.3
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-5)


def test_kid_fused_computation_equals_the_numpy_one():
    from metrics.stats import _mmd2_unbiased_fast

    rng = np.random.default_rng(9)
    x = np.abs(rng.standard_normal((300, 40))).astype(np.float32)
    y = np.abs(rng.standard_normal((250, 40))).astype(np.float32) * 1.1
    # The fused path takes the float32 features' inner products in float32 (then sums in
    # float64); the BLAS summation order differs between CPUs, so agreement is to float32
    # rounding of the kernel sums (measured: 2.3e-9 relative on one machine, < 1e-9 on
    # another), not to float64's.
    assert _mmd2_unbiased_fast(x, y) == pytest.approx(polynomial_mmd2_unbiased(x, y), rel=1e-7)


# ---------------------------------------------------------------- precision / recall
def test_precision_recall_of_matching_and_disjoint_sets():
    rng = np.random.default_rng(7)
    real = rng.standard_normal((1500, 8))
    same = rng.standard_normal((1500, 8))
    far = rng.standard_normal((1500, 8)) + 20.0
    p, r = precision_recall(real, same, k=3)
    assert p > 0.6 and r > 0.6
    p, r = precision_recall(real, far, k=3)
    assert p == 0.0 and r == 0.0
    # a generator that covers only half of the real modes: high precision, low recall
    half = rng.standard_normal((1500, 8)) * 0.3
    p, r = precision_recall(real, half, k=3)
    assert p > 0.9 and r < 0.5


def test_precision_recall_tf_and_numpy_agree():
    rng = np.random.default_rng(10)
    real = rng.standard_normal((700, 12))
    fake = rng.standard_normal((700, 12)) * 1.2 + 0.2
    fast = precision_recall(real, fake, k=3, row_batch=256, backend="tf")
    plain = precision_recall(real, fake, k=3, row_batch=256, backend="numpy")
    assert np.allclose(fast, plain, atol=2.0 / 700)  # float32 rounding may move a borderline point


@pytest.mark.parametrize("backend", ["tf", "numpy"])
def test_precision_recall_k_nearest_radius_excludes_the_point_itself(backend):
    # four points on a line; with k=1 each real point's ball reaches its nearest other point
    real = np.array([[0.0], [1.0], [3.0], [10.0]])
    fake = np.array([[0.5], [5.0], [12.0], [-6.9]])
    p, _ = precision_recall(real, fake, k=1, row_batch=2, backend=backend)
    # balls: 0 r=1, 1 r=1, 3 r=2, 10 r=7 -> 0.5 in, 5 in (3+2), 12 in (10+7), -6.9 out
    assert p == pytest.approx(0.75)


# ---------------------------------------------------------------- running moments
def test_running_moments_equal_numpy_in_float64():
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((2001, 16)) * 5 + 1e3).astype(np.float32)  # large offset
    acc = RunningMoments(16)
    for start in range(0, len(x), 97):
        acc.update(x[start:start + 97])
    xd = x.astype(np.float64)
    assert acc.n == 2001
    np.testing.assert_allclose(acc.mean, xd.mean(0), rtol=1e-12)
    np.testing.assert_allclose(acc.covariance, np.cov(xd, rowvar=False), rtol=1e-9, atol=1e-9)
    other = RunningMoments(16)
    other.update(x[:1000])
    rest = RunningMoments(16)
    rest.update(x[1000:])
    other.merge(rest)
    np.testing.assert_allclose(other.covariance, np.cov(xd, rowvar=False), rtol=1e-9, atol=1e-9)
