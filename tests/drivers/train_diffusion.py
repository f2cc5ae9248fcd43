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

from tests.drivers.stages import SIZE, one_step, run, smoke_plan, sources  # noqa: F401
from tests.drivers.train_vae import DieAt, weights


def tiny_plan(out_dir, loss="mse", latent=128, **overrides):
    """The smoke-profile plan of diffusion/<loss>@<latent> on synthetic data."""
    return smoke_plan("diffusion", "Stable Diffusion", out_dir, loss, latent, **overrides)


def one_denoiser_step(plan, run_dir, strategy):
    """One step of the denoiser of ``plan`` (its autoencoder already trained) in run_dir."""
    from experiments.runner import _build_with_inputs
    from models import get_family

    family = get_family("diffusion")
    build = _build_with_inputs(family.final_stage, plan, 8, (SIZE, SIZE, 3))
    return one_step(build, run_dir, strategy)


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
