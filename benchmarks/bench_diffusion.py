"""Throughput of the diffusion family on this machine: figures, not a test.

    python benchmarks/bench_diffusion.py                    # quick-profile networks, 32x32
    python benchmarks/bench_diffusion.py --profile paper --latents 128

For each latent size: train images/s of stage 1 (the autoencoder, at its batch),
of the one-off encoding of the training split into the frozen encoder's moments
(``LatentDiffusion.training_source``), of stage 2 (the denoiser, at its batch, on
those moments), and images/s of DDIM sampling (50 steps, guidance 1 = one U-Net pass per
step, and guidance 2 = two), each the best of ``--rounds`` timings after a warm-up.

FLOP/s are *model* FLOPs: TensorFlow's profiler counts the floating-point
operations of each network's forward graph (convolutions, matmuls, attention,
normalisation); a train step is counted as 3 x the trained network's forward
(forward + input and weight gradients). The
reference is the FLOP/s of a large float32 matmul on the same machine
(``bench_gan.matmul_flops_per_s``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_gan import matmul_flops_per_s  # noqa: E402
from models import get_family  # noqa: E402
from common.config import from_dict  # noqa: E402


def forward_flops(model, *specs) -> int:
    """Float operations of one forward pass of a Keras model (batch 1), by TF's profiler."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    graph = fn.get_concrete_function(*specs).graph
    options = option_builder.ProfileOptionBuilder(
        option_builder.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return int(model_analyzer.profile(graph, options=options).total_float_ops)


def best_time(fn, rounds: int) -> float:
    fn()  # warm-up (traces)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def train_step_fn(model):
    strategy = tf.distribute.get_strategy()

    @tf.function(autograph=False)
    def step(images, labels):  # what training.trainer's train_fn runs
        logs = strategy.run(model.train_step, args=((images, labels),))
        model.after_train_step()
        model.step_counter.assign_add(1)
        return logs["loss"]
    return step


def bench_latent(family, profile, latent, size, channels, rounds, peak):
    preset = family.preset(profile)
    config = from_dict(family.config_cls, {**preset, "latent_size": latent, "num_classes": 10})
    shape = (size, size, channels)
    rng = np.random.default_rng(0)

    rows = []
    ae = family.stages[0].build(config, shape, config.ae_batch_size, seed=0)
    ae(tf.zeros([1, *shape]))
    ae.build_optimizers()
    # Timed before the denoiser is built: building it freezes the autoencoder, after
    # which a "train step" of the autoencoder would compute no gradients at all.
    batch = config.ae_batch_size
    images = tf.constant(rng.uniform(-1, 1, (batch, *shape)), tf.float32)
    labels = tf.constant(rng.integers(0, 10, batch), tf.int32)
    step = train_step_fn(ae)
    t_ae = best_time(lambda: step(images, labels).numpy(), rounds)
    model = family.final_stage.build(config, shape, config.batch_size, seed=0,
                                     inputs={"autoencoder": ae})
    model(tf.zeros([1, *shape]))
    model.build_optimizers()
    s = model.latent_shape
    f_enc = forward_flops(ae.encoder, tf.TensorSpec([1, *shape]))
    f_dec = forward_flops(ae.decoder, tf.TensorSpec([1, *s]))
    f_unet = forward_flops(model.unet, tf.TensorSpec([1, *s]), tf.TensorSpec([1], tf.int32),
                           tf.TensorSpec([1], tf.int32))
    print(f"\nlatent {latent} = {s[0]}x{s[1]}x{s[2]}; forward MFLOPs per image: encoder "
          f"{f_enc / 1e6:.1f}, decoder {f_dec / 1e6:.1f}, U-Net {f_unet / 1e6:.1f}", flush=True)
    rows.append(("autoencoder train", batch, t_ae, batch / t_ae,
                 batch * 3 * (f_enc + f_dec) / t_ae))

    # The denoiser's steps consume the encoder's moments, computed once per fit by
    # training_source (timed here per image); its step is the U-Net's alone.
    batch = config.batch_size
    images = tf.constant(rng.uniform(-1, 1, (batch, *shape)), tf.float32)
    labels = tf.constant(rng.integers(0, 10, batch), tf.int32)
    encode = tf.function(model.encoder_moments, autograph=False)
    t = best_time(lambda: encode(images).numpy(), rounds)
    rows.append(("encode once (moments)", batch, t, batch / t, batch * f_enc / t))
    moments = encode(images)
    step = train_step_fn(model)
    t = best_time(lambda: step(moments, labels).numpy(), rounds)
    rows.append(("denoiser train", batch, t, batch / t, batch * 3 * f_unet / t))
    for guidance in (1.0, 2.0):
        model.config.guidance_scale, model.config.sampling_steps = guidance, 50
        model.configure_sampler()
        n = 256
        latents = model.sample_latents(n, seed=0)
        t = best_time(lambda: model.generate(latents).numpy(), max(1, rounds // 2))
        passes = 50 * (1 if guidance == 1.0 else 2)
        rows.append((f"DDIM 50, guidance {guidance:g}", n, t, n / t,
                     n * (passes * f_unet + f_dec) / t))
    print(f"{'what':24s} {'batch':>6s} {'s/batch':>8s} {'images/s':>9s} {'GFLOP/s':>8s} "
          f"{'% fp32 mm':>9s}")
    for name, batch, t, ips, fps in rows:
        print(f"{name:24s} {batch:6d} {t:8.3f} {ips:9.1f} {fps / 1e9:8.1f} "
              f"{100 * fps / peak:8.1f}%")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper"])
    parser.add_argument("--latents", type=int, nargs="+", default=[128, 2048])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3, choices=[1, 3],
                        help="1 for the gray datasets (Fashion-MNIST, MNIST)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    family = get_family("diffusion")
    peak = matmul_flops_per_s(tf.float32)
    print(f"diffusion family, {args.profile} preset, {args.size}x{args.size}x{args.channels}; TF "
          f"{tf.__version__}, {os.cpu_count()} CPU(s); large matmul (4096^2) float32 "
          f"{peak / 1e9:.1f} GFLOP/s", flush=True)
    for latent in args.latents:
        bench_latent(family, args.profile, latent, args.size, args.channels, args.rounds,
                     peak)


if __name__ == "__main__":
    main()
