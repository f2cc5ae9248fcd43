"""The autoregressive family trained through the runner: a shared tokenizer, exact resume
of the prior without retraining the tokenizer, loading a finished run, 1 vs 2 replicas."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from experiments.runner import check_builds, check_shared_stages, is_complete
from experiments.sample import main as sample_main, sample_run
from tests.drivers.train_autoregressive import run, tiny_plan
from tests.drivers.train_vae import weights
from common import files as artifacts
from experiments.runs import load_run
from common.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _driver(*args):
    return subprocess.run([sys.executable, "-m", "tests.drivers.train_autoregressive", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def _mtimes(folder):
    return {name: os.stat(os.path.join(folder, name)).st_mtime_ns
            for name in sorted(os.listdir(folder)) if not os.path.isdir(os.path.join(folder, name))}


def _losses(run_dir):
    return [{k: v for k, v in row.items() if k != "wall_s"}
            for row in artifacts.read_csv(os.path.join(run_dir, "history.csv"))]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Two finished rows of one codebook size in one output folder (cross_entropy, then
    mse), trained with op determinism; the tokenizer folder's files as they were after
    the first row."""
    tf.config.experimental.enable_op_determinism()
    out = str(tmp_path_factory.mktemp("finished"))
    ce, mse = tiny_plan(out, "cross_entropy"), tiny_plan(out, "mse")
    check_shared_stages([ce, mse])
    run(ce)
    tok_dir = ce.stages[0].run_dir
    before = _mtimes(tok_dir)
    ckpts = sorted(os.listdir(os.path.join(tok_dir, "checkpoints")))
    metrics = run(mse)
    return ce, mse, before, ckpts, metrics


@pytest.mark.slow
def test_two_loss_rows_share_one_tokenizer_and_reload(finished, tmp_path):
    ce, mse, before, ckpts, metrics = finished
    assert ce.stages[0].run_dir == mse.stages[0].run_dir  # one folder for both rows
    tok_dir = ce.stages[0].run_dir
    assert os.path.basename(tok_dir) == "autoregressive-tokenizer-z128-s0"
    assert is_complete(ce.stages[0]) and is_complete(ce) and is_complete(mse)
    assert _mtimes(tok_dir) == before  # the finished first stage was reused, not rewritten
    assert sorted(os.listdir(os.path.join(tok_dir, "checkpoints"))) == ckpts
    assert metrics["stages"]["tokenizer"]["run"] == "../autoregressive-tokenizer-z128-s0"
    tok_metrics = json.load(open(os.path.join(tok_dir, "metrics.json")))
    assert tok_metrics["codebook_size"] == 128 and tok_metrics["token_grid"] == [8, 8]
    assert tok_metrics["recon_mse"] > 0 and 1 <= tok_metrics["codebook_perplexity"] <= 128
    assert 0 < tok_metrics["codes_used_fraction"] <= 1
    history = artifacts.read_csv(os.path.join(tok_dir, "history.csv"))
    assert {"perplexity", "codes_used", "val_perplexity", "val_codes_used", "restarts"} \
        <= set(history[0])
    assert {"nll", "val_nll"} <= set(artifacts.read_csv(os.path.join(mse.run_dir,
                                                                     "history.csv"))[0])
    for plan in (ce, mse):  # the runs load with one call and sample what they sampled
        saved = np.load(os.path.join(plan.run_dir, "samples.npz"))["images"]
        np.testing.assert_array_equal(sample_run(plan.run_dir, n=len(saved),
                                                 seed=plan.seed + 777), saved)
    loaded = load_run(mse.run_dir)
    assert loaded.family == "autoregressive" and loaded.stage == "prior"
    assert loaded.config.loss == "mse" and loaded.model.tokenizer.num_codes == 128
    a, b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    assert sample_main([ce.run_dir, "--n", "5", "--seed", "3", "--out", a,
                        "--set", "top_k=4", "--set", "temperature=0.5"]) == 0
    assert sample_main([ce.run_dir, "--n", "5", "--seed", "3", "--out", b,
                        "--set", "top_k=4", "--set", "temperature=0.5"]) == 0
    np.testing.assert_array_equal(np.load(a)["images"], np.load(b)["images"])
    assert np.load(a)["images"].shape == (5, 32, 32, 3)
    assert sample_main([ce.run_dir, "--n", "4", "--out", str(tmp_path / "g.png"),
                        "--set", "guidance_scale=2.0"]) == 0


@pytest.mark.slow
def test_bad_sampling_requests_are_refused(finished, capsys):
    plan = finished[0]
    cases = [
        ([plan.run_dir, "--set", "top_k=0"], "top_k must be >= 1"),
        ([plan.run_dir, "--set", "temperature=0"], "temperature must be > 0"),
        ([plan.run_dir, "--set", "guidance_scale=-1"], "guidance_scale must be >= 0"),
        ([plan.run_dir, "--set", "no_such_field=1"], "unknown key"),
        ([plan.stages[0].run_dir], "does not sample"),
    ]
    for argv, message in cases:
        assert sample_main(argv) == 2
        assert message in capsys.readouterr().err


