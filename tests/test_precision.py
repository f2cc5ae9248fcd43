"""Mixed precision (``training.runtime``, ``models.shared.precision``): the runtime's choices
and refusals, and every family's steps in bfloat16 and float16 (CPU, tiny shapes).

Tolerances. One train step in bfloat16 / float16 (each optimiser replaced by SGD at rate
1e-3, so the step's logs are the losses at the initial weights plus a tiny update; in
float16 from a loss scale of 2^8, at which no case's first step overflows, so that both
runs take the same step: Keras' 2^15 skips the first steps of these per-example-sum
losses, as the overflow test shows) gives logs within
``rtol * (|float32 value| + 0.1 * the step's largest |log|)`` of the float32 step's:
rtol 5e-2 for bfloat16 (8 significant bits: ~0.4% per rounding, accumulated through
the networks; the tiny StyleGAN2 is the worst, ~4% on its losses) and 1e-2 for float16
(11 bits). A term near zero (a KL of 1e-5) is judged on the step's scale. Counts and
signs (``d_real_sign``, the tokenizer's ``codes_used``, ``perplexity``, ``restarts``,
ADA's p) are not compared: one example's flip moves them by a whole step. The first
update (the gradients, through SGD) is within 0.5 (bfloat16) / 0.15 (float16) of the
float32 update's largest component, everywhere (measured at most 0.24 / 0.044: the tiny
GANs, whose D gradients pass through two half-precision networks; 0.01-0.04 / 0.001-0.004
elsewhere). The denoiser's first loss is the same in every precision (its output layer
starts at zero), so its update is what tests it.
float16 on a CPU is allowed here (Runtime is built directly): the refusal of float16
without a GPU belongs to ``resolve_precision``, what ``--precision`` goes through.
"""
import numpy as np
import pytest
import tensorflow as tf

from models.shared.precision import current_scale
from tests.drivers import family_steps as fs
from training.runtime import (Device, Runtime, check_accumulation, check_max_steps,
                              precision_policy, resolve_jit, resolve_precision)

CPU = [Device("CPU", "CPU")]
A100 = [Device("GPU", "A100", (8, 0))]
T4 = [Device("GPU", "Tesla T4", (7, 5))]
K80 = [Device("GPU", "Tesla K80", (3, 7))]
TPU = [Device("TPU", "TPU:0")]


# ------------------------------------------------------------------ the runtime's choices
@pytest.mark.parametrize("devices, expected", [
    (CPU, "float32"), (A100, "bfloat16"), (T4, "float16"), (K80, "float32"), (TPU, "bfloat16"),
    (A100 + T4, "float16"),  # the oldest GPU decides
])
def test_auto_precision_per_device(devices, expected):
    precision, reason = resolve_precision("auto", devices)
    assert precision == expected
    assert reason.startswith("auto: ") and "\n" not in reason


def test_asked_precisions_are_taken_and_float16_needs_a_gpu():
    assert resolve_precision("float32", CPU)[0] == "float32"
    assert resolve_precision("bfloat16", CPU)[0] == "bfloat16"
    assert resolve_precision("float16", T4)[0] == "float16"
    assert "no bfloat16 tensor cores" in resolve_precision("bfloat16", T4)[1]
    for devices in (CPU, TPU):
        with pytest.raises(ValueError, match="float16 needs a GPU") as err:
            resolve_precision("float16", devices)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        resolve_precision("half", CPU)
    # this machine (the tests' CPU): auto is float32, float16 is refused
    if not tf.config.list_physical_devices("GPU"):
        assert resolve_precision("auto")[0] == "float32"
        assert resolve_precision("auto", tf.distribute.get_strategy())[0] == "float32"
        assert resolve_jit("auto") is False
        with pytest.raises(ValueError, match="float16 needs a GPU"):
            resolve_precision("float16")


def test_jit_choices():
    assert resolve_jit("auto", CPU) is False
    assert resolve_jit("auto", T4) is True and resolve_jit("auto", TPU) is True
    assert resolve_jit("on", CPU) is True and resolve_jit("off", A100) is False
    assert resolve_jit(True) is True and resolve_jit(False) is False
    with pytest.raises(ValueError, match="unknown jit setting 'maybe'"):
        resolve_jit("maybe")


def test_runtime_and_checks_refuse_bad_values_in_one_line():
    for bad in (dict(precision="auto"), dict(precision="fp8"), dict(jit="on"),
                dict(accumulate=0), dict(accumulate=True), dict(accumulate=2.0)):
        with pytest.raises(ValueError) as err:
            Runtime(**bad)
        assert "\n" not in str(err.value)
    assert Runtime("float16", True, 4).policy == "mixed_float16"
    with pytest.raises(ValueError) as err:
        check_accumulation(3, 64)
    assert str(err.value) == "accumulate 3 does not divide the batch 64"
    with pytest.raises(ValueError, match="per-replica batch 32 .64 over 2 replicas."):
        check_accumulation(3, 64, replicas=2)
    assert check_accumulation(4, 64, replicas=2) == 4
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ValueError, match="max_steps must be a positive integer"):
            check_max_steps(bad)
    assert check_max_steps(None) is None and check_max_steps(2) == 2


def test_precision_policy_is_scoped():
    import keras

    before = keras.config.dtype_policy().name
    with precision_policy("bfloat16"):
        layer = keras.layers.Dense(2)
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == before
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    with pytest.raises(RuntimeError):
        with precision_policy("float16"):
            raise RuntimeError("a failed build")
    assert keras.config.dtype_policy().name == before


