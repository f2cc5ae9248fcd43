"""run_all.py end to end: the files a run writes, skipping, real data, bad input."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import run_all

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"
RUN_FILES = {"config.json", "history.csv", "loss_curves.png", "samples.png", "samples.npz",
             "metrics.json"}
VAE_RUNS = {f"vae-{loss}-b8-z{z}-s0" for loss in ("elbo", "mi", "wae") for z in (128, 2048)}


def _run(*args):
    return subprocess.run([sys.executable, "run_all.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


def _check_outputs(out, dataset, channels=3, scored=False):
    assert set(os.listdir(out / "runs")) == VAE_RUNS
    for name in VAE_RUNS:
        run = out / "runs" / name
        assert RUN_FILES <= set(os.listdir(run)), name
        metrics = json.loads((run / "metrics.json").read_text())
        assert np.isfinite(metrics["train_loss"]) and np.isfinite(metrics["val_loss"])
        config = json.loads((run / "config.json").read_text())
        assert config["identity"]["dataset"] == dataset and config["identity"]["seed"] == 0
        images = np.load(run / "samples.npz")["images"]
        assert images.dtype == np.uint8 and images.shape == (64, 32, 32, channels)
        assert config["image_shape"] == [32, 32, channels]
        assert config["identity"]["channels"] == channels
        with open(run / "history.csv") as f:
            assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    for table, n_rows in (("table_3_1", 2), ("table_3_2", 4)):
        for ext in ("md", "csv", "json"):
            assert (out / f"{table}.{ext}").exists()
        with open(out / f"{table}.csv") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == n_rows and {r["family"] for r in rows} == {"vae"}
        for column in ("family", "model", "loss", "batch_size", "latent_size", "seeds", "fid",
                       "fid_std", "is", "is_std", "is_split_std", "train_loss", "val_loss",
                       "metric_network", "metric_network_sha256",
                       "n_samples", "thesis_fid", "thesis_is", "thesis_train_loss",
                       "thesis_val_loss"):
            assert column in rows[0]
        assert all(float(r["thesis_fid"]) > 900 for r in rows)  # the thesis's numbers, as data
        if not scored:
            assert all(r["fid"] == "not computed" and r["is"] == "not computed" for r in rows)
            assert "not computed" in (out / f"{table}.md").read_text()
    readme = (out / "README.md").read_text()  # the index: both tables, the VAE losses compared
    assert "## Experiment 1" in readme and "## Experiment 2" in readme
    assert "### VAE (vae): elbo, mi, wae" in readme and (out / "figures/vae-samples.png").exists()


@pytest.mark.slow
def test_smoke_profile_writes_every_file_and_skips_complete_runs(tmp_path):
    out = tmp_path / "out"
    proc = _run("--profile", "smoke", "--only", "vae", "--dataset", "synthetic", "--out", str(out),
                "--metrics", "none", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"writing to {out}" in proc.stdout
    _check_outputs(out, "synthetic")
    again = _run("--profile", "smoke", "--only", "vae/wae@128", "--dataset", "synthetic",
                 "--out", str(out), "--metrics", "none", "--quiet")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "vae-wae-b8-z128-s0" in again.stdout and "complete, skipped" in again.stdout
    assert "[run_all] run " not in again.stdout


@pytest.mark.skipif(not os.path.isdir(FASHION),
                    reason=f"Debian's dataset-fashion-mnist is not installed ({FASHION} missing); "
                           f"apt-get install -y dataset-fashion-mnist")
@pytest.mark.slow
def test_smoke_profile_on_real_fashion_mnist_trains_and_scores_in_one_channel(tmp_path):
    """Gray data stays gray: 1-channel models, samples and evaluator (the repository's
    shipped one, so nothing is trained for the metrics)."""
    from metrics.evaluator import shipped_dir

    shipped = json.loads((shipped_dir("fashion_mnist", (32, 32, 1)) / "info.json").read_text())
    out = tmp_path / "fashion"
    proc = _run("--profile", "smoke", "--only", "vae", "--dataset", "fashion_mnist",
                "--data-dir", FASHION, "--out", str(out), "--metrics", "evaluator", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "idx files" in proc.stdout and "training one" not in proc.stderr
    _check_outputs(out, "fashion_mnist", channels=1, scored=True)
    for name in VAE_RUNS:
        metrics = json.loads((out / "runs" / name / "metrics.json").read_text())
        assert metrics["metric_network"].startswith("evaluator:fashion_mnist-32x32x1:")
        assert metrics["metric_network_sha256"] == shipped["weights_sha256"]
        assert np.isfinite(metrics["fid"]) and metrics["fid"] > 0


# Three of the six rows (both tables, both latent sizes, two rows sharing the z128
# autoencoder) keep the suite short; the six-row command is run for the committed results.
DIFFUSION_SELECTION = ("diffusion/mse@128", "diffusion/huber@128", "diffusion/mae@2048")
DIFFUSION_RUNS = {"diffusion-mse-b8-z128-s0", "diffusion-huber-b8-z128-s0",
                  "diffusion-mae-b8-z2048-s0"}
AUTOENCODERS = {f"diffusion-autoencoder-z{z}-s0" for z in (128, 2048)}


@pytest.mark.skipif(not os.path.isdir(FASHION),
                    reason=f"Debian's dataset-fashion-mnist is not installed ({FASHION} missing); "
                           f"apt-get install -y dataset-fashion-mnist")
@pytest.mark.slow
def test_diffusion_smoke_rows_share_two_autoencoders(tmp_path):
    out = tmp_path / "diffusion"
    proc = _run("--profile", "smoke", "--only", *DIFFUSION_SELECTION, "--dataset", "fashion_mnist",
                "--data-dir", FASHION, "--out", str(out), "--metrics", "none", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(os.listdir(out / "runs")) == DIFFUSION_RUNS | AUTOENCODERS
    assert proc.stdout.count("[run_all] stage autoencoder of diffusion") == 2  # twice, not three times
    for name in DIFFUSION_RUNS:
        run = out / "runs" / name
        assert RUN_FILES <= set(os.listdir(run)), name
        metrics = json.loads((run / "metrics.json").read_text())
        assert np.isfinite(metrics["train_loss"]) and np.isfinite(metrics["val_loss"])
        z = name.split("-z")[1].split("-")[0]
        assert metrics["stages"]["autoencoder"]["run"] == f"../diffusion-autoencoder-z{z}-s0"
        assert np.load(run / "samples.npz")["images"].shape == (64, 32, 32, 1)  # gray data
    for name in AUTOENCODERS:
        ae = json.loads((out / "runs" / name / "metrics.json").read_text())
        assert ae["stage"] == "autoencoder" and 0 < ae["recon_mse"] < 4
    for table, n_rows in (("table_3_1", 1), ("table_3_2", 2)):
        with open(out / f"{table}.csv") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == n_rows and {r["family"] for r in rows} == {"diffusion"}
    again = _run("--profile", "smoke", "--only", "diffusion/mse@128", "--dataset",
                 "fashion_mnist", "--data-dir", FASHION, "--out", str(out), "--metrics", "none",
                 "--quiet")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "complete, reused" in again.stdout and "[run_all] stage" not in again.stdout


def _write_corrupt_cifar(folder):
    folder.mkdir()
    (folder / "cifar-100-python.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 not really a tarball")
    return folder


@pytest.mark.parametrize("args, message", [
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--only", "vae/perceptual"], "unknown loss 'perceptual' for family 'vae'"),
    (["--only", "vae@@128"], "bad selector"),
    (["--only", "vae/elbo@999"], "matches no row"),
    (["--only", "vae/elbo@128", "--image-size", "30"], "not divisible"),
    (["--only", "vae/elbo@128", "--dataset", "cifar100", "--data-dir", "CORRUPT"], "corrupt"),
    (["--only", "vae/elbo@128", "--precision", "float16"], "float16 needs a GPU"),
    (["--only", "vae/elbo@128", "--accumulate", "3"], "accumulate 3 does not divide the batch 8"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, args, message):
    if "CORRUPT" in args:
        args = [str(_write_corrupt_cifar(tmp_path / "cifar")) if a == "CORRUPT" else a
                for a in args]
    base = ["--profile", "smoke", "--dataset", "synthetic", "--out", str(tmp_path / "o")]
    code = run_all.main(base + args)
    err = capsys.readouterr().err
    assert code == run_all.EXIT_BAD_INPUT
    assert message in err
    assert not (tmp_path / "o" / "runs").exists()  # nothing trained, nothing half-written


@pytest.mark.parametrize("args, message", [
    (["--accumulate", "0"], "--accumulate 0: give a positive number"),
    (["--precision", "half"], "invalid choice: 'half'"),
    (["--jit", "maybe"], "invalid choice: 'maybe'"),
])
def test_bad_runtime_options_exit_2_before_anything_starts(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        run_all.main(["--profile", "smoke", "--dataset", "synthetic",
                      "--out", str(tmp_path / "o")] + args)
    assert stop.value.code == run_all.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_half_precision_run_is_its_own_run(tmp_path):
    """The precision is in the identity and the folder name of every stage (a bfloat16 run
    never stands in for a float32 one); float32 runs keep the names and identities they
    always had; XLA and accumulation are recorded but not matched (the same update)."""
    from experiments import runner
    from experiments.profiles import get_profile
    from experiments.tables import Selector
    from experiments import table_3_1
    from training.runtime import Runtime

    row = table_3_1.TABLE.select([Selector.parse("diffusion/mse@128")])[0]
    plan = {rt: runner.plan_run(row, 0, get_profile("smoke"), dataset="synthetic",
                                image_size=32, out_dir=str(tmp_path), runtime=rt)
            for rt in (Runtime(), Runtime("bfloat16"), Runtime(jit=True, accumulate=2))}
    plain, half, fast = plan.values()
    assert plain.name == "diffusion-mse-b8-z128-s0" and "precision" not in plain.identity()
    assert half.name == "diffusion-mse-b8-z128-s0-bf16"
    assert half.stages[0].name == "diffusion-autoencoder-z128-s0-bf16"
    assert half.identity()["precision"] == "bfloat16"
    assert half.identity()["inputs"]["autoencoder"]["precision"] == "bfloat16"
    assert half.identity() != plain.identity()
    assert fast.name == plain.name and fast.identity() == plain.identity()


def test_a_half_precision_run_gets_its_own_marked_line(tmp_path, capsys):
    """Two runs of one row, float32 then bfloat16, into one folder: both trained (neither
    reused for the other), two table lines, the bfloat16 one marked and footnoted."""
    args = ["--profile", "smoke", "--dataset", "synthetic", "--only", "vae/elbo@128",
            "--tables", "table_3_1", "--out", str(tmp_path), "--metrics", "none", "--quiet"]
    assert run_all.main(args) == 0
    assert run_all.main(args + ["--precision", "bfloat16"]) == 0
    assert "precision bfloat16 (asked for" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "runs")) == ["vae-elbo-b8-z128-s0",
                                                    "vae-elbo-b8-z128-s0-bf16"]
    with open(tmp_path / "table_3_1.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["trained_in"] for r in rows] == ["", "bfloat16"]
    table = (tmp_path / "table_3_1.md").read_text()
    assert "| VAE (elbo) †1 |" in table and "`--precision bfloat16`" in table
    record = json.loads((tmp_path / "runs" / "vae-elbo-b8-z128-s0-bf16" / "config.json")
                        .read_text())
    assert record["runtime"] == {"precision": "bfloat16", "jit": False, "accumulate": 1}


def test_a_failing_run_does_not_stop_the_others(tmp_path, capsys, monkeypatch):
    import experiments.runner as runner

    real = runner.execute_run

    def flaky(plan, **kwargs):
        if plan.row.latent_size == 2048:
            raise RuntimeError("simulated crash")
        return real(plan, **kwargs)

    monkeypatch.setattr(runner, "execute_run", flaky)
    code = run_all.main(["--profile", "smoke", "--only", "vae/elbo", "--dataset", "synthetic",
                         "--out", str(tmp_path / "o"), "--metrics", "none", "--quiet"])
    err = capsys.readouterr().err
    assert code == run_all.EXIT_RUN_FAILED
    assert "1 run(s) failed: vae-elbo-b8-z2048-s0" in err
    assert (tmp_path / "o" / "runs" / "vae-elbo-b8-z128-s0" / "metrics.json").exists()
    with open(tmp_path / "o" / "table_3_1.csv") as f:
        assert [r["latent_size"] for r in csv.DictReader(f)] == ["128"]


@pytest.mark.slow
def test_a_changed_sampler_preset_samples_finished_runs_again(tmp_path, capsys, monkeypatch):
    """A preset's sampler field (diffusion's guidance scale) changed after a run finished:
    the next command samples it again from its weights instead of refusing or retraining."""
    from models.diffusion import config

    args = ["--profile", "smoke", "--only", "diffusion/mse@128", "--dataset", "synthetic",
            "--out", str(tmp_path / "o"), "--metrics", "none", "--quiet"]
    assert run_all.main(args) == 0
    run = tmp_path / "o" / "runs" / "diffusion-mse-b8-z128-s0"
    trained = json.loads((run / "metrics.json").read_text())
    assert trained["sampler"]["guidance_scale"] == 1.0
    monkeypatch.setitem(config.PRESETS, "smoke", {**config.PRESETS["smoke"],
                                                  "guidance_scale": 3.0})
    capsys.readouterr()
    assert run_all.main(args) == 0
    out = capsys.readouterr().out
    assert "to sample again: guidance_scale 1.0 -> 3.0" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["sampler"]["guidance_scale"] == 3.0
    assert metrics["resampled_from"] == {"guidance_scale": 1.0}
    assert metrics["steps"] == trained["steps"]
    assert metrics["train_seconds"] == trained["train_seconds"]
    assert json.loads((run / "config.json").read_text())["identity"]["family_config"][
        "guidance_scale"] == 3.0
    assert run_all.main(args) == 0  # now the folder holds what is asked for
    assert "diffusion-mse-b8-z128-s0" in (out := capsys.readouterr().out)
    assert "complete, skipped" in out and "to sample again" not in out


@pytest.mark.slow
def test_evaluator_metrics_fill_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    proc = _run("--profile", "smoke", "--only", "vae/elbo@128", "--dataset", "synthetic",
                "--out", str(out), "--metrics", "evaluator", "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "table_3_1.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["metric_network"].startswith("evaluator:synthetic-32x32x3:acc")
    assert row["n_samples"] == "64"
    for key in ("fid", "is", "kid", "precision", "recall"):
        assert np.isfinite(float(row[key])), key
    assert float(row["fid"]) > 0 and float(row["is"]) >= 1.0
    # anyone can score the committed samples again: same network, reference and seed
    from metrics.__main__ import main as metrics_main

    run = out / "runs" / "vae-elbo-b8-z128-s0"
    assert metrics_main(["score", str(run), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "every metric equals the recorded one" in printed
    flipped = np.load(run / "samples.npz")["images"][:, ::-1]  # other images: another score
    np.savez(tmp_path / "flipped.npz", images=flipped)
    assert metrics_main(["score", str(run), "--samples", str(tmp_path / "flipped.npz"),
                         "--quiet"]) == 0
    fid_line = next(line for line in capsys.readouterr().out.splitlines()
                    if line.startswith("fid "))
    recorded, recomputed = map(float, fid_line.split()[1:3])
    assert recorded == pytest.approx(float(row["fid"])) and recomputed != recorded
    (run / "samples.npz").unlink()  # uncommitted samples: the command says how to redraw them
    assert metrics_main(["score", str(run), "--quiet"]) == 2  # bad input: 2 (1: differs)
    assert "python -m experiments.sample" in capsys.readouterr().err
    assert metrics_main(["score", str(tmp_path), "--quiet"]) == 2
    assert "is not a finished run" in capsys.readouterr().err


def test_inception_metrics_offline_without_weights_is_a_clear_error(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "empty-cache"))
    code = run_all.main(["--profile", "smoke", "--only", "vae/elbo@128", "--dataset",
                         "synthetic", "--out", str(tmp_path / "o"), "--metrics", "inception"])
    err = capsys.readouterr().err
    assert code == run_all.EXIT_BAD_INPUT
    assert "--inception-weights" in err and "inception-2015-12-05" in err