def test_bad_autoregressive_options_fail_before_training(tmp_path):
    with pytest.raises(ConfigError, match="top_k must be >= 1"):
        tiny_plan(str(tmp_path), top_k=0)
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        tiny_plan(str(tmp_path), temperature=0.0)
    with pytest.raises(ConfigError, match="longer than the prior's context_length 16"):
        check_builds(tiny_plan(str(tmp_path), context_length=16), (32, 32, 3))
    # a tokenizer folder holding another codebook size than the row's latent size
    plan = tiny_plan(str(tmp_path))
    tok = plan.stages[0]
    os.makedirs(tok.run_dir)
    identity = tok.identity()
    identity["fields"]["latent_size"] = 2048
    artifacts.write_json(os.path.join(tok.run_dir, "config.json"), {"identity": identity})
    with pytest.raises(ConfigError, match=r"holds a tokenizer stage trained with other settings "
                                          r"\(fields.latent_size: recorded 2048, requested 128\)"):
        check_shared_stages([plan])
    other = tiny_plan(str(tmp_path / "o"), "mse", codebook_decay=0.5)
    with pytest.raises(ConfigError, match="different tokenizer stages"):
        check_shared_stages([tiny_plan(str(tmp_path / "o")), other])


@pytest.mark.slow
def test_killed_prior_resumes_exactly_without_retraining_the_tokenizer(finished, tmp_path):
    straight = finished[0]  # the same plan, run straight through in another folder
    killed_out = str(tmp_path / "killed")
    proc = _driver(killed_out, "--die-at", "3")  # the prior dies after its step 3
    assert proc.returncode == 17, proc.stderr[-3000:]
    killed = tiny_plan(killed_out)
    assert is_complete(killed.stages[0]) and not is_complete(killed)
    tok_files = _mtimes(killed.stages[0].run_dir)
    metrics = run(killed)
    assert metrics["resumed_from_step"] == 2  # epoch 2's first step was done before the kill
    assert _mtimes(killed.stages[0].run_dir) == tok_files
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
    from models import get_family
    from common.config import from_dict
    family = get_family("autoregressive")
    config = from_dict(family.config_cls, family.preset("smoke"))
    tokenizer = family.stages[0].build(config, (32, 32, 3), 8)
    tokenizer(tf.zeros([1, 32, 32, 3]))
    names = [w.path for w in tokenizer.weights]
    assert len(names) == len([k for k in arrays.files if k.startswith("tokenizer_one_")])
    state = 0
    for i, name in enumerate(names):
        one, two = arrays[f"tokenizer_one_{i}"], arrays[f"tokenizer_two_{i}"]
        if name.split("/")[-1] in ("codebook", "ema_sum", "ema_count"):
            # the EMA step and the restarts ran on the same global batch and noise
            np.testing.assert_allclose(two, one, atol=1e-5, rtol=0, err_msg=name)
            state += 1
        else:
            # within a tenth of an Adam step (learning rate 1e-3): a bias feeding a group
            # norm has a gradient that is zero up to rounding, which Adam's first step
            # divides by its own magnitude, so its move is rounding noise either way
            np.testing.assert_allclose(two, one, atol=1e-4, rtol=0, err_msg=name)
    assert state == 3
    n = len([k for k in arrays.files if k.startswith("prior_one_")])
    assert n > 10
    for i in range(n):
        np.testing.assert_allclose(arrays[f"prior_two_{i}"], arrays[f"prior_one_{i}"], atol=1e-5,
                                   rtol=0)


FASHION = "/usr/share/datasets/fashion-mnist"
RUN_FILES = {"config.json", "history.csv", "loss_curves.png", "samples.png", "samples.npz",
             "metrics.json"}
# Three of the six rows (both tables, both codebook sizes, two rows sharing the K=128
# tokenizer) keep the suite short; the six-row command is run for the committed results.
AR_SELECTION = ("autoregressive/cross_entropy@128", "autoregressive/mse@128",
                "autoregressive/perceptual@2048")
AR_RUNS = {"autoregressive-cross_entropy-b8-z128-s0", "autoregressive-mse-b8-z128-s0",
           "autoregressive-perceptual-b8-z2048-s0"}
TOKENIZERS = {f"autoregressive-tokenizer-z{z}-s0" for z in (128, 2048)}


@pytest.mark.skipif(not os.path.isdir(FASHION),
                    reason=f"Debian's dataset-fashion-mnist is not installed ({FASHION} missing); "
                           f"apt-get install -y dataset-fashion-mnist")
@pytest.mark.slow
def test_smoke_rows_through_run_all_share_two_tokenizers_and_sample(tmp_path):
    out = tmp_path / "ar"
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "smoke", "--only",
                           *AR_SELECTION, "--dataset", "fashion_mnist", "--data-dir", FASHION,
                           "--out", str(out), "--metrics", "none", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(os.listdir(out / "runs")) == AR_RUNS | TOKENIZERS
    assert proc.stdout.count("[run_all] stage tokenizer of autoregressive") == 2
    for name in AR_RUNS:
        run_dir = out / "runs" / name
        assert RUN_FILES <= set(os.listdir(run_dir)), name
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert np.isfinite(metrics["train_loss"]) and np.isfinite(metrics["val_loss"])
        z = name.split("-z")[1].split("-")[0]
        assert metrics["stages"]["tokenizer"]["run"] == f"../autoregressive-tokenizer-z{z}-s0"
        assert np.load(run_dir / "samples.npz")["images"].shape == (64, 32, 32, 1)
    for name in TOKENIZERS:
        tok = json.loads((out / "runs" / name / "metrics.json").read_text())
        assert tok["stage"] == "tokenizer" and tok["codebook_size"] == int(name.split("-z")[1][:-3])
    for table, n_rows in (("table_3_1", 1), ("table_3_2", 2)):
        with open(out / f"{table}.csv") as f:
            assert len(f.read().strip().splitlines()) == n_rows + 1
    grid = tmp_path / "grid.png"
    assert sample_main([str(out / "runs" / "autoregressive-perceptual-b8-z2048-s0"), "--n", "4",
                        "--out", str(grid), "--set", "top_k=10"]) == 0
    assert grid.stat().st_size > 0
