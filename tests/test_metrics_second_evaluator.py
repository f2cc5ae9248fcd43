"""The second evaluator (metrics/contrastive.py), both evaluators on one set of images
(metrics/second_opinion.py) and the rank agreement of two metrics (metrics/agreement.py).

Training here is tiny (width 4, a few hundred 16x16 synthetic images): what is tested is
that two trainings in the pinned process give identical weights, and that the pieces fit;
the committed evaluator's own numbers are in its info.json."""
import json
import math
import os

import numpy as np
import pytest

from metrics.agreement import not_robust, pairwise_orders, rank_agreement, spearman
from metrics.errors import MetricsError

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
HAVE_FASHION = os.path.isfile(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))


def _tiny(**changes):
    from metrics.contrastive import ContrastiveConfig

    values = dict(width=4, projection_dim=8, epochs=1, batch_size=32, max_train_examples=128,
                  max_test_examples=64, knn_k=5, seed=3)
    values.update(changes)
    return ContrastiveConfig(**values)


# --------------------------------------------------------------------------------------
# Determinism and the saved evaluator
# --------------------------------------------------------------------------------------
def _train_in_pinned_process(folder):
    from metrics.contrastive import train_contrastive_in_subprocess

    train_contrastive_in_subprocess("synthetic", (16, 16, 1), folder, config=_tiny(),
                                    verbose=False)
    return json.loads((folder / "info.json").read_text())


def test_training_twice_in_the_pinned_process_gives_identical_weights(tmp_path):
    first = _train_in_pinned_process(tmp_path / "a")
    second = _train_in_pinned_process(tmp_path / "b")
    assert first["runtime"]["pinned"] and first["runtime"]["onednn"] == "0"
    assert first["runtime"]["intra_op_threads"] == 2 and first["runtime"]["inter_op_threads"] == 1
    assert first["format"] == "contrastive-1" and first["objective"] == "simclr-nt-xent"
    assert first["image_shape"] == [16, 16, 1] and first["feature_dim"] == 16
    assert first["weights_sha256"] == second["weights_sha256"]
    assert ((tmp_path / "a" / "weights.weights.h5").read_bytes()
            == (tmp_path / "b" / "weights.weights.h5").read_bytes())
    assert first["history"] == second["history"]


@pytest.fixture(scope="module")
def synthetic_sources():
    from data import open_dataset

    kwargs = dict(image_size=16, channels=1)
    return (open_dataset("synthetic", "train", limit=256, **kwargs),
            open_dataset("synthetic", "test", limit=64, **kwargs))


def test_trained_in_process_saved_reloaded_and_refused_when_damaged(tmp_path, synthetic_sources):
    from metrics.contrastive import (contrastive_cache_dir, contrastive_network,
                                     load_contrastive, load_or_train_contrastive)
    from metrics.features import FeatureRunner

    train, test = synthetic_sources
    model, info = load_or_train_contrastive("synthetic", train.image_shape, cache_dir=tmp_path,
                                            train_src=train, test_src=test, config=_tiny(),
                                            verbose=False)
    folder = contrastive_cache_dir(tmp_path, "synthetic", train.image_shape)
    assert (folder / "info.json").is_file() and not info["runtime"]["pinned"]
    assert 0.0 <= info["knn_accuracy"] <= 1.0 and math.isfinite(info["test_nt_xent"])
    again, info_again = load_or_train_contrastive("synthetic", train.image_shape,
                                                  cache_dir=tmp_path, verbose=False)
    assert info_again["weights_sha256"] == info["weights_sha256"]
    images = train.arrays()[0][:10].astype(np.float32) / 127.5 - 1.0
    network = contrastive_network(again, info_again)
    features, _ = FeatureRunner(network)(images)
    assert features.shape == (10, network.feature_dim) and not network.logits_are_meaningful
    assert network.label.startswith("evaluator2:") and network.cache_key.startswith("evaluator2-")
    reference, _ = FeatureRunner(contrastive_network(model, info))(images)
    np.testing.assert_array_equal(features, reference)
    # weights that do not match the recorded SHA-256 are refused, with the folder named
    weights = folder / "weights.weights.h5"
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(MetricsError, match="damaged"):
        load_contrastive(folder)


