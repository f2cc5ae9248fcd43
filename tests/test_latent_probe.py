"""benchmarks/latent_probe.py on the committed seed-0 diffusion autoencoder: the decodes of
encoder means plus noise score worse as the noise grows, and real images score best."""
import importlib.util
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUN = ROOT / "reports" / "quick" / "fashion_mnist" / "runs" / "diffusion-autoencoder-z128-s0"
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
HAVE_FASHION = os.path.isfile(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))


def _probe_module():
    spec = importlib.util.spec_from_file_location("latent_probe",
                                                  ROOT / "benchmarks" / "latent_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST idx files not in {FASHION_DIR}")
@pytest.mark.skipif(not (RUN / "weights").is_dir(), reason="the seed-0 autoencoder's weights "
                                                           "are not in this checkout")
def test_noise_in_the_latent_costs_fidelity(tmp_path):
    record = _probe_module().probe(str(RUN), [0.0, 0.5], n=300, data_dir=FASHION_DIR,
                                   cache_dir=tmp_path / "cache", reference_limit=2000)
    fd = {row["set"]: row["fd_eval"] for row in record["rows"]}
    assert list(fd) == ["real test images", "r=0", "r=0.5"]
    assert fd["real test images"] < fd["r=0"] < fd["r=0.5"], fd
    assert record["latent_shape"] == [4, 4, 8]
    assert 0 < record["posterior_sd_over_spread"] < 1
    assert all(row["n_samples"] == 300 and row["reference_images"] == 2000
               for row in record["rows"])


def test_a_run_of_another_stage_is_refused(tmp_path):
    probe = _probe_module()
    other = ROOT / "reports" / "quick" / "fashion_mnist" / "runs" / "vae-elbo-b128-z128-s0"
    if not (other / "weights").is_dir():
        pytest.skip("the VAE's weights are not in this checkout")
    with pytest.raises(SystemExit, match="not a diffusion autoencoder"):
        probe.probe(str(other), [0.0], n=10)
