"""The diffusion family trained through the runner: shared first stage, exact resume of
stage 2 without retraining stage 1, loading a finished run, 1 vs 2 replicas."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from experiments.runner import check_shared_stages, is_complete
from experiments.sample import main as sample_main, sample_run
from tests.drivers.train_diffusion import run, tiny_plan
from tests.drivers.train_vae import weights
from common import files as artifacts
from experiments.runs import RunLoadError, load_run
from common.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _driver(*args):
    return subprocess.run([sys.executable, "-m", "tests.drivers.train_diffusion", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def _mtimes(folder):
    return {name: os.stat(os.path.join(folder, name)).st_mtime_ns
            for name in sorted(os.listdir(folder)) if not os.path.isdir(os.path.join(folder, name))}


def _losses(run_dir):
    return [{k: v for k, v in row.items() if k != "wall_s"}
            for row in artifacts.read_csv(os.path.join(run_dir, "history.csv"))]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Two finished rows of one latent size in one output folder (mse, then mae), trained
    with op determinism; the autoencoder folder's files as they were after the first row."""
    tf.config.experimental.enable_op_determinism()
    out = str(tmp_path_factory.mktemp("finished"))
    mse, mae = tiny_plan(out, "mse"), tiny_plan(out, "mae")
    check_shared_stages([mse, mae])
    run(mse)
    ae_dir = mse.stages[0].run_dir
    before = _mtimes(ae_dir)
    ckpts = sorted(os.listdir(os.path.join(ae_dir, "checkpoints")))
    metrics = run(mae)
    return mse, mae, before, ckpts, metrics


