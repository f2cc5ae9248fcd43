"""The trainer's side of the runtime options: precision, XLA and accumulation through
``Trainer(runtime=...)``, and a rehearsal's ``max_steps``."""
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from common import files as artifacts
from tests.drivers.train_vae import tiny_run
from training.runtime import Runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_runtime_through_the_trainer(tmp_path):
    """bfloat16, XLA and 2 micro-batches at once: the model is built under the policy (and
    only it: the global policy is float32 again), its steps configured, the run finite."""
    result = tiny_run(str(tmp_path / "run"), loss="wae", epochs=1, steps=2,
                      runtime=Runtime("bfloat16", jit=True, accumulate=2))
    model = result.model
    assert keras.config.dtype_policy().name == "float32"
    assert model.precision == "bfloat16" and model.encoder.compute_dtype == "bfloat16"
    assert model.xla_steps and model.accumulate == 2
    assert result.steps == 2
    row = result.history[-1]
    assert all(np.isfinite(float(row[k])) for k in ("loss", "mmd", "val_loss"))


def test_accumulation_is_checked_before_anything_is_built(tmp_path):
    built = []
    with pytest.raises(ValueError) as err:
        tiny_run(str(tmp_path / "run"), runtime=Runtime(accumulate=3),
                 on_build=lambda: built.append(1))
    assert str(err.value) == "accumulate 3 does not divide the batch 8"
    assert not built and not os.path.exists(tmp_path / "run")


def test_max_steps_stops_every_epoch_loop_and_is_final(tmp_path):
    """2 epochs x 2 steps planned, max_steps 3: the stage ends after step 3, mid-epoch 2,
    with that partial epoch reported and checkpointed; run again, it trains nothing; a
    longer run in its folder is refused; 0 is refused."""
    run_dir = str(tmp_path / "rehearsal")
    first = tiny_run(run_dir, max_steps=3)
    assert first.steps == 3 and first.stopped_at_max_steps
    rows = artifacts.read_csv(os.path.join(run_dir, "history.csv"))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    again = tiny_run(run_dir, max_steps=3)
    assert again.steps == 3 and again.resumed_from_step == 3 and again.stopped_at_max_steps
    with pytest.raises(ValueError, match="cannot continue as a longer run"):
        tiny_run(run_dir)
    whole = tiny_run(str(tmp_path / "whole"), max_steps=10)  # more than planned: the plan
    assert whole.steps == 4 and not whole.stopped_at_max_steps
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_steps must be a positive integer"):
            tiny_run(str(tmp_path / "bad"), max_steps=bad)


@pytest.mark.slow
def test_two_replicas_with_accumulation_equal_one_device(tmp_path):
    """WAE (the batch-spanning MMD) on 2 replicas x 2 micro-batches equals one device with
    the whole batch: the exact gathering holds across replicas too."""
    out = tmp_path / "compare.npz"
    proc = subprocess.run([sys.executable, "-m", "tests.drivers.train_vae", str(tmp_path),
                           "--loss", "wae", "--mirrored-compare", str(out), "--accumulate", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = np.load(out)
    n = len([k for k in data.files if k.startswith("one_")])
    moved = 0.0
    for i in range(n):
        np.testing.assert_allclose(data[f"two_{i}"], data[f"one_{i}"], rtol=0, atol=1e-5)
        moved = max(moved, float(np.abs(data[f"one_{i}"] - data[f"init_{i}"]).max()))
    assert moved > 1e-4