def test_augment_is_a_function_of_its_seed():
    import tensorflow as tf

    from metrics.contrastive import augment, nt_xent

    images = tf.constant(np.linspace(-1, 1, 4 * 8 * 8).reshape(4, 8, 8, 1), tf.float32)
    seed = tf.constant([5, 7], tf.int64)
    a, b = augment(images, seed), augment(images, seed)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a.shape == images.shape
    assert float(tf.reduce_min(a)) >= -1 and float(tf.reduce_max(a)) <= 1
    assert not np.array_equal(a.numpy(), augment(images, tf.constant([5, 8], tf.int64)).numpy())
    # no crop, no shift, no intensity change: every view is the image or its mirror image
    plain = augment(images, seed, max_shift=0, intensity_range=(1.0, 1.0),
                    crop_scale=(1.0, 1.0)).numpy()
    for view, image in zip(plain, images.numpy()):
        assert (np.allclose(view, image, atol=1e-6)
                or np.allclose(view, image[:, ::-1], atol=1e-6))
    # identical views: every row's most similar other row is its positive
    z = tf.constant(np.random.default_rng(0).normal(size=(6, 4)), tf.float32)
    loss, top1 = nt_xent(tf.concat([z, z], 0), 0.2)
    assert float(top1) == 1.0 and float(loss) > 0


@pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST idx files not in {FASHION_DIR}")
def test_the_committed_second_evaluator_is_intact():
    from metrics.contrastive import contrastive_shipped_dir, load_contrastive
    from metrics.evaluator import shipped_dir

    folder = contrastive_shipped_dir("fashion_mnist", (32, 32, 1))
    if not folder.is_dir():
        pytest.skip(f"{folder} is not in this checkout")
    model, info = load_contrastive(folder)  # refused if the SHA-256 differs
    assert info["runtime"]["pinned"] and info["dataset"] == "fashion_mnist"
    assert info["knn_accuracy"] > 0.7 and info["feature_dim"] == 64
    # independent of the first: another network, another digest, another folder tree
    first = json.loads((shipped_dir("fashion_mnist", (32, 32, 1)) / "info.json").read_text())
    assert first["weights_sha256"] != info["weights_sha256"] and first["task"] == "classes"


@pytest.mark.skipif(not HAVE_FASHION, reason=f"Fashion-MNIST idx files not in {FASHION_DIR}")
def test_score_both_gives_the_first_evaluators_numbers_and_the_second(tmp_path):
    """Both evaluators through the runs' pipeline: the first evaluator's numbers are those
    of compute_metrics for the same images, reference and seed."""
    from data import open_dataset
    from metrics import compute_metrics
    from metrics.contrastive import contrastive_shipped_dir
    from metrics.features import uint8_batches
    from metrics.second_opinion import BOTH_KEYS, score_both

    if not contrastive_shipped_dir("fashion_mnist", (32, 32, 1)).is_dir():
        pytest.skip("the committed second evaluator is not in this checkout")
    kwargs = dict(image_size=32, channels=1, data_dir=FASHION_DIR)
    images = open_dataset("fashion_mnist", "test", limit=300, **kwargs).arrays()[0]
    both = score_both(images, cache_dir=tmp_path, data_dir=FASHION_DIR, seed=2,
                      reference_limit=1000)
    assert tuple(both) == BOTH_KEYS and both["n_samples"] == 300
    real = open_dataset("fashion_mnist", "train", limit=1000, **kwargs)
    first = compute_metrics(uint8_batches(images), real, network="evaluator", n_samples=300,
                            cache_dir=tmp_path, data_dir=FASHION_DIR, seed=2, progress=False)
    assert both["fd_eval"] == first["fid"] and both["kid"] == first["kid"]
    assert both["precision"] == first["precision"] and both["is_eval"] == first["is"]
    assert both["metric_network"] == first["metric_network"]
    assert both["metric_network2"].startswith("evaluator2:") and both["metric_network2_sha256"]
    assert all(math.isfinite(both[k]) for k in ("fd_eval2", "kid_eval2", "precision_eval2",
                                                "recall_eval2"))
    with pytest.raises(MetricsError, match="uint8"):
        score_both(images.astype(np.float32), cache_dir=tmp_path, data_dir=FASHION_DIR)


