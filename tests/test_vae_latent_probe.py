"""benchmarks/vae_latent_probe.py: the activity and KL per dimension against hand-computed
cases, and the probe of the committed seed-0 VAE."""
import importlib.util
import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUN = ROOT / "reports" / "quick" / "fashion_mnist" / "runs" / "vae-elbo-b128-z128-s0"
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
HAVE_FASHION = os.path.isfile(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))


def _probe_module():
    spec = importlib.util.spec_from_file_location("vae_latent_probe",
                                                  ROOT / "benchmarks" / "vae_latent_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_activity_is_the_variance_of_the_means_over_images():
    probe = _probe_module()
    # dimension 0 varies (values 1, 3: variance 1), dimension 1 is constant
    mu = np.array([[1.0, 5.0], [3.0, 5.0]])
    np.testing.assert_allclose(probe.activity(mu), [1.0, 0.0])
    assert list(probe.activity(mu) > probe.ACTIVITY_THRESHOLD) == [True, False]


def test_kl_per_dimension_by_hand():
    probe = _probe_module()
    # KL(N(mu, e^lv) || N(0, 1)) = 0.5 (mu^2 + e^lv - 1 - lv):
    # (mu 1, lv 0) -> 0.5; (mu 0, lv 0) -> 0; (mu 0, lv log 4) -> 0.5 (3 - log 4)
    mu = np.array([[1.0, 0.0, 0.0]])
    log_var = np.array([[0.0, 0.0, np.log(4.0)]])
    np.testing.assert_allclose(probe.kl_per_dimension(mu, log_var),
                               [0.5, 0.0, 0.5 * (3.0 - np.log(4.0))])
    # averaged over images
    np.testing.assert_allclose(probe.kl_per_dimension(np.array([[1.0], [0.0]]),
                                                      np.zeros((2, 1))), [0.25])


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST idx files not in {FASHION_DIR}")
@pytest.mark.skipif(not (RUN / "weights").is_dir(), reason="the seed-0 VAE's weights are not "
                                                           "in this checkout")
def test_the_committed_vae_uses_few_of_its_units(tmp_path):
    record = _probe_module().probe(str(RUN), n=300, data_dir=FASHION_DIR,
                                   cache_dir=tmp_path / "cache", reference_limit=2000)
    fd = {row["set"]: row["fd_eval"] for row in record["rows"]}
    assert list(fd) == ["real test images", "reconstructions", "prior samples",
                        "prior samples, inactive zeroed"]
    assert fd["real test images"] < fd["reconstructions"] < fd["prior samples"], fd
    assert 0 < record["active_units"] < record["latent_size"] == 128
    # the KL sits in the active units; the inactive ones carry (almost) none
    assert record["kl_active"] > 10 * record["kl_inactive"] >= 0
    assert 0 < record["units_holding_90pct_kl"] <= record["active_units"]
    assert 0 < record["signal_fraction"] < 1
    # the decoder listens harder to the active units than to the inactive ones
    assert record["project_row_norm_active"] > record["project_row_norm_inactive"]
    assert all(row["n_samples"] == 300 for row in record["rows"])


def test_a_run_of_another_family_is_refused():
    probe = _probe_module()
    other = ROOT / "reports" / "quick" / "fashion_mnist" / "runs" / "gan-wasserstein_gp-b64-z128-s0"
    if not (other / "weights").is_dir():
        pytest.skip("the GAN's weights are not in this checkout")
    with pytest.raises(SystemExit, match="not a VAE"):
        probe.probe(str(other), n=10)


def test_units_holding_and_signal_fraction_by_hand():
    probe = _probe_module()
    # KL 6, 3, 1 (total 10): 90% (9) needs the two largest units; 50% one
    assert probe.units_holding(np.array([1.0, 6.0, 3.0]), 0.9) == 2
    assert probe.units_holding(np.array([1.0, 6.0, 3.0]), 0.5) == 1
    assert probe.units_holding(np.array([1.0, 6.0, 3.0]), 1.0) == 3
    # Var(mu) = 1 in one unit, 0 in the other; sigma^2 = 1 in both: signal 1 / (1 + 2)
    mu = np.array([[1.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_allclose(probe.signal_fraction(mu, np.zeros((2, 2))), 1.0 / 3.0)
