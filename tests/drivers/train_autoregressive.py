"""Runs tiny autoregressive rows (tokenizer stage, then prior) through the runner;
used by the tests, in a fresh process where a test needs one.

    python -m tests.drivers.train_autoregressive OUT [--die-at STEP] [--loss L]
    python -m tests.drivers.train_autoregressive OUT --mirrored-compare WEIGHTS.npz

--die-at: the process exits hard (os._exit) when the *prior* finishes step STEP,
before that step's checkpoint; the tokenizer stage has finished by then.
--mirrored-compare: one tokenizer step (codebook EMA and dead-code restarts included)
on 1 device and on 2 logical CPUs (MirroredStrategy) from the same start; then the
shared tokenizer trained once and one prior step (perceptual loss: every term) on
each; saves all four models' weights.
"""
import argparse
import os

import numpy as np
import tensorflow as tf

from tests.drivers.stages import SIZE, one_step, run, smoke_plan, sources  # noqa: F401
from tests.drivers.train_vae import DieAt, weights


def tiny_plan(out_dir, loss="cross_entropy", latent=128, **overrides):
    """The smoke-profile plan of autoregressive/<loss>@<latent> on synthetic data."""
    return smoke_plan("autoregressive", "DALL-E", out_dir, loss, latent, **overrides)


def mirrored_compare(out_dir, path):
    from experiments.runner import _build_with_inputs, execute_stage
    from models import get_family

    family = get_family("autoregressive")
    plan = tiny_plan(out_dir, "perceptual")
    train, val = sources()
    tokenizer_stage, prior_stage = family.stages
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    strategies = {"one": tf.distribute.get_strategy(), "two": mirrored}
    arrays = {}
    for tag, strategy in strategies.items():
        model = one_step(lambda: tokenizer_stage.build(plan.family_config, train.image_shape, 8,
                                                       seed=0),
                         os.path.join(out_dir, f"tokenizer_{tag}"), strategy)
        for i, w in enumerate(weights(model)):
            arrays[f"tokenizer_{tag}_{i}"] = w
    execute_stage(plan.stages[0], train_source=train, val_source=val,
                  strategy=tf.distribute.get_strategy(), verbose=False)
    build = _build_with_inputs(prior_stage, plan, 8, train.image_shape)
    for tag, strategy in strategies.items():
        model = one_step(build, os.path.join(out_dir, f"prior_{tag}"), strategy)
        for i, w in enumerate(weights(model.prior)):
            arrays[f"prior_{tag}_{i}"] = w
    np.savez(path, **arrays)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--die-at", type=int, default=None)
    parser.add_argument("--loss", default="cross_entropy")
    parser.add_argument("--mirrored-compare", default=None)
    args = parser.parse_args()
    tf.config.experimental.enable_op_determinism()
    if args.mirrored_compare:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        mirrored_compare(args.out_dir, args.mirrored_compare)
        return
    callbacks = [DieAt(args.die_at)] if args.die_at else []
    run(tiny_plan(args.out_dir, args.loss), callbacks=callbacks)


if __name__ == "__main__":
    main()
