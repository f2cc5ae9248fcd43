"""Rehearse each family's ``paper`` configuration on this machine: figures, not a test.

    python benchmarks/rehearse.py                      # the four Table 3.1 baselines @128
    python benchmarks/rehearse.py --only gan/hinge@1024 diffusion/mse@2048
    python benchmarks/rehearse.py --profile smoke      # seconds (what the tests run)

For every stage of each selected row, at full width: the stage's model is built as
``run_all.py`` builds it (``experiments.runner.plan_run``), measured the way
``run_all.py --plan`` measures it (``experiments.forecast.measure_stage``), then its real
train step (what ``training.Trainer`` runs: ``strategy.run(train_step)``, the EMA and
step counter) is traced once at a small batch and run twice on random images (the
step's own input: a frozen first stage's features where the family trains on them). It
reports:

- seconds per step (the second step; the first traces and warms up) and images/s;
- memory: the allocator's peak during the step (``TF_CPU_ALLOCATOR_USE_BFC=true``, set
  here, makes TensorFlow's CPU allocator keep statistics) above what was allocated
  before it, at two batches (b/2 and b, one trace with the batch left open): their
  difference per image is the step's activations per example, beside the plan's; the
  rest, what does not grow with the batch (gradients, the optimiser's temporaries),
  beside the gradients' bytes;
- the measured utilisation: the step's FLOPs (TensorFlow's profiler on the traced step,
  its ``tf.cond`` branches weighted as they run: the GAN's lazy R1 1 in ``d_reg_every``)
  per second, over this CPU's peak, measured as the FLOP/s of a 2048 x 2048 float32
  matmul just before the timed step (a shared machine's load changes);
- the FLOP cross-check: the plan's step FLOPs (profiler forward counts x the passes of
  ``experiments.forecast.ACCOUNTS``) against the profiler's count of the whole traced
  step (must agree within 10%), and each network's profiler forward count against an
  independent count from its layers' shapes (2 x multiply-adds of every convolution and
  dense kernel: the profiler also counts elementwise ops, so it is a little higher).

The batch b of each stage is the largest power of two whose step stays under
``--budget-gflop`` by the plan's count (at least 2). Writes
``benchmarks/results/rehearsal.json`` (``--out``), which ``run_all.py --plan`` quotes.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from common import files as artifacts  # noqa: E402
from data.sources import ImageSource  # noqa: E402
from experiments import forecast, planning, runner  # noqa: E402
from experiments.profiles import get_profile  # noqa: E402

BASELINES = ("vae/elbo@128", "autoregressive/cross_entropy@128", "gan/wasserstein_gp@128",
             "diffusion/mse@128")
TOLERANCE = 0.10


def layer_flops(net) -> float:
    """2 x multiply-adds of ``net``'s convolution and dense kernels, from the layers'
    shapes (an independent count of the profiler's): a rank-4 kernel [kh, kw, a, b] over
    its output's positions (a transposed convolution's: over its input's), a rank-2 kernel
    over the positions of its output (tokens). Functional networks only (None else)."""
    if not hasattr(net, "inputs") or net.inputs is None:
        return None
    total = 0.0
    for layer in net.layers:
        kernels = [w for w in layer.weights if w.name.endswith("kernel") and len(w.shape) in (2, 4)]
        if not kernels:
            continue
        try:
            out = layer.output
        except (AttributeError, ValueError):
            continue
        out = out[0] if isinstance(out, (list, tuple)) else out
        for kernel in kernels:
            shape = [int(d) for d in kernel.shape]
            if len(shape) == 4:
                if "Transpose" in type(layer).__name__:
                    src = layer.input[0] if isinstance(layer.input, (list, tuple)) else layer.input
                    positions = int(src.shape[1]) * int(src.shape[2])
                else:
                    positions = int(out.shape[1]) * int(out.shape[2])
                total += 2.0 * positions * float(np.prod(shape))
            else:
                positions = float(np.prod([int(d) for d in out.shape[1:-1]] or [1]))
                total += 2.0 * positions * float(np.prod(shape))
    return total


def _random_source(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    return ImageSource("random", "train", rng.integers(0, 256, (n, *shape), dtype=np.uint8),
                       rng.integers(0, 100, n).astype(np.int32), [str(i) for i in range(100)],
                       "random uint8 images")


def _then_weight(config) -> float:
    """How often a step's tf.cond takes its first branch: the GAN's lazy R1 (one step in
    ``d_reg_every``); 0.5 for any other (none in today's train steps)."""
    if getattr(config, "r1_gamma", 0) and getattr(config, "d_reg_every", 0):
        return 1.0 / config.d_reg_every
    return 0.5


def rehearse_stage(model, config, family, stage, *, budget, batch, meter):
    """One stage's figures (a dict): its step at batches ``batch // 2`` and ``batch``."""
    cost = forecast.measure_stage(model, config, family.name, stage.name, meter=meter)
    per_image = cost.train_flops()
    k = int(model.batches_per_step)
    grads = sum(forecast._nbytes(v) for v in model.trainable_variables)
    planned_act = cost.activation_bytes()
    if batch is None:
        batch = 2
        while batch * 2 * per_image <= budget and batch < 64:
            batch *= 2
        # the memory comparison needs the activations of the smaller batch to outweigh
        # the step's fixed part (gradients, the optimiser's temporaries, ~3x the gradients)
        # or its peak is that part's: a larger batch where it costs at most 4x the budget
        if planned_act:
            while (batch // 2) * planned_act < 6 * grads and 2 * batch * per_image <= 4 * budget:
                batch *= 2
    batch = max(2, batch)
    low = batch // 2
    # the step draws its noise for the global batch: the rehearsal's largest, set before
    # the step is traced (the model was built with the config's)
    model.global_batch_size = batch
    source = model.training_source(_random_source(batch * k * 2, model.image_shape))
    data = {b: next(iter(source.batches(b * k))) for b in (low, batch)}
    strategy = tf.distribute.get_strategy()

    def step(x, y):  # what training.Trainer's train_fn runs
        logs = strategy.run(model.train_step, args=((x, y),))
        model.after_train_step()
        model.step_counter.assign_add(1)
        return logs

    # counted on a trace at the full batch (the profiler needs every shape), run through
    # one whose batch is left open (both batches, one trace)
    x, y = data[batch]
    t0 = time.perf_counter()
    static = tf.function(step, autograph=False).get_concrete_function(
        tf.TensorSpec(x.shape, x.dtype), tf.TensorSpec(y.shape, y.dtype))
    counted = forecast.nested_graph_flops(static.graph, _then_weight(config))
    del static
    run = tf.function(step, autograph=False, input_signature=[
        tf.TensorSpec([None, *x.shape[1:]], x.dtype), tf.TensorSpec([None], y.dtype)])

    def measured(b):
        before = meter.current()
        meter.reset_peak()
        t1 = time.perf_counter()
        for value in run(*data[b]).values():
            value.numpy()
        return meter.peak() - before, time.perf_counter() - t1

    measured(low)  # traces, builds the kernels
    traced = time.perf_counter() - t0
    peak_low, _ = measured(low)
    peak_high, _ = measured(batch)
    # the CPU's peak measured again just before the timed step: a shared machine's load
    # changes, and the utilisation compares two rates taken under the same load
    peak_rate = forecast.matmul_peak(2048)
    _, seconds = measured(batch)
    slope = max(peak_high - peak_low, 0) / (batch - low)
    # measured only where the smaller batch's activations outweigh the fixed part
    reliable = bool(slope > 0 and slope * low >= 2 * grads)
    nets = {}
    for name, spec in cost.account.nets.items():
        analytic = layer_flops(spec.get(model))
        nets[name] = {"profiler": cost.nets[name].flops, "layers": analytic,
                      "ratio": None if not analytic else cost.nets[name].flops / analytic}
    return {
        "family": family.name, "stage": stage.name, "loss": config.loss,
        # the networks' identity as the plan keys them (experiments.forecast._build_key)
        "key": forecast._build_key(family, stage.name, config, model.image_shape),
        "latent_size": config.latent_size, "params": cost.params, "batch": batch,
        "batch_low": low, "batches_per_step": k, "trace_seconds": round(traced, 1),
        "seconds_per_step": seconds, "images_per_second": batch * k / seconds,
        "flops_counted": counted, "flops_planned": per_image * batch,
        "flops_ratio": per_image * batch / counted if counted else None,
        "flops_per_second": counted / seconds, "utilisation": counted / seconds / peak_rate,
        "matmul_flops_per_second": peak_rate,
        "step_peak_bytes": {str(low): peak_low, str(batch): peak_high},
        "activation_bytes_per_example_measured": slope,
        "activation_bytes_per_example_planned": planned_act,
        "activation_ratio": planned_act / slope if slope and planned_act else None,
        "activation_reliable": reliable,
        # what does not grow with the batch: the gradients, the optimiser's temporaries
        "fixed_step_bytes_measured": peak_low - slope * low,
        "gradient_bytes": grads, "state_bytes_planned": cost.state_bytes,
        "networks": nets, "step": cost.account.steps, "memory_method": meter.method,
    }


def rehearse(selectors, profile_name="paper", *, budget=150e9, batch=None, progress=print):
    """Every stage of the rows ``selectors`` (texts: family[/loss][@latent]) select, one
    seed, rehearsed; returns the record."""
    profile = get_profile(profile_name)
    selected = planning.select_rows(selectors, ("table_3_1", "table_3_2"))
    rows = [row for _, rows in selected for row in rows]
    meter = forecast.MemoryMeter()
    peak_rate = forecast.matmul_peak(2048)
    progress(f"[rehearse] {len(rows)} row(s), profile {profile_name}; this CPU's float32 "
             f"matmul peak {peak_rate / 1e9:.1f} GFLOP/s now (measured again before each "
             f"timed step); memory: {meter.method}")
    out = tempfile.mkdtemp(prefix="rehearse-")
    stages = []
    done = set()
    for row in rows:
        plan = runner.plan_run(row, 0, profile, dataset="cifar100", image_size=32,
                               out_dir=out, num_classes=100, channels=3)
        inputs = {}
        for part in (*plan.stages, plan):
            spec = plan.family.final_stage if part is plan else part.spec
            keras.utils.set_random_seed(0)
            t0 = time.perf_counter()
            model = spec.build(plan.family_config, (32, 32, 3),
                               int(getattr(plan.family_config, spec.batch_field)), seed=0,
                               inputs=dict(inputs))
            model(tf.zeros([1, 32, 32, 3]))
            model.build_optimizers()
            built = time.perf_counter() - t0
            if part.name not in done:
                done.add(part.name)
                figures = rehearse_stage(model, plan.family_config, plan.family, spec,
                                         budget=budget, batch=batch, meter=meter)
                figures.update(name=part.name, build_seconds=round(built, 1))
                stages.append(figures)
                progress(f"[rehearse] {part.name}: batch {figures['batch']}, "
                         f"{figures['seconds_per_step']:.2f} s/step, "
                         f"{100 * figures['utilisation']:.1f}% of peak, FLOPs plan/count "
                         f"{figures['flops_ratio']:.3f}")
            if part is not plan:
                inputs[spec.name] = model
    # overall: the stages' FLOPs, each over the peak measured beside it, per second
    relative = sum(s["flops_counted"] / s["matmul_flops_per_second"] for s in stages)
    seconds = sum(s["seconds_per_step"] for s in stages)
    return {
        "date": datetime.date.today().isoformat(), "machine": forecast._machine_name(),
        "tensorflow": tf.__version__, "profile": profile_name,
        "matmul_flops_per_second": peak_rate, "memory_method": meter.method,
        "utilisation": relative / seconds if seconds else None,
        "tolerance": TOLERANCE, "stages": stages,
        "flops_within_tolerance": all(abs(s["flops_ratio"] - 1) <= TOLERANCE
                                      for s in stages if s["flops_ratio"] is not None),
    }


def table(record) -> list:
    lines = [f"{'stage':42s} {'batch':>7s} {'s/step':>7s} {'img/s':>7s} {'GFLOP/s':>8s} "
             f"{'util':>6s} {'FLOP plan/count':>15s} {'act MB/img meas':>15s} "
             f"{'plan':>6s} {'fixed MB':>9s} {'grads MB':>9s}"]
    for s in record["stages"]:
        batch = f"{s['batch']}" + (f"x{s['batches_per_step']}" if s["batches_per_step"] > 1
                                   else "")
        lines.append(f"{s['name']:42s} {batch:>7s} {s['seconds_per_step']:7.2f} "
                     f"{s['images_per_second']:7.2f} {s['flops_per_second'] / 1e9:8.1f} "
                     f"{100 * s['utilisation']:5.1f}% {s['flops_ratio']:15.3f} "
                     f"{s['activation_bytes_per_example_measured'] / 1e6:14.2f}"
                     f"{' ' if s['activation_reliable'] else '?'} "
                     f"{_mb2(s['activation_bytes_per_example_planned']):>6s} "
                     f"{s['fixed_step_bytes_measured'] / 1e6:9,.0f} "
                     f"{s['gradient_bytes'] / 1e6:9,.0f}")
    lines.append("?: not measurable at this batch (the step's fixed part, gradients and the "
                 "optimiser's temporaries, set its peak): the GPU check measures it")
    lines.append(f"overall utilisation {100 * (record['utilisation'] or 0):.1f}% of the "
                 f"float32 matmul peak (measured beside each step; "
                 f"{record['matmul_flops_per_second'] / 1e9:.1f} GFLOP/s at the start); "
                 f"FLOP counts within {100 * record['tolerance']:.0f}%: "
                 f"{'yes' if record['flops_within_tolerance'] else 'NO'}")
    lines.append("network forward FLOPs, profiler / layer shapes: " + "; ".join(
        f"{s['name'].split('-s0')[0]}:{n} {v['ratio']:.3f}" for s in record["stages"]
        for n, v in s["networks"].items() if v["ratio"] is not None))
    return lines


def _mb2(value):
    return "n/a" if value is None else f"{value / 1e6:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=list(BASELINES), metavar="SEL",
                        help="rows to rehearse (default: the Table 3.1 baselines at latent 128)")
    parser.add_argument("--profile", default="paper", choices=("smoke", "quick", "colab", "paper"))
    parser.add_argument("--batch", type=int, default=None,
                        help="every stage's batch (default: by --budget-gflop)")
    parser.add_argument("--budget-gflop", type=float, default=150.0,
                        help="largest step (plan's count) a default batch may reach")
    parser.add_argument("--out", default=forecast.REHEARSAL_RECORD,
                        help="the JSON record (default benchmarks/results/rehearsal.json)")
    args = parser.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be positive")
    record = rehearse(args.only, args.profile, budget=args.budget_gflop * 1e9,
                      batch=args.batch)
    print("\n".join(table(record)))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    artifacts.write_json(args.out, record)
    print(f"[rehearse] wrote {args.out}")
    return 0 if record["flops_within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
