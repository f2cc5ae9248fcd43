"""XLA (``Runtime.jit``, ``GenerativeModel.step_function``): every family's compiled step
computes what its plain step computes (CPU, tiny shapes).

What is compiled: each family's per-replica step units, its forward and backward passes
(D's and G's for the GANs) and its evaluation terms; the noise is drawn before them with
TensorFlow's kernels (XLA's stateless random floats are other numbers), the gathers and
the optimiser's update run after them (``models.base``).

Tolerance: two train steps and one test step, jit on against off on the same batch, each
optimiser replaced by SGD at rate 1e-3 (``tests.drivers.family_steps.use_sgd``): every
log within 1e-4 relative (plus 1e-6 absolute), every weight within 1e-5 absolute
(measured: logs ~1e-6 relative, weights ~1e-7: XLA fuses and reorders float32 sums).
The face GAN's cases run without dropout (Keras draws its masks inside the compiled unit
with XLA's generator: equal in distribution, not in value).
"""
import numpy as np
import pytest
import tensorflow as tf

from tests.drivers import family_steps as fs
from training.runtime import Runtime

RTOL, ATOL_LOGS, ATOL_WEIGHTS = 1e-4, 1e-6, 1e-5


def _close(a, b):
    assert set(a) == set(b)
    for key in a:
        assert abs(a[key] - b[key]) <= RTOL * abs(b[key]) + ATOL_LOGS, (key, a, b)


@pytest.mark.parametrize("name", fs.params(sorted(fs.CASES)))
def test_compiled_steps_equal_plain_steps(name):
    ref_logs, ref_values, ref_model = fs.run(name, Runtime())
    logs, values, model = fs.run(name, Runtime(jit=True))
    assert model.xla_steps and model._units.by_name  # the units went through XLA
    assert all(f._jit_compile for f in model._units.by_name.values())
    for a, b in zip(logs, ref_logs, strict=True):
        _close(a, b)
    for a, b in zip(values, ref_values, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL_WEIGHTS)
    for a, b in zip(fs.state_values(model), fs.state_values(ref_model), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL_WEIGHTS)
    case = fs.CASES[name]
    data = fs.step_data(model, case, seed=1)
    _close(fs.test_step(model, data, case), fs.test_step(ref_model, data, case))


def test_the_gan_config_s_old_switch_is_not_a_second_mechanism():
    """GANConfig.jit_compile is kept for old config.json files only: the run's jit decides."""
    case = fs.CASES["gan/hinge"]
    model = fs.build(fs.Case(case.family, case.stage,
                             {**case.overrides, "jit_compile": True}, case.size, case.batch))
    assert not model.xla_steps
    data = fs.step_data(model, case)
    fs.train_steps(model, data, 1)
    assert not model._units.by_name  # nothing compiled: the plain step's own graph
    assert isinstance(model.step_function(lambda: None, "x"), type(lambda: None))


def test_xla_and_accumulation_together():
    """jit and accumulate at once (what the GPU check runs): still the plain step."""
    ref_logs, ref_values, _ = fs.run("vae/wae", Runtime())
    logs, values, model = fs.run("vae/wae", Runtime(jit=True, accumulate=2))
    assert isinstance(model._units.by_name["gradients"], tf.types.experimental.PolymorphicFunction)
    for a, b in zip(logs, ref_logs, strict=True):
        _close(a, b)
    for a, b in zip(values, ref_values, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL_WEIGHTS)
