"""The paper path on a GPU, checked in under ten minutes: figures, not a test.

    python benchmarks/gpu_check.py                       # every family, paper widths
    python benchmarks/gpu_check.py --only gan/hinge@128  # one row
    python benchmarks/gpu_check.py --tiny                # CPU, smoke widths, seconds

Per family, the Table 3.1 baseline row at latent 128 in its ``paper`` configuration and
the thesis batch, every stage of it (the diffusion autoencoder and denoiser, the
tokenizer and prior) trained for up to ``--steps`` steps or ``--max-seconds`` of timed
steps, on random images, under ``tf.distribute.MirroredStrategy`` (every local GPU), in
the precision and with the XLA setting a run would choose (``training.runtime``:
``resolve_precision("auto")`` and ``resolve_jit("auto")``: bfloat16 on Ampere and later,
float16 with loss scaling before, XLA on where a GPU is), as ``training.Trainer`` runs
it (the same step function, dtype policy and ``configure_steps``). A batch that does not
fit (ResourceExhaustedError) is retried with twice the gradient accumulation.

Per stage: images/s, seconds per step, the step's model FLOPs (the plan's count,
``experiments.forecast``: profiler forward counts x the step's passes), the achieved
FLOP/s and the utilisation against the device's data-sheet peak for that precision
(the device named by ``tf.config.experimental.get_device_details``; peaks of
``experiments.forecast.ACCELERATORS``, others unknown), and the peak memory
(``tf.config.experimental.get_memory_info('GPU:0')['peak']``). Then the FID pipeline's
images/s: the Inception network (``metrics``) on generated-size images, resized to
299x299 as the metrics do; without its weights at hand it runs with random weights of
the same shapes (the time is the same), and the table says so.

Prints one table and writes it as CSV: ``benchmarks/results/gpu_check-<device>.csv``
(``--out``). ``--tiny`` runs on the CPU at the smoke profile's widths and batch 8 for 2
steps (what the fast tests run).
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if "--tiny" in sys.argv:  # CPU: the allocator's statistics give the peak memory
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import argparse  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import files as artifacts  # noqa: E402
from data.sources import ImageSource  # noqa: E402
from experiments import forecast, planning, runner  # noqa: E402
from experiments.profiles import get_profile  # noqa: E402
from training.runtime import precision_policy, resolve_jit, resolve_precision  # noqa: E402

BASELINES = ("vae/elbo@128", "autoregressive/cross_entropy@128", "gan/wasserstein_gp@128",
             "diffusion/mse@128")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
COLUMNS = ["device", "row", "stage", "precision", "xla", "replicas", "batch", "accumulate",
           "steps", "seconds_per_step", "images_per_second", "step_gflop", "achieved_tflops",
           "peak_tflops", "utilisation", "peak_memory_gb", "note"]


def device_name() -> str:
    """The first GPU's name (``get_device_details``), else "CPU"."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    try:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name") or "GPU"
    except (ValueError, RuntimeError):
        return "GPU"


_CPU_PEAK = []


def device_peak(name: str, precision: str):
    """The data-sheet peak (FLOP/s) of a GPU named ``name`` for ``precision``, or None; the
    CPU's: its measured float32 matmul FLOP/s (``experiments.forecast.matmul_peak``)."""
    if name == "CPU":
        if not _CPU_PEAK:
            _CPU_PEAK.append(forecast.matmul_peak(2048))
        return _CPU_PEAK[0]
    upper = name.upper()
    for acc in forecast.ACCELERATORS:
        if acc.short.split("-")[0] in upper:
            return acc.peak_for(precision)
    return None


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def _random_source(n, shape):
    rng = np.random.default_rng(0)
    return ImageSource("random", "train", rng.integers(0, 256, (n, *shape), dtype=np.uint8),
                       rng.integers(0, 100, n).astype(np.int32), [str(i) for i in range(100)],
                       "random uint8 images")


def _memory_device():
    return "GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0"


def _memory(fn):
    """(fn's result, the allocator's peak bytes during it or None)."""
    device = _memory_device()
    try:
        tf.config.experimental.reset_memory_stats(device)
    except (ValueError, RuntimeError):
        return fn(), None
    out = fn()
    return out, tf.config.experimental.get_memory_info(device)["peak"]


