"""The metric formulas and the streaming accumulators they are fed from.

Everything that enters a metric is accumulated in float64.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import scipy.special

from .errors import MetricsError


# --------------------------------------------------------------------------------------
# Streaming accumulators
# --------------------------------------------------------------------------------------
class RunningMoments:
    """Mean and covariance of a stream of feature batches, in float64.

    Sums are taken around a fixed shift (the first batch's mean), which keeps the
    textbook one-pass formula free of cancellation; the sum of outer products is updated
    in place by BLAS ``dsyrk`` (upper triangle only), so a batch costs no D x D temporaries.
    """

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.n = 0
        self.shift = None
        self._sum = np.zeros(self.dim, np.float64)  # sum of (x - shift)
        self._outer = np.zeros((self.dim, self.dim), np.float64, order="F")  # upper: sum (x-s)(x-s)^T

    def update(self, features) -> None:
        x = np.asarray(features, dtype=np.float64).reshape(-1, self.dim)
        if x.shape[0] == 0:
            return
        if self.shift is None:
            self.shift = x.mean(axis=0)
        centred = x - self.shift
        self._sum += centred.sum(axis=0)
        # centred.T is a Fortran-ordered [D, B] view: dsyrk adds (centred.T)(centred.T)^T
        out = scipy.linalg.blas.dsyrk(1.0, centred.T, beta=1.0, c=self._outer, overwrite_c=1)
        if out is not self._outer:  # pragma: no cover - only if BLAS could not work in place
            self._outer = np.asfortranarray(out)
        self.n += x.shape[0]

    def _centred_m2(self) -> np.ndarray:
        upper = np.triu(self._outer)
        outer = upper + np.triu(upper, 1).T
        mean_offset = self._sum / self.n
        return outer - self.n * np.outer(mean_offset, mean_offset)

    @property
    def mean(self) -> np.ndarray:
        if self.n == 0:
            return np.zeros(self.dim, np.float64)
        return self.shift + self._sum / self.n

    def merge(self, other: "RunningMoments") -> None:
        """Fold in another accumulator (Chan, Golub & LeVeque's pairwise update)."""
        if other.n == 0:
            return
        if self.n == 0:
            self.n, self.shift = other.n, other.shift.copy()
            self._sum, self._outer = other._sum.copy(), np.asfortranarray(other._outer.copy())
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self._centred_m2() + other._centred_m2() + np.outer(delta, delta) * (self.n * other.n / n)
        # back to sums around the kept shift
        offset = mean - self.shift
        self._sum = offset * n
        self._outer = np.asfortranarray(m2 + n * np.outer(offset, offset))
        self.n = n

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased sample covariance (ddof=1), as ``np.cov(features, rowvar=False)``."""
        if self.n < 2:
            raise MetricsError(f"a covariance needs at least 2 samples, got {self.n}")
        return self._centred_m2() / (self.n - 1)


class InceptionScoreAccumulator:
    """Per-split sums that give the Inception Score without keeping the predictions.

    For split ``s`` with predictions ``p_i``:  mean_i KL(p_i || p_s) =
    mean_i sum_j p_ij log p_ij  -  sum_j p_s,j log p_s,j  with ``p_s`` the split's mean
    prediction, so the running ``sum_i p_i`` and ``sum_i sum_j p_ij log p_ij`` suffice.  The
    split boundaries are those of OpenAI's code, ``[k*N//splits, (k+1)*N//splits)``; so the
    total ``N`` must be known in advance.
    """

    def __init__(self, total: int, num_classes: int, splits: int = 10):
        if total < splits:
            raise MetricsError(f"the Inception Score needs at least {splits} samples, got {total}")
        self.total, self.splits, self.num_classes = int(total), int(splits), int(num_classes)
        self.bounds = [k * self.total // self.splits for k in range(self.splits + 1)]
        self.count = np.zeros(self.splits, np.int64)
        self.sum_p = np.zeros((self.splits, self.num_classes), np.float64)
        self.sum_plogp = np.zeros(self.splits, np.float64)
        self.seen = 0

    def update_logits(self, logits) -> None:
        logits = np.asarray(logits, dtype=np.float64)
        log_p = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
        self.update_log_probs(log_p)

    def update_log_probs(self, log_p) -> None:
        log_p = np.asarray(log_p, dtype=np.float64)
        if self.seen + len(log_p) > self.total:
            raise MetricsError(f"more than the announced {self.total} samples")
        p = np.exp(log_p)
        plogp = np.sum(p * np.where(p > 0, log_p, 0.0), axis=1)  # 0 log 0 = 0
        index = np.arange(self.seen, self.seen + len(log_p))
        split = np.searchsorted(self.bounds, index, side="right") - 1
        for s in np.unique(split):
            rows = split == s
            self.count[s] += int(rows.sum())
            self.sum_p[s] += p[rows].sum(axis=0)
            self.sum_plogp[s] += plogp[rows].sum()
        self.seen += len(log_p)

    def result(self) -> tuple[float, float]:
        if self.seen != self.total:
            raise MetricsError(f"{self.seen} of the announced {self.total} samples arrived")
        scores = []
        for s in range(self.splits):
            p_y = self.sum_p[s] / self.count[s]
            entropy_cross = np.sum(np.where(p_y > 0, p_y * np.log(np.where(p_y > 0, p_y, 1.0)), 0.0))
            scores.append(np.exp(self.sum_plogp[s] / self.count[s] - entropy_cross))
        return float(np.mean(scores)), float(np.std(scores))


# --------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------
# Heusel, Ramsauer, Unterthiner, Nessler, Hochreiter (2017), "GANs Trained by a Two
# Time-Scale Update Rule Converge to a Local Nash Equilibrium" (NeurIPS), the FID:
#   d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)),
# computed in float64. TTUR's code takes scipy's sqrtm of S1 S2 (kept below as
# frechet_distance_sqrtm, the reference); we take the trace of the root from eigenvalues,
# equal to it within 1e-6 relative (tests/test_metrics_stats.py) and several times faster.
def _checked_stats(mu1, sigma1, mu2, sigma2):
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise MetricsError(f"statistics of different shapes: {mu1.shape} {sigma1.shape} "
                           f"vs {mu2.shape} {sigma2.shape}")
    if not all(np.isfinite(a).all() for a in (mu1, sigma1, mu2, sigma2)):
        raise MetricsError("Fréchet distance: the statistics hold NaN or Inf")
    return mu1, sigma1, mu2, sigma2


def _psd_sqrt(sigma):
    """sqrt of a symmetric positive semi-definite [D, D] matrix, via its eigenvectors;
    round-off's slightly negative eigenvalues count as 0."""
    values, vectors = np.linalg.eigh(sigma)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(sigma1, sigma2) -> float:
    """tr sqrt(sigma1 sigma2) from the eigenvalues of the symmetric matrix
    sqrt(sigma1) sigma2 sqrt(sigma1), which is similar to sigma1 sigma2 (same
    eigenvalues, all >= 0): two symmetric eigendecompositions instead of the general
    (Schur) matrix square root: 5.9 s against 26.7 s at D = 2048 on 2 shared cores
    (benchmarks/bench_metrics.py)."""
    root = _psd_sqrt(sigma1)
    middle = root @ sigma2 @ root
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2.0)  # symmetrised against round-off
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)) (Heusel et al. 2017),
    the trace of the square root taken from eigenvalues (:func:`trace_sqrt_product`)."""
    mu1, sigma1, mu2, sigma2 = _checked_stats(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2)
                 - 2.0 * trace_sqrt_product(sigma1, sigma2))


def frechet_distance_sqrtm(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """The same distance the way TTUR / pytorch-fid compute it (``scipy.linalg.sqrtm`` of
    the product, an eps-regularised retry when it is not finite): the reference that
    :func:`frechet_distance` is tested against."""
    mu1, sigma1, mu2, sigma2 = _checked_stats(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        largest = np.max(np.abs(np.diagonal(covmean).imag))
        if largest > 1e-3:
            raise MetricsError(f"Fréchet distance: imaginary component {largest} in sqrtm")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


# --------------------------------------------------------------------------------------
# Inception Score
# --------------------------------------------------------------------------------------
# Salimans, Goodfellow, Zaremba, Cheung, Radford, Chen (2016), "Improved Techniques for
# Training GANs" (NeurIPS): IS = exp(E_x KL(p(y|x) || p(y))), over 10 splits, reported as
# the mean and standard deviation of the splits (OpenAI improved-gan inception_score.py).
def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    """IS of a whole ``[N, K]`` matrix of class probabilities (the non-streaming form)."""
    probs = np.asarray(probs, dtype=np.float64)
    acc = InceptionScoreAccumulator(len(probs), probs.shape[1], splits)
    with np.errstate(divide="ignore"):
        acc.update_log_probs(np.log(probs))
    return acc.result()


# --------------------------------------------------------------------------------------
# Kernel Inception Distance
# --------------------------------------------------------------------------------------
# Binkowski, Sutherland, Arbel, Gretton (2018), "Demystifying MMD GANs" (ICLR): KID is the
# unbiased estimate of MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
# averaged over random subsets (100 subsets of 1000 here, fewer samples if fewer exist);
# mean and standard deviation over the subsets.
def polynomial_mmd2_unbiased(x, y) -> float:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    d = x.shape[1]
    m, n = len(x), len(y)

    def kernel(a, b):  # Gram matrix in float32 (BLAS), the kernel and its sums in float64
        k = (a @ b.T).astype(np.float64)
        k /= d
        k += 1.0
        return k * k * k

    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    sum_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    sum_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(sum_xx + sum_yy - 2.0 * k_xy.mean())


_MMD_PARTS = None


def _mmd2_unbiased_fast(x: np.ndarray, y: np.ndarray) -> float:
    """:func:`polynomial_mmd2_unbiased` as one XLA-fused TF computation (5x faster on CPU
    for small feature dimensions: the elementwise kernel and the sums make one pass)."""
    global _MMD_PARTS
    import tensorflow as tf

    if _MMD_PARTS is None:
        def kernel_sums(a, b, d):
            k = tf.cast(tf.matmul(a, b, transpose_b=True), tf.float64) / d + 1.0
            k = k * k * k
            return tf.reduce_sum(k), tf.reduce_sum(tf.linalg.diag_part(k))

        def parts(a, b):
            d = tf.cast(tf.shape(a)[1], tf.float64)
            return kernel_sums(a, a, d), kernel_sums(b, b, d), kernel_sums(a, b, d)[0]

        _MMD_PARTS = tf.function(parts, jit_compile=True, reduce_retracing=True)
    (s_xx, t_xx), (s_yy, t_yy), s_xy = _MMD_PARTS(tf.constant(x, tf.float32), tf.constant(y, tf.float32))
    m, n = len(x), len(y)
    return float((float(s_xx) - float(t_xx)) / (m * (m - 1)) + (float(s_yy) - float(t_yy)) / (n * (n - 1))
                 - 2.0 * float(s_xy) / (m * n))


def kernel_inception_distance(fake_features, real_features, *, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    fake_features = np.asarray(fake_features, np.float32)
    real_features = np.asarray(real_features, np.float32)
    m = min(subset_size, len(fake_features), len(real_features))
    if m < 2:
        raise MetricsError("KID needs at least 2 samples on each side")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        fx = fake_features[rng.choice(len(fake_features), m, replace=False)]
        ry = real_features[rng.choice(len(real_features), m, replace=False)]
        values.append(_mmd2_unbiased_fast(fx, ry))
    return float(np.mean(values)), float(np.std(values))


# --------------------------------------------------------------------------------------
# Precision and recall
# --------------------------------------------------------------------------------------
# Kynkaanniemi, Karras, Laine, Lehtinen, Aila (2019), "Improved Precision and Recall Metric
# for Assessing Generative Models" (NeurIPS): each sample's manifold is the union of balls
# reaching its k-th nearest neighbour (k = 3) within its own set; precision = share of fake
# samples inside the real manifold, recall = share of real samples inside the fake one.
def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aa = np.einsum("ij,ij->i", a, a)[:, None]
    bb = np.einsum("ij,ij->i", b, b)[None, :]
    return np.maximum(aa + bb - 2.0 * (a @ b.T), 0.0)


def _knn_radii(features: np.ndarray, k: int, row_batch: int) -> np.ndarray:
    radii = np.empty(len(features), np.float64)
    for start in range(0, len(features), row_batch):
        d = _squared_distances(features[start:start + row_batch], features)
        # the k-th neighbour after the point itself (distance 0, at position 0)
        radii[start:start + row_batch] = np.partition(d, k, axis=1)[:, k]
    return radii


def _coverage(queries: np.ndarray, support: np.ndarray, radii: np.ndarray, row_batch: int) -> float:
    inside = 0
    for start in range(0, len(queries), row_batch):
        d = _squared_distances(queries[start:start + row_batch], support)
        inside += int(np.any(d <= radii[None, :], axis=1).sum())
    return inside / len(queries)


_PR_TF: dict = {}


def _pr_tf(k: int):
    """TF versions of the k-NN radii and the coverage count (multi-threaded; the compare
    and reduce fused by XLA), for one row batch at a time."""
    import tensorflow as tf

    if k not in _PR_TF:
        def sqdist(a, b):
            aa = tf.reduce_sum(a * a, axis=1)[:, None]
            bb = tf.reduce_sum(b * b, axis=1)[None, :]
            return tf.maximum(aa + bb - 2.0 * tf.matmul(a, b, transpose_b=True), 0.0)

        def radii(rows, support):
            return -tf.math.top_k(-sqdist(rows, support), k + 1, sorted=True).values[:, k]

        def covered(rows, support, support_radii):
            inside = tf.reduce_any(sqdist(rows, support) <= support_radii[None, :], axis=1)
            return tf.reduce_sum(tf.cast(inside, tf.int32))

        _PR_TF[k] = (tf.function(radii, reduce_retracing=True),
                     tf.function(covered, reduce_retracing=True))
    return _PR_TF[k]


def precision_recall(real_features, fake_features, *, k: int = 3, row_batch: int = 1000,
                     backend: str = "auto") -> tuple[float, float]:
    """(precision, recall); the two sets are cut to the same size first.

    Both backends compute the same thing (float32 squared distances, the k-th neighbour
    after the point itself, ``<=`` the radius).  'numpy' (OpenBLAS) is faster for wide
    features such as Inception's 2048; 'tf' (multi-threaded elementwise work and top-k) for
    narrow ones such as the evaluator's 64; 'auto' picks by the feature width.
    """
    n = min(len(real_features), len(fake_features))
    if n <= k:
        raise MetricsError(f"precision/recall with k={k} needs more than {k} samples per side")
    real = np.asarray(real_features[:n], dtype=np.float32)
    fake = np.asarray(fake_features[:n], dtype=np.float32)
    if backend == "auto":
        backend = "tf" if real.shape[1] <= 512 else "numpy"
    if backend == "numpy":
        real_radii = _knn_radii(real, k, row_batch)
        fake_radii = _knn_radii(fake, k, row_batch)
        return (float(_coverage(fake, real, real_radii, row_batch)),
                float(_coverage(real, fake, fake_radii, row_batch)))
    import tensorflow as tf

    radii_fn, covered_fn = _pr_tf(k)
    real_t, fake_t = tf.constant(real), tf.constant(fake)

    def radii_of(x):
        return tf.concat([radii_fn(x[i:i + row_batch], x) for i in range(0, n, row_batch)], 0)

    def share(queries, support, support_radii):
        inside = sum(int(covered_fn(queries[i:i + row_batch], support, support_radii))
                     for i in range(0, n, row_batch))
        return inside / n

    real_radii, fake_radii = radii_of(real_t), radii_of(fake_t)
    return float(share(fake_t, real_t, real_radii)), float(share(real_t, fake_t, fake_radii))