# ------------------------------------------------------------------ every family's steps
#: one case per trainable stage of every family, with their batch-spanning parts on
PRECISION_CASES = ["vae/mi", "gan/wasserstein_gp", "gan/hinge", "diffusion/autoencoder",
                   "diffusion/denoiser", "autoregressive/tokenizer",
                   "autoregressive/perceptual", "faces/fixed"]
RTOL = {"bfloat16": 5e-2, "float16": 1e-2}
UPDATE_RTOL = {"bfloat16": 0.5, "float16": 0.15}
DISCRETE = {"d_real_sign", "codes_used", "perplexity", "restarts", "ada_p"}


def _sample(model):
    """What the trainer's sample grid renders: reconstructions or samples, float32."""
    if model.IS_FIRST_STAGE:
        case_images = tf.zeros([2, *model.image_shape])
        return model.reconstruct(case_images)
    return model.generate(model.sample_latents(2, seed=1))


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", fs.params(PRECISION_CASES))
def test_half_precision_step_agrees_with_float32(name, precision):
    (reference,), ref_values, _ = fs.run(name, Runtime(), steps=1)
    scale = 2.0 ** 8 if precision == "float16" else None
    (logs,), values, model = fs.run(name, Runtime(precision), steps=1, loss_scale=scale)
    assert model.precision == precision
    if precision == "float16":  # the step was taken by every optimiser
        for name_ in ("optimizer", "d_optimizer", "g_optimizer"):
            if hasattr(model, name_):
                assert int(getattr(model, name_).iterations) >= 1, name_
    # the layers compute in half precision; every variable (weights, EMA, state) is float32
    assert any(layer.compute_dtype == precision for layer in model._flatten_layers())
    assert {v.dtype for v in model.variables if "int" not in v.dtype} == {"float32"}
    assert set(logs) == set(reference)
    floor = 0.1 * max(abs(v) for v in reference.values())
    for key, value in logs.items():
        assert np.isfinite(value), (key, logs)
        if key in DISCRETE:
            continue
        bound = RTOL[precision] * (abs(reference[key]) + floor)
        assert abs(value - reference[key]) <= bound, (key, value, reference[key], bound)
    start = fs.initial_values(name)
    ref_update = [a - b for a, b in zip(ref_values, start, strict=True)]
    update = [a - b for a, b in zip(values, start, strict=True)]
    largest = max(np.abs(u).max() for u in ref_update)
    worst = max(np.abs(a - b).max() for a, b in zip(update, ref_update, strict=True))
    assert largest > 0 and worst <= UPDATE_RTOL[precision] * largest, (worst, largest)
    images = _sample(model)
    assert images.dtype == tf.float32 and np.isfinite(images.numpy()).all()


@pytest.mark.parametrize("name, hit", [("vae/elbo", "optimizer"), pytest.param(
    "gan/hinge", "d_optimizer", marks=pytest.mark.slow)])
def test_float16_loss_scaling_skips_an_overflow_and_recovers(name, hit):
    """An overflowing step (reals of 1e5: float16 activations overflow, the loss is inf)
    is skipped by the optimiser whose loss reads the reals (the VAE's; the GAN's D: its G
    step sees fakes only): no weight, slot or iteration moves, and its scale halves. The
    next steps on ordinary data train on, finite."""
    case = fs.CASES[name]
    model = fs.build(case, Runtime("float16"))
    optimizer = getattr(model, hit)
    variables = optimizer._trainable_variables
    assert current_scale(optimizer) == 2.0 ** 15
    images, labels = fs.step_data(model, case)
    before = [v.numpy() for v in variables]
    (bad,) = fs.train_steps(model, (images * 1e5, labels), 1)
    assert not all(np.isfinite(v) for v in bad.values())
    for v, b in zip(variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)
    assert current_scale(optimizer) == 2.0 ** 14
    assert int(optimizer.iterations) == 0
    # ordinary data: the scale falls until the gradients fit float16, then steps apply
    for _ in range(16):
        (logs,) = fs.train_steps(model, (images, labels), 1)
        assert all(np.isfinite(v) for v in logs.values()), logs
        if int(optimizer.iterations) > 0:
            break
    assert int(optimizer.iterations) > 0
    after = [v.numpy() for v in variables]
    assert all(np.isfinite(a).all() for a in after)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion", "autoregressive", "faces"])
def test_every_precision_builds_the_same_variables(family, tmp_path):
    """A run trained in bfloat16 or float16 loads into the float32 model the samplers and
    ``experiments.runs.load_run`` build: the same variable paths and model checkpoint keys
    (a float16 run's optimisers, restored only on resume, gain the loss scale's two
    variables)."""
    import os
    import re

    stages = [n for n, c in fs.CASES.items() if c.family == family]
    seen = set()
    for name in stages:
        case = fs.CASES[name]
        if case.stage in seen:
            continue
        seen.add(case.stage)
        found = {}
        for precision in ("float32", "bfloat16", "float16"):
            model = fs.build(case, Runtime(precision), build_optimizers=False)
            path = tf.train.Checkpoint(model=model).write(
                os.path.join(tmp_path, f"{case.stage}-{precision}", "ckpt"))
            # (paths without Keras' per-process uniquifying suffixes: same_conv2d_16 is
            # same_conv2d in a fresh process; the checkpoint keys never depend on them)
            found[precision] = ([re.sub(r"_\d+(?=/|$)", "", v.path) for v in model.variables],
                                sorted(k for k, _ in tf.train.list_variables(path)))
        assert found["bfloat16"] == found["float32"], name
        assert found["float16"] == found["float32"], name
