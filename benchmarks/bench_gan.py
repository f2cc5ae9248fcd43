"""Training throughput of the GAN family on this machine: figures, not a test.

    python benchmarks/bench_gan.py                 # quick-profile size: 32x32, batch 64
    python benchmarks/bench_gan.py --xla --rounds 3

Builds the same StyleGAN2 networks (``GANConfig`` defaults, the quick profile's
widths) in several variants and times their train steps *interleaved* (round
robin; best and median round), so that the noise of a shared machine hits every
variant alike:

* ``naive``: the straightforward implementation: modulated convolution as the
  textbook per-example weights w'' = demod(s * w) run as one grouped convolution
  over the batch, float32, no XLA.
* ``optimised``: modulation by scaling the inputs, one shared convolution and a
  demodulation of the outputs (same function, see ``ModulatedConv2D``),
  float32, no XLA. (Both variants share the rest of the code: gains folded into
  the weights, a leaky ReLU whose gradient is one op, tapes that watch only the
  variables they differentiate; so the ratio is a lower bound of the gain over
  a naive port.)
* ``bf16``: ``optimised`` with the convolutions computed in bfloat16
  (``conv_dtype="bfloat16"``; oneDNN's AMX / AVX512-BF16 kernels).
* ``xla`` (``--xla``): ``optimised`` with the step's units XLA-compiled
  (``model.configure_steps(jit=True)``, what ``--jit on`` does). On CPU, XLA's
  convolutions are slower than oneDNN's, which is why ``--jit auto`` turns XLA on only
  where a GPU or TPU is present.

FLOP/s are *model* FLOPs (2 x multiply-adds of the convolutions and dense
layers, counted from the layer shapes) per train step, divided by its time:
forward = F_G, F_D per image; backward = 2 x forward (input and weight
gradients), input gradients only through D in the G step:

    D step: G forward (B images) + D forward and backward on B reals + B fakes
            = B (F_G + 6 F_D)
    G step: G forward and backward + D forward and input-gradient = B (3 F_G + 2 F_D)

so a step is B (4 F_G + 8 F_D) for the hinge/LSGAN/NS losses (WGAN-GP adds its
penalty's double backprop, about B * 6 F_D more; not counted). The reference is
the FLOP/s of a large float32 (and bfloat16) matmul on the same machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models import get_family  # noqa: E402
from models.gan.layers import (EqualizedConv2D, EqualizedDense,  # noqa: E402
                               ModulatedConv2D)

VARIANTS = {
    "naive": {"modconv": "per_sample_weights", "jit_compile": False},
    "optimised": {"modconv": "input_scaling", "jit_compile": False},
    "bf16": {"modconv": "input_scaling", "jit_compile": False, "conv_dtype": "bfloat16"},
    "xla": {"modconv": "input_scaling", "jit_compile": True},
}


def layer_flops(model) -> int:
    """Forward FLOPs per image (2 x MACs) of a Functional model's convs and dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, (ModulatedConv2D, EqualizedConv2D)):
            out = layer.output.shape if not isinstance(layer.output, list) else layer.output[0].shape
            kernel = layer.kernel.shape        # [k, k, in, out]
            total += 2 * out[1] * out[2] * int(np.prod(kernel))
            if isinstance(layer, ModulatedConv2D):
                total += 2 * int(np.prod(layer.affine.kernel.shape))
        elif isinstance(layer, EqualizedDense):
            total += 2 * int(np.prod(layer.kernel.shape))
    return total


