"""benchmarks/quality_budget.py: a row at another latent size and length trains in its own
folder, records one point per epoch, and is skipped when run again."""
import importlib.util
import json
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
HAVE_FASHION = os.path.isfile(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz"))


def _module():
    spec = importlib.util.spec_from_file_location("quality_budget",
                                                  ROOT / "benchmarks" / "quality_budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_latent_without_a_row_is_refused(tmp_path):
    with pytest.raises(SystemExit) as err:
        _module().main(["--families", "vae", "--latent", "999", "--profile", "smoke",
                        "--dataset", "synthetic", "--out", str(tmp_path)])
    assert err.value.code == 2


def test_zero_epochs_are_refused(tmp_path):
    with pytest.raises(SystemExit) as err:
        _module().main(["--epochs", "0", "--out", str(tmp_path)])
    assert err.value.code == 2


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST idx files not in {FASHION_DIR}")
def test_a_longer_run_at_latent_2048_gets_its_own_folder(tmp_path, capsys, monkeypatch):
    args = ["--profile", "smoke", "--dataset", "fashion_mnist", "--data-dir", FASHION_DIR,
            "--families", "vae", "--latent", "2048", "--epochs", "3", "--n-samples", "64",
            "--out", str(tmp_path)]
    module = _module()
    COLUMNS = module.COLUMNS
    assert module.main(args) == 0
    run = tmp_path / "runs" / "vae-elbo-b8-z2048-s0-epochs3"
    config = json.loads((run / "config.json").read_text())
    assert config["identity"]["train_config"]["epochs"] == 3
    assert config["family_config"]["latent_size"] == 2048
    rows = (tmp_path / "quality_budget.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 and all(",vae-elbo-b8-z2048-s0-epochs3," in r for r in rows[1:])
    network = rows[1].split(",")[COLUMNS.index("metric_network")]
    assert network.startswith("evaluator:fashion_mnist-")  # the exact network, not its kind
    assert f"metric network `{network}`" in (tmp_path / "quality_budget.md").read_text()
    load = float(rows[1].split(",")[COLUMNS.index("load_average")])  # the load it ran under
    monkeypatch.setattr(module.os, "getloadavg", lambda: (99.0, 99.0, 99.0))
    assert module.main(args) == 0  # finished: skipped, not trained again
    assert "skipped" in capsys.readouterr().out
    assert len((tmp_path / "quality_budget.csv").read_text().splitlines()) == 4
    # the rewritten table keeps the load its points were trained under, not today's
    table = (tmp_path / "quality_budget.md").read_text()
    assert f"load average {load:.1f} at the start" in table and "99.0" not in table
