"""Every family's trainable stages at tiny shapes, built under a ``training.runtime.Runtime``
and stepped the way the trainer steps them (``strategy.run`` of ``train_step`` inside a
tf.function, then ``after_train_step`` and the step counter): what the precision, XLA and
accumulation tests compare.

``CASES`` name a (family, stage, config overrides, image size) each; ``build(case,
runtime)`` makes the stage's model (its earlier stages freshly built, untrained, under the
same precision) and ``inputs(model, case)`` the data its steps take (images, or what its
``training_source`` would make of them: the denoiser's encoder moments).
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from common.config import from_dict
from models import get_family
from training.runtime import Runtime, precision_policy


@dataclasses.dataclass(frozen=True)
class Case:
    family: str
    stage: str
    overrides: dict
    size: int
    batch: int = 4


_GAN = dict(latent_size=8, w_dim=8, channel_base=64, channel_max=8, mapping_layers=1,
            mbstd_group=2, style_mixing_prob=0.5)
_DIFFUSION = dict(ae_widths=(8, 8, 16, 16), unet_widths=(8, 8), attention_heads=2,
                  latent_size=32, num_classes=10, attention_side=4)
_AR = dict(vq_widths=(8, 8, 16), code_dim=8, width=16, depth=1, heads=2, warmup_steps=2,
           latent_size=16, num_classes=10)
_FACES = dict(channel_divisor=32, control_grid=2)

CASES = {
    "vae/elbo": Case("vae", "model", {"widths": (8, 16), "latent_size": 8, "loss": "elbo"}, 8),
    "vae/mi": Case("vae", "model", {"widths": (8, 16), "latent_size": 8, "loss": "mi"}, 8),
    "vae/wae": Case("vae", "model", {"widths": (8, 16), "latent_size": 8, "loss": "wae"}, 8),
    # WGAN-GP: 2 critic steps with the gradient penalty, minibatch-std groups of 2
    "gan/wasserstein_gp": Case("gan", "model", {**_GAN, "loss": "wasserstein_gp",
                                                "d_steps": 2}, 8),
    # hinge with lazy R1 (every step), DiffAugment and ADA
    "gan/hinge": Case("gan", "model", {**_GAN, "loss": "hinge", "r1_gamma": 1.0,
                                       "d_reg_every": 1, "diffaugment": "color,translation",
                                       "ada": True, "ada_interval": 1, "ada_kimg": 0.01,
                                       "ada_target": -2.0}, 8),
    "diffusion/autoencoder": Case("diffusion", "autoencoder", dict(_DIFFUSION), 16),
    "diffusion/denoiser": Case("diffusion", "denoiser", {**_DIFFUSION, "loss": "mse"}, 16),
    "autoregressive/tokenizer": Case("autoregressive", "tokenizer", dict(_AR), 8),
    "autoregressive/prior": Case("autoregressive", "prior", {**_AR, "loss": "cross_entropy"}, 8),
    "autoregressive/perceptual": Case("autoregressive", "prior",
                                      {**_AR, "loss": "perceptual"}, 8),
    # the listing's mode with its dropout off: Keras' dropout masks are not the model's
    # noise (tests that need them equal say so)
    "faces/faithful": Case("faces", "model", {**_FACES, "loss": "faithful", "dropout": 0.0},
                           64, batch=2),
    "faces/fixed": Case("faces", "model", {**_FACES, "loss": "fixed", "ema_kimg": 1.0,
                                           "r1_gamma": 0.1, "dropout": 0.0}, 64, batch=2),
}


#: the cases whose builds and traces take tens of seconds on 2 cores (the GANs' double
#: backprop, the U-Net, the perceptual loss's tokenizer passes): marked slow in the
#: parametrisations (``params``), so ``-m "not slow"`` keeps one cheap case per family
#: where it can
SLOW = {"gan/wasserstein_gp", "gan/hinge", "diffusion/denoiser", "autoregressive/perceptual"}


def params(names):
    """pytest parameters of case names, the SLOW ones marked slow."""
    import pytest

    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


#: cases that only some tests run (not in every family's parametrisation)
VARIANTS = {
    # minibatch-std groups of 4 on a batch of 4: micro-batches of 2 do not hold a group
    "gan/hinge-mbstd4": dataclasses.replace(
        CASES["gan/hinge"], overrides={**CASES["gan/hinge"].overrides, "mbstd_group": 4}),
}


def config_of(case: Case):
    family = get_family(case.family)
    stage = next(s for s in family.stages if s.name == case.stage)
    values = {**case.overrides, stage.batch_field: case.batch}
    if case.family == "gan" or case.family == "faces":
        values["batch_size"] = case.batch
    return family, stage, from_dict(family.config_cls, values)


#: the optimiser attributes of the families' models
_OPTIMIZERS = ("optimizer", "g_optimizer", "d_optimizer")


def use_sgd(model, learning_rate: float):
    """Replace each of the model's optimisers by plain SGD (loss-scaled like the model's
    own at float16): its update is the gradient times the rate, so comparing updates
    compares gradients. (Adam's first steps are lr * g / (|g| + eps): a component whose
    gradient is at the level of float32 rounding gets an update of either sign, so two
    equal-to-1e-7 gradients can give updates 2 lr apart.)"""
    for name in _OPTIMIZERS:
        if hasattr(model, name):
            old = getattr(model, name)
            optimizer = model.loss_scaled(keras.optimizers.SGD(learning_rate))
            optimizer.build(old._trainable_variables if hasattr(old, "_trainable_variables")
                            else model.trainable_variables)
            setattr(model, name, optimizer)


def set_loss_scale(model, scale: float):
    """Set every loss-scaled optimiser's current scale (float16)."""
    for name in _OPTIMIZERS:
        optimizer = getattr(model, name, None)
        for candidate in (optimizer, getattr(optimizer, "base", None)):
            if isinstance(candidate, keras.optimizers.LossScaleOptimizer):
                candidate.dynamic_scale.assign(scale)