def time_stage(plan, part, inputs, *, strategy, precision, jit, steps, max_seconds,
               accumulate=1):
    """Train ``part`` (a stage of ``plan``) for up to ``steps`` steps; a dict of figures
    and the built model (the next stage is built on it)."""
    family, config = plan.family, plan.family_config
    spec = family.final_stage if part is plan else part.spec
    batch = int(getattr(config, spec.batch_field))
    shape = (plan.image_size, plan.image_size, plan.channels)
    keras.utils.set_random_seed(0)
    with strategy.scope(), precision_policy(precision):
        model = spec.build(config, shape, batch, seed=0, inputs=dict(inputs))
        model(tf.zeros([1, *shape]))
        model.build_optimizers()
    model.configure_steps(jit=jit, accumulate=accumulate,
                          replicas=strategy.num_replicas_in_sync)
    # the plan's counts (forward FLOPs per network x the step's passes), not timed
    cost = forecast.measure_stage(model, config, family.name, spec.name, memory=False)
    k = int(model.batches_per_step)
    source = model.training_source(_random_source(max(4 * batch * k, 64), shape))
    dataset = source.batches(batch * k, drop_remainder=True, repeat=True)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    @tf.function(autograph=False)
    def train_fn():  # training.Trainer's train_fn
        logs = strategy.run(model.train_step, args=(next(iterator),))
        logs = {key: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for key, v in logs.items()}
        model.after_train_step()
        model.step_counter.assign_add(1)
        return logs

    def sync(logs):
        return {key: float(v) for key, v in logs.items()}

    t0 = time.perf_counter()
    sync(train_fn())  # traces (and XLA-compiles) the step
    compile_seconds = time.perf_counter() - t0

    def timed():
        done, start = 0, time.perf_counter()
        logs = None
        while done < steps and (done == 0 or time.perf_counter() - start < max_seconds):
            logs = train_fn()
            done += 1
            if done % 10 == 0:
                sync(logs)
        sync(logs)
        return done, time.perf_counter() - start

    (done, seconds), peak = _memory(timed)
    per_step = seconds / done
    flops = cost.train_flops() * batch
    precision_peak = device_peak(device_name(), precision)
    achieved = flops / per_step
    return {
        "row": plan.name, "stage": spec.name, "precision": precision, "xla": jit,
        "replicas": strategy.num_replicas_in_sync, "batch": batch * k if k > 1 else batch,
        "accumulate": accumulate, "steps": done, "seconds_per_step": per_step,
        "images_per_second": batch * k / per_step, "step_gflop": flops / 1e9,
        "achieved_tflops": achieved / 1e12,
        "peak_tflops": None if precision_peak is None else precision_peak / 1e12,
        "utilisation": None if precision_peak is None else achieved / precision_peak,
        "peak_memory_gb": None if peak is None else peak / 1e9,
        "note": (f"{k} x {batch} images per step; " if k > 1 else "")
                + f"trace and compile {compile_seconds:.1f} s",
    }, model


def check_row(plan, **kwargs):
    """Every stage of ``plan``: a list of figure dicts; an OOM doubles the accumulation."""
    out, inputs = [], {}
    for part in (*plan.stages, plan):
        spec = plan.family.final_stage if part is plan else part.spec
        batch = int(getattr(plan.family_config, spec.batch_field))
        accumulate = 1
        while True:
            try:
                figures, model = time_stage(plan, part, inputs, accumulate=accumulate,
                                            **kwargs)
                break
            except tf.errors.ResourceExhaustedError:
                if accumulate * 2 > batch or batch % (accumulate * 2):
                    out.append({"row": plan.name, "stage": spec.name,
                                "note": f"out of memory at accumulate {accumulate}"})
                    figures, model = None, None
                    break
                accumulate *= 2
                print(f"[gpu_check] {plan.name} {spec.name}: out of memory, retrying with "
                      f"accumulate {accumulate}", flush=True)
            except Exception as err:  # noqa: BLE001 - one broken stage must not hide the rest
                first = (str(err).strip().splitlines() or [type(err).__name__])
                reason = next((line for line in first if "precision" in line or "Error" in line),
                              first[0])[:200]
                print(f"[gpu_check] {plan.name} {spec.name} FAILED: {type(err).__name__}: "
                      f"{reason}", flush=True)
                out.append({"row": plan.name, "stage": spec.name, "precision": kwargs.get(
                    "precision"), "xla": kwargs.get("jit"),
                    "note": f"FAILED: {type(err).__name__}: {reason}"})
                figures, model = None, None
                break
        if figures is None:
            return out
        out.append(figures)
        print(f"[gpu_check] {plan.name} {spec.name}: {figures['images_per_second']:.1f} "
              f"images/s, {figures['seconds_per_step']:.3f} s/step", flush=True)
        if part is not plan:
            inputs[spec.name] = model
    return out