@pytest.mark.slow
def test_two_loss_rows_share_one_autoencoder_and_reload(finished, tmp_path):
    mse, mae, before, ckpts, metrics = finished
    assert mse.stages[0].run_dir == mae.stages[0].run_dir  # one folder for both rows
    assert os.path.basename(mse.stages[0].run_dir) == "diffusion-autoencoder-z128-s0"
    ae_dir = mse.stages[0].run_dir
    assert is_complete(mse.stages[0]) and is_complete(mse) and is_complete(mae)
    # the finished first stage was reused: not one of its files was rewritten
    assert _mtimes(ae_dir) == before
    assert sorted(os.listdir(os.path.join(ae_dir, "checkpoints"))) == ckpts
    assert metrics["stages"]["autoencoder"]["run"] == "../diffusion-autoencoder-z128-s0"
    ae_metrics = json.load(open(os.path.join(ae_dir, "metrics.json")))
    assert ae_metrics["latent_shape"] == [4, 4, 8] and ae_metrics["recon_mse"] > 0
    # the runs load with one call, and sample what the run itself sampled
    for plan in (mse, mae):
        saved = np.load(os.path.join(plan.run_dir, "samples.npz"))["images"]
        again = sample_run(plan.run_dir, n=len(saved), seed=plan.seed + 777)
        np.testing.assert_array_equal(again, saved)
    loaded = load_run(mae.run_dir)
    assert loaded.family == "diffusion" and loaded.stage == "denoiser"
    assert loaded.config.loss == "mae" and loaded.model.autoencoder is not None
    assert float(loaded.model.latent_scale.numpy()) == pytest.approx(
        1.0 / ae_metrics["latent_std"], rel=0.2)
    # the sampling command: deterministic in the seed, .png and .npz
    a, b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    assert sample_main([mse.run_dir, "--n", "5", "--seed", "3", "--out", a]) == 0
    assert sample_main([mse.run_dir, "--n", "5", "--seed", "3", "--out", b,
                        "--set", "guidance_scale=1.0"]) == 0
    np.testing.assert_array_equal(np.load(a)["images"], np.load(b)["images"])
    assert np.load(a)["images"].shape == (5, 32, 32, 3)
    assert sample_main([mse.run_dir, "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert os.path.getsize(tmp_path / "g.png") > 0


@pytest.mark.slow
def test_bad_sampling_requests_are_refused(finished, tmp_path, capsys):
    plan = finished[0]
    cases = [
        ([plan.run_dir, "--set", "sampler=euler"], "unknown diffusion sampler"),
        ([plan.run_dir, "--set", "guidance_scale=-1"], "guidance_scale must be >= 0"),
        ([plan.run_dir, "--set", "no_such_field=1"], "unknown key"),
        ([plan.stages[0].run_dir], "does not sample"),
        ([str(tmp_path)], "not a run folder"),
        ([plan.run_dir, "--out", str(tmp_path / "x.jpg")], "end it in .png"),
    ]
    for argv, message in cases:
        assert sample_main(argv) == 2
        assert message in capsys.readouterr().err
    # a finished run whose newest checkpoint is damaged does not silently load older weights
    shutil.copytree(os.path.dirname(plan.run_dir), tmp_path / "runs")
    damaged = tmp_path / "runs" / os.path.basename(plan.run_dir)
    for shard in (damaged / "checkpoints").glob("*.data-*"):
        shard.write_bytes(shard.read_bytes()[:10])
    with pytest.raises(RunLoadError, match="is damaged"):
        load_run(str(damaged))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    for name in ("config.json",):
        (unfinished / name).write_bytes(open(os.path.join(plan.run_dir, name), "rb").read())
    with pytest.raises(RunLoadError, match="unfinished run"):
        load_run(str(unfinished))


@pytest.mark.slow
def test_a_new_sampler_setting_samples_a_finished_run_again_without_training(finished,
                                                                             tmp_path):
    """guidance_scale is a sampler field: asking a finished run for another value draws
    and scores new samples from the same weights; other fields are refused."""
    from experiments.runner import (RunError, check_reusable, resample_run,
                                    sampler_changes)
    from tests.drivers.stages import sources

    old = finished[0]
    out = tmp_path / "out"
    shutil.copytree(os.path.dirname(os.path.dirname(old.run_dir)), out)
    plan = tiny_plan(str(out), "mse", guidance_scale=2.0)
    assert sampler_changes(plan) == {"guidance_scale": (1.0, 2.0)}
    check_reusable(plan)  # not an error: only the sampler differs
    with pytest.raises(RunError, match="learning_rate"):
        check_reusable(tiny_plan(str(out), "mse", learning_rate=0.5, guidance_scale=2.0))
    before = json.loads(open(os.path.join(plan.run_dir, "metrics.json")).read())
    old_images = np.load(os.path.join(plan.run_dir, "samples.npz"))["images"]
    kept = {name: os.stat(os.path.join(plan.run_dir, name)).st_mtime_ns
            for name in ("history.csv", "loss_curves.png")}
    scored = []

    def score(batches, n, seed):  # records what it was given; a stand-in metric
        images = np.concatenate(list(batches))
        scored.append(images)
        return {"metric_network": "test", "fid": float(images.mean()), "n_samples": n}

    train, val = sources()
    metrics = resample_run(plan, train_source=train, val_source=val,
                           strategy=tf.distribute.get_strategy(), score=score)
    images = np.load(os.path.join(plan.run_dir, "samples.npz"))["images"]
    assert not np.array_equal(images, old_images)  # guidance changed the samples
    # the same images as sampling the run with the setting, and exactly those were scored
    np.testing.assert_array_equal(
        sample_run(old.run_dir, n=len(images), seed=plan.seed + 777,
                   settings={"guidance_scale": 2.0}), images)
    np.testing.assert_allclose(scored[0], images.astype(np.float32) / 127.5 - 1.0)
    assert metrics["fid"] == pytest.approx(float(scored[0].mean()))
    assert metrics["sampler"]["guidance_scale"] == 2.0
    assert metrics["resampled_from"] == {"guidance_scale": 1.0}
    for key in ("steps", "train_seconds", "train_loss", "val_loss"):
        assert metrics[key] == before[key], key
    assert {name: os.stat(os.path.join(plan.run_dir, name)).st_mtime_ns
            for name in kept} == kept
    assert json.loads(open(os.path.join(plan.run_dir, "metrics.json")).read()) == metrics
    assert sampler_changes(plan) == {} and is_complete(plan)
    assert load_run(plan.run_dir).config.guidance_scale == 2.0
    # without a scorer the old numbers are not left beside the new samples
    back = tiny_plan(str(out), "mse")
    cleared = resample_run(back, train_source=train, val_source=val,
                           strategy=tf.distribute.get_strategy())
    assert cleared["fid"] is None and cleared["metric_network"] == "not computed"
    np.testing.assert_array_equal(
        np.load(os.path.join(plan.run_dir, "samples.npz"))["images"], old_images)


def test_bad_diffusion_options_fail_before_training(tmp_path):
    with pytest.raises(ConfigError, match="unknown diffusion sampler"):
        tiny_plan(str(tmp_path), sampler="euler")
    with pytest.raises(ConfigError, match="guidance_scale must be >= 0"):
        tiny_plan(str(tmp_path), guidance_scale=-2.0)
    # a first-stage folder left by another dataset or image size is refused up front
    plan = tiny_plan(str(tmp_path))
    ae = plan.stages[0]
    os.makedirs(ae.run_dir)
    identity = ae.identity()
    identity.update(dataset="fashion_mnist", image_size=64)
    artifacts.write_json(os.path.join(ae.run_dir, "config.json"), {"identity": identity})
    with pytest.raises(ConfigError, match="other settings \\(dataset: recorded 'fashion_mnist', "
                                          "requested 'synthetic'; image_size: recorded 64"):
        check_shared_stages([plan])
    # two rows that would share the folder but disagree on the autoencoder
    other = tiny_plan(str(tmp_path / "o"), "mae", ae_learning_rate=0.5)
    with pytest.raises(ConfigError, match="different autoencoder stages"):
        check_shared_stages([tiny_plan(str(tmp_path / "o")), other])


@pytest.mark.slow
def test_killed_denoiser_resumes_exactly_without_retraining_the_autoencoder(finished, tmp_path):
    straight = finished[0]  # the same plan, run straight through in another folder
    killed_out = str(tmp_path / "killed")
    proc = _driver(killed_out, "--die-at", "3")  # the denoiser dies after its step 3
    assert proc.returncode == 17, proc.stderr[-3000:]
    killed = tiny_plan(killed_out)
    assert is_complete(killed.stages[0]) and not is_complete(killed)
    ae_files = _mtimes(killed.stages[0].run_dir)
    metrics = run(killed)
    assert metrics["resumed_from_step"] == 2  # epoch 2's first step was done before the kill
    assert _mtimes(killed.stages[0].run_dir) == ae_files
    for a, b in zip(weights(load_run(straight.run_dir).model),
                    weights(load_run(killed.run_dir).model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _losses(straight.run_dir) == _losses(killed.run_dir)
    np.testing.assert_array_equal(np.load(os.path.join(straight.run_dir, "samples.npz"))["images"],
                                  np.load(os.path.join(killed.run_dir, "samples.npz"))["images"])


@pytest.mark.slow
def test_mirrored_two_cpus_equals_one_device(tmp_path):
    out = tmp_path / "weights.npz"
    proc = _driver(str(tmp_path), "--mirrored-compare", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    arrays = np.load(out)
    n = len([k for k in arrays.files if k.startswith("one_") and k != "one_scale"])
    assert n > 10
    np.testing.assert_array_equal(arrays["one_scale"], arrays["two_scale"])
    for i in range(n):
        np.testing.assert_allclose(arrays[f"two_{i}"], arrays[f"one_{i}"], atol=1e-5, rtol=0)
    # the step did something: the U-Net's output convolution starts at zero (its kernel
    # and bias are the denoiser's last two weights) and has moved
    assert np.abs(arrays[f"one_{n // 2 - 2}"]).max() > 0


@pytest.mark.slow
def test_first_stage_reconstructions_are_scored_like_samples(tmp_path):
    from experiments.runner import execute_stage
    from tests.drivers.train_diffusion import sources

    seen = []

    def score(batches, n_samples, seed):  # records what the metric function was given
        images = np.concatenate(list(batches))
        seen.append((images.shape, n_samples, float(images.min()), float(images.max())))
        return {"fid": 1.5, "metric_network": "test"}

    train, val = sources()
    plan = tiny_plan(str(tmp_path)).stages[0]
    metrics = execute_stage(plan, train_source=train, val_source=val,
                            strategy=tf.distribute.get_strategy(), verbose=False, score=score,
                            n_samples=12)
    assert seen == [((12, 32, 32, 3), 12, seen[0][2], seen[0][3])]
    assert -1.0 <= seen[0][2] <= seen[0][3] <= 1.0
    assert metrics["reconstruction_metrics"] == {"images": "12 reconstructed test images",
                                                 "fid": 1.5, "metric_network": "test"}
