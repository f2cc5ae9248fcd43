"""GAN family under tf.distribute: two replicas compute what one device does.

Covers the cross-replica pieces: per-replica shares of the losses, the gradient
penalty's per-example interpolation and double backprop, ADA's all-gathered
statistic and p, the EMA update in replica context, minibatch-stddev groups.
Logical CPU devices must be configured before TensorFlow starts, so the runs
happen in a child process (this file, run as `python -m tests.test_gan_distribution`).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_two_replicas_match_one_device(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tests.test_gan_distribution", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    arrays = np.load(tmp_path / "weights.npz")
    n = len([k for k in arrays.files if k.startswith("one_") and k[4:].isdigit()])
    assert n > 0 and n == len([k for k in arrays.files if k.startswith("two_") and k[4:].isdigit()])
    for i in range(n):
        np.testing.assert_allclose(arrays[f"two_{i}"], arrays[f"one_{i}"], atol=2e-5, rtol=0)
    np.testing.assert_allclose(arrays["two_logs"], arrays["one_logs"], rtol=1e-4, atol=1e-5)
    assert arrays["one_logs"][list(arrays["log_keys"]).index("ada_p")] > 0


def _main(out_dir):
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    # Graph optimisation costs more than these tiny steps; both runs skip it alike.
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

    from training.config import TrainConfig
    from training.trainer import Trainer
    from models import get_family
    from models.gan.config import GANConfig
    from tests.test_gan_training import BATCH, SIZE, TINY, TinySource

    # Adam's epsilon 1e-4 (not 1e-8): Adam turns a gradient that is 0 up to float
    # rounding (~1e-9, summed in another order on two replicas) into a step of size
    # ~lr; a larger epsilon keeps such noise below the tolerance.
    # d_steps = 2: each replica's slice holds its share of both critic batches
    config = GANConfig(**{**TINY, "loss": "wasserstein_gp", "d_steps": 2, "epsilon": 1e-4, "ada": True, "ada_interval": 1, "ada_kimg": 0.01, "ada_target": -2.0,
                          "diffaugment": "color,translation,cutout"})
    family = get_family("gan")
    out = {}
    strategies = {"one": tf.distribute.get_strategy(),
                  "two": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
    for name, strategy in strategies.items():
        trainer = Trainer(lambda: family.build(config, (SIZE, SIZE, 3), BATCH, seed=5),
                          TinySource(), None,
                          TrainConfig(epochs=1, steps_per_epoch=2,
                                      checkpoint_every=0, grid_size=2),
                          global_batch_size=BATCH, run_dir=os.path.join(out_dir, name),
                          strategy=strategy, verbose=False)
        result = trainer.fit()
        model = result.model
        variables = (model.discriminator.weights + model.generator_weights + model.ema_weights
                     + [model.ada_p, model.ada_sign_sum, model.ada_count])
        for i, v in enumerate(variables):
            out[f"{name}_{i}"] = np.asarray(v.numpy())
        row = result.history[-1]
        keys = sorted(k for k in row if k not in ("epoch", "wall_s"))
        out[f"{name}_logs"] = np.array([float(row[k]) for k in keys])
        out["log_keys"] = np.array(keys)
    np.savez(os.path.join(out_dir, "weights.npz"), **out)


if __name__ == "__main__":
    _main(sys.argv[1])
