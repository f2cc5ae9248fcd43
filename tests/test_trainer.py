"""The shared trainer: exact resume after a hard kill, history and checkpoint files."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from common import files as artifacts
from tests.drivers.train_vae import tiny_run, weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _driver(*args):
    return subprocess.run([sys.executable, "-m", "tests.drivers.train_vae", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _losses(run_dir):
    return [{k: v for k, v in row.items() if k != "wall_s"}
            for row in artifacts.read_csv(os.path.join(run_dir, "history.csv"))]


@pytest.mark.slow
def test_killed_run_resumes_to_identical_weights(tmp_path):
    tf.config.experimental.enable_op_determinism()
    straight = tiny_run(str(tmp_path / "straight"))  # 2 epochs x 2 steps = 4 steps
    assert straight.steps == 4 and straight.resumed_from_step == 0

    killed = str(tmp_path / "killed")
    proc = _driver(killed, "--die-at", "3")  # dies after step 3, before its checkpoint
    assert proc.returncode == 17, proc.stderr[-2000:]
    resumed = tiny_run(killed)
    assert resumed.resumed_from_step == 2  # mid-run: epoch 2, first step done before the kill
    for a, b in zip(weights(straight.model), weights(resumed.model), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _losses(str(tmp_path / "straight")) == _losses(killed)


def test_finished_run_restarts_nothing(tmp_path):
    first = tiny_run(str(tmp_path / "run"))
    again = tiny_run(str(tmp_path / "run"))
    assert again.resumed_from_step == first.steps == again.steps
    for a, b in zip(weights(first.model), weights(again.model), strict=True):
        np.testing.assert_array_equal(a, b)
    files = set(os.listdir(tmp_path / "run"))
    assert {"history.csv", "loss_curves.png", "checkpoints", "samples", "tensorboard"} <= files
    assert sorted(os.listdir(tmp_path / "run" / "samples")) == ["epoch_001.png", "epoch_002.png"]
