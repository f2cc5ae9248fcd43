"""Throughput of the autoregressive family on this machine: figures, not a test.

    python benchmarks/bench_autoregressive.py                  # quick-profile networks, 32x32
    python benchmarks/bench_autoregressive.py --channels 1     # gray data (Fashion-MNIST)
    python benchmarks/bench_autoregressive.py --profile paper --latents 128 --loss perceptual

For each codebook size K: train images/s of stage 1 (the tokenizer, at its batch),
train tokens/s of stage 2 (the prior, at its batch: on images, the frozen encoder's
forward pass included, as the perceptual loss trains; and on codes tokenized once per
fit, as cross_entropy and mse train; n = 64 tokens per 32x32 image), and images/s of
sampling with the key/value cache and with full recomputation of the prefix at every
position, each the best of ``--rounds`` timings after a warm-up.

FLOP/s are *model* FLOPs: TensorFlow's profiler counts the floating-point operations
of each network's forward graph (matmuls, convolutions, attention, normalisation); a
train step is counted as 3 x the trained network's forward plus the frozen networks'
forwards. Sampling with the cache is counted as one full-length forward of the prior
(every position once) plus the decoder, without it as n full-length forwards; the
cache's own overhead (attending over the whole cache with a mask) is not counted. The
reference is the FLOP/s of a large float32 matmul on the same machine
(``bench_gan.matmul_flops_per_s``).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_diffusion import best_time, forward_flops, train_step_fn  # noqa: E402
from benchmarks.bench_gan import matmul_flops_per_s  # noqa: E402
from models import get_family  # noqa: E402
from models.autoregressive.losses import needs_images  # noqa: E402
from common.config import from_dict  # noqa: E402


def _time_train(name, net, batch, flops, per, shape, rng, rounds, codes=0):
    """(name, batch, s/step, rate, unit, FLOP/s) of ``net``'s train step on random input:
    images in [-1, 1] of ``shape``, or (``codes`` = K) int32 codes of ``shape``."""
    if codes:
        inputs = tf.constant(rng.integers(0, codes, (batch, *shape)), tf.int32)
    else:
        inputs = tf.constant(rng.uniform(-1, 1, (batch, *shape)), tf.float32)
    labels = tf.constant(rng.integers(0, 10, batch), tf.int32)
    step = train_step_fn(net)
    t = best_time(lambda: step(inputs, labels).numpy(), rounds)
    return (name, batch, t, batch * per / t, "tokens/s" if per > 1 else "images/s",
            batch * flops / t)


def bench_latent(family, args, latent, peak):
    preset = family.preset(args.profile)
    config = from_dict(family.config_cls, {**preset, "latent_size": latent, "num_classes": 10,
                                           "loss": args.loss})
    shape = (args.size, args.size, args.channels)
    rng = np.random.default_rng(0)
    tok = family.stages[0].build(config, shape, config.vq_batch_size, seed=0)
    tok(tf.zeros([1, *shape]))
    tok.build_optimizers()
    grid = tok.grid
    f_enc = forward_flops(tok.encoder, tf.TensorSpec([1, *shape]))
    f_dec = forward_flops(tok.decoder, tf.TensorSpec([1, *grid, tok.code_dim]))
    # The tokenizer's step is timed before the prior is built: the prior freezes it,
    # after which its step would compute no gradients.
    rows = [_time_train("tokenizer train", tok, config.vq_batch_size, 3 * (f_enc + f_dec), 1,
                        shape, rng, args.rounds)]
    model = family.final_stage.build(config, shape, config.batch_size, seed=0,
                                     inputs={"tokenizer": tok})
    model(tf.zeros([1, *shape]))
    model.build_optimizers()
    n = model.num_tokens
    f_prior = forward_flops(model.prior, tf.TensorSpec([1], tf.int32),
                            tf.TensorSpec([1, n - 1], tf.int32))
    print(f"\nK = {latent}, {grid[0]}x{grid[1]} = {n} tokens, loss {args.loss}; forward MFLOPs "
          f"per image: encoder {f_enc / 1e6:.1f}, decoder {f_dec / 1e6:.1f}, prior "
          f"{f_prior / 1e6:.1f} ({f_prior / n / 1e6:.2f} per token)", flush=True)
    # the perceptual loss adds a decoder and two encoder passes, the decoder's and one
    # encoder's backward included (about 3 x decoder + 3 x encoder + 1 x encoder)
    extra = 3 * f_dec + 4 * f_enc if args.loss == "perceptual" else 0
    rows.append(_time_train("prior train, images", model, config.batch_size,
                            f_enc + 3 * f_prior + extra, n, shape, rng, args.rounds))
    if not needs_images(model.loss_fn):  # what training_source caches: codes int32 [b, n]
        rows.append(_time_train("prior train, codes", model, config.batch_size, 3 * f_prior,
                                n, (n,), rng, args.rounds, codes=latent))
    labels = tf.constant(rng.integers(0, 10, args.sample_batch), tf.int32)
    seed = tf.constant(0, tf.int64)
    for cached in (True, False):
        fn = tf.function(lambda y, s, c=cached: model.sample_codes(y, s, use_cache=c))
        sample = lambda: tok.decode_codes(fn(labels, seed)).numpy()  # noqa: E731
        t = best_time(sample, max(1, args.rounds // 2))
        b = args.sample_batch
        flops = (f_prior if cached else n * f_prior) + f_dec
        rows.append((f"sample, {'KV cache' if cached else 'recompute'}", b, t, b / t, "images/s",
                     b * flops / t))
    print(f"{'what':22s} {'batch':>6s} {'s/batch':>8s} {'rate':>10s} {'unit':9s} "
          f"{'GFLOP/s':>8s} {'% fp32 mm':>9s}")
    for name, batch, t, rate, unit, fps in rows:
        print(f"{name:22s} {batch:6d} {t:8.3f} {rate:10.1f} {unit:9s} {fps / 1e9:8.1f} "
              f"{100 * fps / peak:8.1f}%")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick", choices=["smoke", "quick", "paper"])
    parser.add_argument("--latents", type=int, nargs="+", default=[128, 2048])
    parser.add_argument("--loss", default="cross_entropy",
                        choices=["cross_entropy", "mse", "perceptual"])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3, choices=[1, 3])
    parser.add_argument("--sample-batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    family = get_family("autoregressive")
    peak = matmul_flops_per_s(tf.float32)
    shape = f"{args.size}x{args.size}x{args.channels}"
    print(f"autoregressive family, {args.profile} preset, {shape}; TF "
          f"{tf.__version__}, {os.cpu_count()} CPU(s); large matmul (4096^2) float32 "
          f"{peak / 1e9:.1f} GFLOP/s", flush=True)
    for latent in args.latents:
        bench_latent(family, args, latent, peak)


if __name__ == "__main__":
    main()