def fid_pipeline(*, batch, reps, image_size, inception_weights=None):
    """The FID feature pipeline's images/s (metrics' Inception, 299x299 resize included)."""
    import metrics
    from metrics.inception import build_fid_inception
    from metrics.weights import default_cache_dir, resolve_weights_file

    note = "weights loaded"
    try:
        resolve_weights_file(inception_weights, default_cache_dir(), download=False)
        network = metrics.inception_feature_network(inception_weights)
    except Exception:  # noqa: BLE001 - absent or unreadable: time the same shapes
        note = "weights absent: random weights of the same shapes (same time)"
        network = metrics.inception_feature_network(model=build_fid_inception())
    images = tf.random.stateless_uniform([batch, image_size, image_size, 3], [0, 1],
                                         minval=-1.0, maxval=1.0)
    fn = tf.function(lambda x: network.fn(x)[0], autograph=False)
    fn(images).numpy()

    def run():
        start = time.perf_counter()
        for _ in range(reps):
            out = fn(images)
        out.numpy()
        return time.perf_counter() - start

    seconds, peak = _memory(run)
    flops = forecast.INCEPTION_FLOPS * batch * reps
    return {"row": "FID Inception-v3", "stage": "features", "precision": "float32",
            "xla": False, "replicas": 1, "batch": batch, "accumulate": 1, "steps": reps,
            "seconds_per_step": seconds / reps, "images_per_second": batch * reps / seconds,
            "step_gflop": forecast.INCEPTION_FLOPS * batch / 1e9,
            "achieved_tflops": flops / seconds / 1e12,
            "peak_tflops": None, "utilisation": None,
            "peak_memory_gb": None if peak is None else peak / 1e9, "note": note}


def _cell(value):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=list(BASELINES), metavar="SEL")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per stage, at most")
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="timed seconds per stage, at most (after the first step)")
    parser.add_argument("--precision", default="auto",
                        choices=("auto", "float32", "bfloat16", "float16"))
    parser.add_argument("--jit", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--tiny", action="store_true",
                        help="CPU, the smoke profile's widths, batch 8, 2 steps (seconds)")
    parser.add_argument("--inception-weights", default=None)
    parser.add_argument("--out", default=None,
                        help="CSV path (default benchmarks/results/gpu_check-<device>.csv)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.tiny:
        tf.config.set_visible_devices([], "GPU")
    strategy = tf.distribute.MirroredStrategy()
    precision, reason = resolve_precision(args.precision, strategy)
    jit = resolve_jit(args.jit, strategy)
    device = device_name()
    profile = get_profile("smoke" if args.tiny else "paper")
    steps = 2 if args.tiny else args.steps
    print(f"[gpu_check] {device} x{strategy.num_replicas_in_sync}; precision {precision} "
          f"({reason}); XLA {'on' if jit else 'off'}; profile {profile.name}", flush=True)
    rows = [row for _, rows in planning.select_rows(args.only, ("table_3_1", "table_3_2"))
            for row in rows]
    results = []
    for row in rows:
        plan = runner.plan_run(row, 0, profile, dataset="cifar100", image_size=32,
                               out_dir="unused", num_classes=100, channels=3)
        results += check_row(plan, strategy=strategy, precision=precision, jit=jit,
                             steps=steps, max_seconds=args.max_seconds)
    failed = [line for line in results if str(line.get("note", "")).startswith("FAILED")]
    results.append(fid_pipeline(batch=2 if args.tiny else 200, reps=1 if args.tiny else 10,
                                image_size=32, inception_weights=args.inception_weights))
    for line in results:
        line["device"] = device
    widths = {c: max(len(c), *(len(_cell(line.get(c))) for line in results)) for c in COLUMNS}
    print("  ".join(f"{c:>{widths[c]}s}" for c in COLUMNS[1:]))
    for line in results:
        print("  ".join(f"{_cell(line.get(c)):>{widths[c]}s}" for c in COLUMNS[1:]))
    out = args.out or os.path.join(RESULTS, f"gpu_check-{slug(device)}.csv")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    artifacts.write_csv(out, [{c: line.get(c) for c in COLUMNS} for line in results], COLUMNS)
    print(f"[gpu_check] wrote {out} in {time.perf_counter() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
