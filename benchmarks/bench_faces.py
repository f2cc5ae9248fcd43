"""Training throughput of thesis 003's face GAN on this machine: figures, not a test.

    python benchmarks/bench_faces.py                       # the thesis's full networks
    python benchmarks/bench_faces.py --divisor 8 --rounds 3   # the quick profile's widths

Times the train step (what ``training.trainer`` runs) of the ``faithful`` mode at batch 2
and the ``fixed`` mode at ``--fixed-batch`` (64, its thesis batch), interleaved round robin
(best and median round), and prints iterations/s, the projected time of the listing's
15,000 iterations beside the thesis's reported 26 hours, and model FLOP/s as a fraction of a
large float32 matmul on the same machine.

Model FLOPs (2 x multiply-adds of the convolutions, transposed convolutions and dense
layers, counted from layer shapes), per iteration at batch B with forward costs F_G, F_D:
D step = G forward (B) + D forward and backward on 2B images = B (F_G + 6 F_D);
G step = G forward and backward + D forward and input gradient = B (3 F_G + 2 F_D);
so B (4 F_G + 8 F_D) per iteration (an extragradient optimiser doubles it).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_gan import matmul_flops_per_s  # noqa: E402
from models import get_family  # noqa: E402
from models.faces.config import mode_overrides  # noqa: E402

THESIS_HOURS, THESIS_ITERATIONS = 26.0, 15_000


def layer_flops(model) -> int:
    """Forward FLOPs per image of a Functional model's Conv2D/Conv2DTranspose/Dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):  # every input pixel x kernel
            total += 2 * int(np.prod(layer.input.shape[1:3])) * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Conv2D):
            total += 2 * int(np.prod(layer.output.shape[1:3])) * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * int(np.prod(layer.kernel.shape))
    return total


def build_step(mode, batch, divisor, optimizer=None):
    family = get_family("faces")
    overrides = {**mode_overrides(mode), "batch_size": batch, "channel_divisor": divisor}
    if optimizer:
        overrides["optimizer"] = optimizer
    model = family.build(family.config_cls(**overrides), (64, 64, 3), batch, seed=0)
    model(tf.zeros([1, 64, 64, 3]))
    model.build_optimizers()

    @tf.function(autograph=False)
    def step(images, labels):
        logs = model.train_step((images, labels))
        model.step_counter.assign_add(1)
        return logs["g_loss"]

    flops = batch * (4 * layer_flops(model.generator) + 8 * layer_flops(model.discriminator))
    return step, flops * (2 if optimizer and "extra" in optimizer else 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--divisor", type=int, default=1, help="channel_divisor (1: thesis)")
    parser.add_argument("--fixed-batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="steps per variant per round")
    args = parser.parse_args(argv)

    variants = {"faithful (batch 2)": ("faithful", 2),
                f"fixed (batch {args.fixed_batch})": ("fixed", args.fixed_batch)}
    print(f"face GAN train step, 64x64, channel_divisor {args.divisor}; TF {tf.__version__}, "
          f"{os.cpu_count()} CPU(s)", flush=True)
    rng = np.random.default_rng(0)
    steps = {}
    for name, (mode, batch) in variants.items():
        images = tf.constant(rng.uniform(-1, 1, (batch, 64, 64, 3)), tf.float32)
        labels = tf.zeros([batch], tf.int32)
        step, flops = build_step(mode, batch, args.divisor)
        t0 = time.perf_counter()
        step(images, labels).numpy()
        print(f"  {name}: traced and warmed up in {time.perf_counter() - t0:.1f} s; "
              f"{flops / 1e9:.1f} GFLOP per iteration", flush=True)
        steps[name] = (step, images, labels, flops, batch)
    peak = matmul_flops_per_s(tf.float32)
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, (step, images, labels, _, _) in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(images, labels).numpy()
            times[name].append((time.perf_counter() - t0) / args.steps)
    peak = max(peak, matmul_flops_per_s(tf.float32))
    print(f"\nlarge matmul (4096^2): float32 {peak / 1e9:.1f} GFLOP/s")
    print(f"{'variant':22s} {'s/iter':>8s} {'iter/s':>8s} {'images/s':>9s} {'GFLOP/s':>8s} "
          f"{'% fp32 mm':>9s} {'15,000 iter':>12s} {'thesis':>7s}")
    for name, (_, _, _, flops, batch) in steps.items():
        t = float(np.min(times[name]))
        hours = t * THESIS_ITERATIONS / 3600
        print(f"{name:22s} {t:8.3f} {1 / t:8.3f} {batch / t:9.1f} {flops / t / 1e9:8.1f} "
              f"{100 * flops / t / peak:8.1f}% {hours:10.1f} h {THESIS_HOURS:5.0f} h")
    print("(best of " + str(args.rounds) + " interleaved rounds; spread: " + ", ".join(
        f"{n} {min(v):.3f}-{max(v):.3f} s" for n, v in times.items()) + ")")


if __name__ == "__main__":
    main()