# --------------------------------------------------------------------------------------
# Rank agreement
# --------------------------------------------------------------------------------------
def test_spearman_on_a_hand_computed_case():
    # ranks 1 2 3 4 against 1 3 2 4: d = 0, -1, 1, 0; rho = 1 - 6 * 2 / (4 * 15) = 0.8
    result = spearman([1.0, 2.0, 3.0, 4.0], [10.0, 30.0, 20.0, 40.0])
    assert result["rho"] == pytest.approx(0.8) and result["n"] == 4
    # monotone but not linear: 1; reversed: -1
    assert spearman([1, 2, 3, 4, 5], [1, 4, 9, 16, 100])["rho"] == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1])["rho"] == pytest.approx(-1.0)
    # ties take the average rank: a = 1 2 3 4 5, b's ranks 1 2.5 2.5 4 5
    # rho = Pearson of the ranks = 9.5 / sqrt(10 * 9.5)
    tied = spearman([1, 2, 3, 4, 5], [1, 2, 2, 4, 5])["rho"]
    assert tied == pytest.approx(9.5 / math.sqrt(10 * 9.5))
    # NaN pairs are left out; too few runs or a constant metric give NaN
    assert spearman([1, 2, math.nan, 3], [1, 2, 5, 3]) == pytest.approx(
        {"rho": 1.0, "p": 0.0, "n": 3}, abs=1e-9)
    assert math.isnan(spearman([1, 2], [2, 1])["rho"])
    assert math.isnan(spearman([1, 2, 3], [4, 4, 4])["rho"])
    with pytest.raises(ValueError):
        spearman([1, 2, 3], [1, 2])


def test_rank_agreement_and_the_not_robust_flag():
    rows = [{"run": "a", "fd_eval": 1.0, "fd_eval2": 10.0},
            {"run": "b", "fd_eval": 2.0, "fd_eval2": 30.0},
            {"run": "c", "fd_eval": 3.0, "fd_eval2": 20.0},
            {"run": "d", "fd_eval": 4.0, "fd_eval2": 40.0}]
    agreement = rank_agreement(rows, "fd_eval", "fd_eval2")
    assert agreement["rho"] == pytest.approx(0.8) and agreement["a"] == "fd_eval"
    orders = pairwise_orders(rows, "fd_eval", "fd_eval2")
    assert len(orders) == 6
    flagged = not_robust(rows, "fd_eval", "fd_eval2")
    assert [(f["first"], f["second"]) for f in flagged] == [("b", "c")]
    item = flagged[0]
    assert item["better_by_a"] == "b" and item["better_by_b"] == "c"
    assert item["verdict"] == "not robust"
    assert all(o["verdict"] == "robust" for o in orders if (o["first"], o["second"]) != ("b", "c"))
    # only the named pairs; higher-is-better metrics; a tie on one side is not robust
    named = pairwise_orders(rows, "fd_eval", "fd_eval2", pairs=[("c", "b")], lower_is_better=False)
    assert len(named) == 1 and named[0]["better_by_a"] == "c" and not named[0]["robust"]
    tie = [{"run": "x", "m": 1.0, "n": 1.0}, {"run": "y", "m": 1.0, "n": 2.0}]
    assert not pairwise_orders(tie, "m", "n")[0]["robust"]
    both_tied = [{"run": "x", "m": 1.0, "n": 1.0}, {"run": "y", "m": 1.0, "n": 1.0}]
    assert pairwise_orders(both_tied, "m", "n")[0]["robust"]
    with pytest.raises(ValueError, match="no row named"):
        pairwise_orders(rows, "fd_eval", "fd_eval2", pairs=[("a", "zz")])


# --------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train-evaluator2", "calibrate", "second-opinion"])
def test_the_new_commands_answer_help_and_bad_input_without_tensorflow(command, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = ("import sys\nfrom metrics.__main__ import main\n"
            "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
            "print('RESULT', code, 'tensorflow' in sys.modules)")
    bad = {"train-evaluator2": ["--out", str(tmp_path), "--channels", "2"],
           "calibrate": ["--out", str(tmp_path / "c.csv"), "--n", "5"],
           "second-opinion": [str(tmp_path / "missing"), "--out", str(tmp_path / "s.csv")]}
    for args, expected in (([command, "--help"], "0"), ([command, *bad[command]], "2")):
        done = subprocess.run([sys.executable, "-c", code, *args], cwd=root, capture_output=True,
                              text=True, timeout=120)
        assert done.stdout.split()[-3:] == ["RESULT", expected, "False"], (args, done.stderr)
