"""Trains a tiny VAE on synthetic data; used by the tests in a fresh process.

    python -m tests.drivers.train_vae RUN_DIR [--die-at STEP] [--loss L]
        [--mirrored-compare OUT.npz]

--die-at: the process exits hard (os._exit, no cleanup, like SIGKILL) when
step STEP finishes, before that step's checkpoint is written.
--mirrored-compare: train one step on 1 device and on 2 logical CPUs with
MirroredStrategy, on the same global batch, and save both weight sets.
--accumulate K: the 2-replica run of --mirrored-compare accumulates K micro-batches per
replica (the 1-device run none).
"""
import argparse
import os
import sys

import keras
import numpy as np
import tensorflow as tf


def tiny_run(run_dir, loss="elbo", strategy=None, epochs=2, steps=2, callbacks=(), batch=8,
             build_only=False, runtime=None, max_steps=None, on_build=None):
    from data import open_dataset
    from common.config import from_dict
    from training.config import TrainConfig
    from training.trainer import Trainer
    from models import get_family

    family = get_family("vae")
    config = from_dict(family.config_cls, {"widths": (8, 16), "batch_size": batch,
                                           "latent_size": 16, "loss": loss})
    train = open_dataset("synthetic", "train", limit=64)
    val = open_dataset("synthetic", "test", limit=16)
    if build_only:  # the seeded initial weights, as the trainer creates them
        keras.utils.set_random_seed(0)
        model = family.build(config, train.image_shape, batch, seed=3)
        model(tf.zeros([1, *model.image_shape]))
        return model
    def build():
        if on_build is not None:
            on_build()
        return family.build(config, train.image_shape, batch, seed=3)

    trainer = Trainer(build, train, val,
                      TrainConfig(epochs=epochs, steps_per_epoch=steps, val_batches=1,
                                  checkpoint_every=1, grid_size=2),
                      global_batch_size=batch, run_dir=run_dir, strategy=strategy,
                      extra_callbacks=callbacks, verbose=False, runtime=runtime,
                      max_steps=max_steps)
    return trainer.fit()


class DieAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, step, logs=None):
        if step == self.step:
            sys.stdout.flush()
            os._exit(17)


def weights(model):
    return [np.asarray(w) for w in model.weights]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--die-at", type=int, default=None)
    parser.add_argument("--loss", default="elbo")
    parser.add_argument("--mirrored-compare", default=None)
    parser.add_argument("--accumulate", type=int, default=1)
    args = parser.parse_args()
    tf.config.experimental.enable_op_determinism()
    if args.mirrored_compare:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        one = tiny_run(os.path.join(args.run_dir, "one"), args.loss, epochs=1, steps=1)
        init = tiny_run(os.path.join(args.run_dir, "init"), args.loss, epochs=1, steps=1,
                        build_only=True)
        mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        runtime = None
        if args.accumulate > 1:
            from training.runtime import Runtime
            runtime = Runtime(accumulate=args.accumulate)
        two = tiny_run(os.path.join(args.run_dir, "two"), args.loss, mirrored, epochs=1, steps=1,
                       runtime=runtime)
        np.savez(args.mirrored_compare,
                 **{f"init_{i}": w for i, w in enumerate(weights(init))},
                 **{f"one_{i}": w for i, w in enumerate(weights(one.model))},
                 **{f"two_{i}": w for i, w in enumerate(weights(two.model))})
        return
    callbacks = [DieAt(args.die_at)] if args.die_at else []
    tiny_run(args.run_dir, args.loss, callbacks=callbacks)


if __name__ == "__main__":
    main()
