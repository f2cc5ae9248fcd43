"""The VAE family's terms against closed forms, and its loss registry."""
import numpy as np
import pytest
import tensorflow as tf

from models.shared.distributions import gaussian_kl
from models.vae import losses


def test_gaussian_kl_matches_closed_form_per_dimension():
    mu = np.array([[0.0, 1.0, -2.0]], np.float32)
    log_var = np.array([[0.0, np.log(4.0), np.log(0.25)]], np.float32)
    # KL(N(m, s^2) || N(0, 1)) = 0.5 (s^2 + m^2 - 1 - log s^2), summed over dimensions.
    expected = sum(0.5 * (s2 + m * m - 1.0 - np.log(s2))
                   for m, s2 in [(0.0, 1.0), (1.0, 4.0), (-2.0, 0.25)])
    got = float(gaussian_kl(mu, log_var)[0])
    assert got == pytest.approx(expected, rel=1e-6)
    assert float(gaussian_kl(np.zeros((1, 5), np.float32),
                             np.zeros((1, 5), np.float32))[0]) == 0.0


def test_gaussian_kl_agrees_with_monte_carlo():
    rng = np.random.default_rng(0)
    mu, log_var = np.float32([[0.7, -0.3]]), np.float32([[-0.5, 0.4]])
    sigma = np.exp(0.5 * log_var)
    z = mu + sigma * rng.standard_normal((400_000, 2))
    log_q = -0.5 * (((z - mu) / sigma) ** 2 + log_var + np.log(2 * np.pi))
    log_p = -0.5 * (z ** 2 + np.log(2 * np.pi))
    mc = float(np.mean(np.sum(log_q - log_p, axis=1)))
    assert float(gaussian_kl(mu, log_var)[0]) == pytest.approx(mc, abs=5e-3)


@pytest.mark.parametrize("kernel", [losses.gaussian_kernel, losses.imq_kernel])
def test_mmd_of_identical_samples_is_zero_and_of_shifted_samples_positive(kernel):
    rng = np.random.default_rng(1)
    a = tf.constant(rng.standard_normal((200, 8)), tf.float32)
    assert float(losses.mmd(a, a, kernel, unbiased=False)) == pytest.approx(0.0, abs=1e-6)
    b = tf.constant(rng.standard_normal((200, 8)), tf.float32)
    same = float(losses.mmd(a, b, kernel))
    shifted = float(losses.mmd(a, b + 1.5, kernel))
    assert abs(same) < 0.05 * shifted
    assert shifted > 0.0


def test_squared_distances_match_numpy():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    got = losses.squared_distances(tf.constant(a), tf.constant(b)).numpy()
    np.testing.assert_allclose(got, ((a[:, None] - b[None]) ** 2).sum(-1), rtol=1e-10)


class _OneDevice:
    """The reductions a loss needs, for one device and a batch of ``n``."""
    def __init__(self, n):
        self.n = n

    def replica_mean(self, per_example):
        return tf.reduce_sum(per_example) / self.n

    def replica_share(self, value):
        return value

    def gather(self, x):
        return x


def _output(seed=0, b=6, z=4):
    rng = np.random.default_rng(seed)
    f = lambda *s: tf.constant(rng.standard_normal(s), tf.float32)  # noqa: E731
    return losses.VAEOutput(x=f(b, 4, 4, 3), x_hat=f(b, 4, 4, 3), mu=f(b, z), log_var=f(b, z),
                            z=f(b, z), z_prior=f(b, z))


def test_objectives_combine_their_terms_as_the_papers_write_them():
    from models.vae.config import VAEConfig

    out, model, cfg = _output(), _OneDevice(6), VAEConfig(kl_weight=1.0, mi_alpha=0.5,
                                                        mi_lambda=10.0, wae_lambda=3.0)
    recon = float(tf.reduce_mean(losses.squared_error(out.x, out.x_hat)))
    kl = float(tf.reduce_mean(gaussian_kl(out.mu, out.log_var)))
    elbo = losses.LOSSES["elbo"](out, model, cfg)
    assert float(elbo["loss"]) == pytest.approx(recon + kl, rel=1e-5)
    mi = losses.LOSSES["mi"](out, model, cfg)
    mmd_rbf = float(losses.mmd(out.z, out.z_prior, losses.gaussian_kernel))
    assert float(mi["loss"]) == pytest.approx(recon + 0.5 * kl + (0.5 + 10 - 1) * mmd_rbf,
                                              rel=1e-5)
    wae = losses.LOSSES["wae"](out, model, cfg)
    mmd_imq = float(losses.mmd(out.z, out.z_prior, losses.imq_kernel))
    assert float(wae["loss"]) == pytest.approx(recon + 3.0 * mmd_imq, rel=1e-5)
    assert set(losses.LOSSES) == {"elbo", "mi", "wae"}


def test_the_registry_resolves_a_loss_name_and_is_its_only_check():
    """``Family.loss(name)`` is the one check of a loss name: a ConfigError naming the
    family's losses; the model resolves its config's loss through the same registry."""
    from common.config import ConfigError
    from models import UnknownLossError, get_family
    from models.vae.config import VAEConfig

    family = get_family("vae")
    assert family.loss("wae") is losses.LOSSES["wae"]
    assert issubclass(UnknownLossError, ConfigError)
    message = "unknown loss 'perceptual' for family 'vae'; known: elbo, mi, wae"
    with pytest.raises(UnknownLossError, match=message):
        family.loss("perceptual")
    with pytest.raises(UnknownLossError, match=message):
        family.build(VAEConfig(loss="perceptual", widths=(8, 16)), (32, 32, 3), 8)