def matmul_flops_per_s(dtype, n=4096, reps=5) -> float:
    a = tf.random.stateless_normal([n, n], [0, 1], dtype=tf.float32)
    a = tf.cast(a, dtype)
    mm = tf.function(lambda x: tf.reduce_sum(tf.cast(tf.matmul(x, x)[:1, :1], tf.float32)))
    mm(a)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        mm(a).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def build_step(family, overrides, size, batch):
    config = family.config_cls(**overrides)
    model = family.build(config, (size, size, 3), batch, seed=0)
    model(tf.zeros([1, size, size, 3]))
    model.build_optimizers()
    # XLA is the run's jit (training.runtime), no longer the config's jit_compile
    model.configure_steps(jit=bool(config.jit_compile))
    strategy = tf.distribute.get_strategy()

    @tf.function
    def step(images, labels):            # what training.trainer's train_fn runs
        logs = strategy.run(model.train_step, args=((images, labels),))
        model.step_counter.assign_add(1)
        return logs["g_loss"]

    return model, step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--loss", default="hinge")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="steps per variant per round")
    parser.add_argument("--variants", default="naive,optimised,bf16")
    parser.add_argument("--xla", action="store_true", help="also time the XLA variant")
    parser.add_argument("--overrides", default="{}", help="JSON GANConfig overrides")
    args = parser.parse_args(argv)

    family = get_family("gan")
    names = args.variants.split(",") + (["xla"] if args.xla else [])
    base = {"batch_size": args.batch, "loss": args.loss, **json.loads(args.overrides)}
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(-1, 1, (args.batch, args.size, args.size, 3)), tf.float32)
    labels = tf.zeros([args.batch], tf.int32)

    print(f"GAN train step, {args.size}x{args.size}, batch {args.batch}, loss {args.loss}, "
          f"overrides {base}; TF {tf.__version__}, {os.cpu_count()} CPU(s)", flush=True)
    steps, flops = {}, None
    for name in names:
        model, step = build_step(family, {**base, **VARIANTS[name]}, args.size, args.batch)
        t0 = time.perf_counter()
        step(images, labels).numpy()
        step(images, labels).numpy()
        print(f"  {name:10s} built, traced and warmed up in {time.perf_counter() - t0:.1f} s",
              flush=True)
        steps[name] = step
        if flops is None:
            f_g = layer_flops(model.mapping) + layer_flops(model.synthesis)
            f_d = layer_flops(model.discriminator)
            flops = args.batch * (4 * f_g + 8 * f_d)
            print(f"  model FLOPs per image: G {f_g / 1e6:.1f} M, D {f_d / 1e6:.1f} M; "
                  f"per train step {flops / 1e9:.2f} G", flush=True)

    peak32 = matmul_flops_per_s(tf.float32)
    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                steps[name](images, labels).numpy()
            times[name].append((time.perf_counter() - t0) / args.steps)
    peak32 = max(peak32, matmul_flops_per_s(tf.float32))
    peak16 = matmul_flops_per_s(tf.bfloat16)

    if family.losses[args.loss].penalty is not None:
        print("(the loss's own penalty is not in the FLOP count: GFLOP/s are understated)")
    print(f"\nlarge matmul (4096^2): float32 {peak32 / 1e9:.1f} GFLOP/s, "
          f"bfloat16 {peak16 / 1e9:.1f} GFLOP/s")
    for label, stat in (("best round", np.min), ("median round", np.median)):
        print(f"\n{label} of {args.rounds} (interleaved, {args.steps} steps each):")
        print(f"{'variant':10s} {'s/step':>8s} {'images/s':>9s} {'GFLOP/s':>8s} "
              f"{'% fp32 mm':>9s} {'vs naive':>8s}")
        naive = float(stat(times["naive"])) if "naive" in times else None
        for name in names:
            t = float(stat(times[name]))
            ratio = f"{naive / t:7.2f}x" if naive else "       -"
            print(f"{name:10s} {t:8.3f} {args.batch / t:9.1f} {flops / t / 1e9:8.1f} "
                  f"{100 * flops / t / peak32:8.1f}% {ratio}")
    print("(spread per variant: " + ", ".join(
        f"{n} {min(v):.3f}-{max(v):.3f} s" for n, v in times.items()) + "; on a shared "
        "machine the best round is the less noisy estimate)")


if __name__ == "__main__":
    main()
