"""Runs tiny diffusion rows (autoencoder stage, then denoiser) through the runner;
used by the tests, in a fresh process where a test needs one.

    python -m tests.drivers.train_diffusion OUT [--die-at STEP] [--loss L]
    python -m tests.drivers.train_diffusion OUT --mirrored-compare WEIGHTS.npz

--die-at: the process exits hard (os._exit) when the *denoiser* finishes step
STEP, before that step's checkpoint; the autoencoder stage has finished by then.
--mirrored-compare: train the shared autoencoder once, then one denoiser step on
1 device and on 2 logical CPUs (MirroredStrategy) from the same start, and save
both denoisers' weights (and their EMA copies).
"""
import argparse
import os

import numpy as np
import tensorflow as tf

from tests.drivers.train_vae import DieAt, weights

SIZE = 32


def sources():
    from data import open_dataset
    return (open_dataset("synthetic", "train", image_size=SIZE, limit=64),
            open_dataset("synthetic", "test", image_size=SIZE, limit=16))


def tiny_plan(out_dir, loss="mse", latent=128, **overrides):
    """The smoke-profile plan of diffusion/<loss>@<latent> on synthetic data."""
    from experiments.profiles import get_profile
    from experiments.runner import plan_run
    from experiments.tables import Row

    row = Row(table="table_3_1", family="diffusion", model="Stable Diffusion", loss=loss,
              batch_size=8, latent_size=latent)
    return plan_run(row, 0, get_profile("smoke"), dataset="synthetic", image_size=SIZE,
                    out_dir=out_dir, num_classes=10, overrides=overrides or None)


def run(plan, strategy=None, callbacks=()):
    from experiments.runner import execute_run
    train, val = sources()
    return execute_run(plan, train_source=train, val_source=val,
                       strategy=strategy or tf.distribute.get_strategy(), verbose=False,
                       extra_callbacks=callbacks)


def one_denoiser_step(plan, run_dir, strategy):
    """One step of the denoiser of ``plan`` (its autoencoder already trained) in run_dir."""
    from experiments.runner import _build_with_inputs
    from models import get_family
    from training.config import TrainConfig
    from training.trainer import Trainer

    family = get_family("diffusion")
    train, val = sources()
    build = _build_with_inputs(family, family.final_stage, plan, 8, train.image_shape)
    trainer = Trainer(build, train, val, TrainConfig(epochs=1, steps_per_epoch=1, val_batches=1,
                                                     checkpoint_every=0, grid_size=2),
                      global_batch_size=8, run_dir=run_dir, strategy=strategy, verbose=False)
    return trainer.fit().model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--die-at", type=int, default=None)
    parser.add_argument("--loss", default="mse")
    parser.add_argument("--mirrored-compare", default=None)
    args = parser.parse_args()
    tf.config.experimental.enable_op_determinism()
    if args.mirrored_compare:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from experiments.runner import execute_stage
        plan = tiny_plan(args.out_dir, args.loss)
        train, val = sources()
        execute_stage(plan.stages[0], train_source=train, val_source=val,
                      strategy=tf.distribute.get_strategy(), verbose=False)
        one = one_denoiser_step(plan, os.path.join(args.out_dir, "one"),
                                tf.distribute.get_strategy())
        mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        two = one_denoiser_step(plan, os.path.join(args.out_dir, "two"), mirrored)
        arrays = {}
        for tag, model in (("one", one), ("two", two)):
            for i, w in enumerate(weights(model.unet) + weights(model.ema_unet)):
                arrays[f"{tag}_{i}"] = w
            arrays[f"{tag}_scale"] = np.asarray(model.latent_scale)
        np.savez(args.mirrored_compare, **arrays)
        return
    callbacks = [DieAt(args.die_at)] if args.die_at else []
    run(tiny_plan(args.out_dir, args.loss), callbacks=callbacks)


if __name__ == "__main__":
    main()