def build(case: Case, runtime: Runtime = Runtime(), seed: int = 0, build_optimizers=True,
          sgd: float | None = None, loss_scale: float | None = None):
    """The stage's model under ``runtime`` (its earlier stages built fresh), optimisers built
    and steps configured, as the trainer makes it; ``sgd``: SGD at this rate instead of
    the family's optimisers (:func:`use_sgd`); ``loss_scale``: float16's starting scale
    instead of Keras' 2^15 (:func:`set_loss_scale`)."""
    family, stage, config = config_of(case)
    shape = (case.size, case.size, 3)
    keras.utils.set_random_seed(seed)
    with precision_policy(runtime.precision):
        inputs = {}
        for earlier in family.stages:
            if earlier.name == stage.name:
                break
            if earlier.needed(config):
                inputs[earlier.name] = earlier.build(config, shape, case.batch, seed=seed,
                                                     inputs=dict(inputs))
        model = stage.build(config, shape, case.batch, seed=seed, inputs=inputs)
        model(tf.zeros([1, *shape]))
        if build_optimizers:
            model.build_optimizers()
            if sgd is not None:
                use_sgd(model, sgd)
            if loss_scale is not None:
                set_loss_scale(model, loss_scale)
    model.configure_steps(jit=runtime.jit, accumulate=runtime.accumulate)
    return model


def images(case: Case, n: int, seed: int = 0):
    """Smooth random images [n, size, size, 3] in [-1, 1] and labels [n]."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(-1, 1, (n, 4, 4, 3)).astype(np.float32)
    x = tf.image.resize(low, [case.size, case.size]).numpy()
    return x, rng.integers(0, 10, n).astype(np.int32)


def step_data(model, case: Case, seed: int = 0):
    """One train step's (inputs, labels): batches_per_step batches, as the trainer hands
    them, in what the steps consume (the denoiser: the frozen encoder's moments)."""
    x, y = images(case, case.batch * int(model.batches_per_step), seed)
    if case.family == "diffusion" and case.stage == "denoiser":
        x = tf.cast(model.encoder_moments(tf.constant(x)), tf.float32).numpy()
    return tf.constant(x), tf.constant(y)


def train_steps(model, data, steps: int = 1, strategy=None):
    """``steps`` train steps on ``data`` (the same batch each step, as the tests need
    nothing else); the logs of each as floats."""
    strategy = strategy or tf.distribute.get_strategy()

    @tf.function(autograph=False)
    def step(batch):
        logs = strategy.run(model.train_step, args=(batch,))
        logs = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in logs.items()}
        model.after_train_step()
        model.step_counter.assign_add(1)
        return logs

    return [{k: float(v) for k, v in step(data).items()} for _ in range(steps)]


def test_step(model, data, case: Case):
    """One test step on the first batch of ``data``; its logs as floats."""
    @tf.function(autograph=False)
    def step(batch):
        return model.test_step(batch)
    return {k: float(v) for k, v in step(tuple(t[:case.batch] for t in data)).items()}


def trainable_values(model):
    return [v.numpy().astype(np.float64) for v in model.trainable_variables]


def state_values(model):
    """Every variable of the model (weights, EMAs, ADA, codebook), float64."""
    return [np.asarray(v.numpy(), np.float64) for v in model.variables]


_RUNS = {}


def run(name: str, runtime: Runtime = Runtime(), steps: int = 2, sgd: float | None = 1e-3,
        loss_scale: float | None = None):
    """(logs of each train step, trainable values after them, the model) of ``steps``
    steps of case ``name`` under ``runtime`` on one fixed batch; cached, so the test
    modules share their float32 references."""
    key = (name, runtime, steps, sgd, loss_scale)
    if key not in _RUNS:
        case = {**CASES, **VARIANTS}[name]
        model = build(case, runtime, sgd=sgd, loss_scale=loss_scale)
        data = step_data(model, case)
        logs = train_steps(model, data, steps)
        _RUNS[key] = (logs, trainable_values(model), model)
    return _RUNS[key]


_INITIAL = {}


def initial_values(name: str):
    """The trainable values case ``name`` starts from (the same in every precision:
    the weights are float32 variables drawn from the same seeded initialisers)."""
    if name not in _INITIAL:
        _INITIAL[name] = trainable_values(build({**CASES, **VARIANTS}[name], Runtime(),
                                                build_optimizers=False))
    return _INITIAL[name]
