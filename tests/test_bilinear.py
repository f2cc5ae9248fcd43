"""The bilinear game min_theta max_phi theta*phi and the extragradient optimisers.

Measured per-step factors of theta^2 + phi^2 must equal the closed forms to 1e-12 (float64),
for the experiment's numpy methods and for the Keras ``Extragradient`` wrapper around SGD.
"""
import numpy as np
import pytest
import tensorflow as tf

from experiments import bilinear
from common.optimizers import OPTIMIZERS, Extragradient, extrapolates, make_optimizer

ETAS = (0.05, 0.2, 0.5, 0.9)


@pytest.mark.parametrize("method", sorted(bilinear.CLOSED_FORMS))
@pytest.mark.parametrize("eta", ETAS)
def test_measured_factors_equal_the_closed_forms(method, eta):
    config = bilinear.BilinearConfig(etas=(eta,), iterations=50, start=(0.7, -1.3))
    factors = bilinear.per_step_factors(bilinear.trajectory(method, eta, config))
    assert np.max(np.abs(factors - bilinear.CLOSED_FORMS[method](eta))) < 1e-12


def test_simultaneous_diverges_and_the_others_contract():
    config = bilinear.BilinearConfig(iterations=100)
    result = bilinear.run(config)
    final = {(r["method"], r["eta"]): r["final_squared_norm"] for r in result["rows"]}
    start = 2.0
    for eta in config.etas:
        assert final[("simultaneous", eta)] > start
        assert final[("implicit", eta)] < start and final[("extragradient", eta)] < start
    # extragradient contracts faster the closer eta is to 1/sqrt(2) (1 - eta^2 + eta^4 minimal)
    assert final[("extragradient", 0.5)] < final[("extragradient", 0.05)]


def test_alternating_steps_conserve_a_quadratic_form():
    """theta+ = theta - eta phi, phi+ = phi + eta theta+ has determinant 1 and conserves
    theta^2 + phi^2 - eta theta phi: N^2 oscillates, never contracts."""
    eta = 0.5
    w = np.array([1.0, 0.3])
    q = lambda v: v[0] ** 2 + v[1] ** 2 - eta * v[0] * v[1]  # noqa: E731
    q0 = q(w)
    for _ in range(200):
        w = bilinear.alternating(w, eta, {})
        assert abs(q(w) - q0) < 1e-12


def test_rows_carry_the_closed_form_beside_the_measured_value(tmp_path):
    result = bilinear.run(bilinear.BilinearConfig(etas=(0.5,), iterations=10))
    bilinear.write_reports(tmp_path, result, "test")
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == set(bilinear.METHODS)
    assert rows["extragradient"]["closed_form_value"] == pytest.approx(1 - 0.25 + 0.0625)
    assert rows["adam"]["closed_form_value"] is None
    for name in ("bilinear.md", "bilinear.csv", "bilinear.json", "bilinear.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "1 - eta^2 + eta^4" in (tmp_path / "bilinear.md").read_text()


@pytest.mark.parametrize("etas", [(0.0,), (-0.1, 0.5), ()])
def test_non_positive_eta_is_refused(etas):
    with pytest.raises(ValueError, match="not > 0"):
        bilinear.BilinearConfig(etas=etas).validate()


# ----------------------------------------------------------------- Keras optimisers
def _play(name, eta, steps=6):
    """The game with Keras variables (float64) and the optimiser ``name``; N_t^2 per step."""
    theta = tf.Variable(tf.constant(0.8, tf.float64))
    phi = tf.Variable(tf.constant(-0.6, tf.float64))
    variables = [theta, phi]
    opt = make_optimizer(name, eta)
    opt.build(variables)

    def grads():  # F(w) = (phi, -theta)
        return [tf.identity(phi), -tf.identity(theta)]
    norms = [0.8 ** 2 + 0.6 ** 2]
    for _ in range(steps):
        if extrapolates(opt):
            opt.extrapolate(grads() if opt.extrapolation_uses_gradients else None, variables)
        opt.apply(grads(), variables)
        norms.append(float(theta.numpy() ** 2 + phi.numpy() ** 2))
    return np.asarray(norms)


# step sizes exactly representable in float32 (Keras keeps the learning rate in float32)
@pytest.mark.parametrize("eta", [0.125, 0.25, 0.5])
def test_keras_extra_sgd_contracts_by_the_closed_form(eta):
    factors = bilinear.per_step_factors(_play("extra_sgd", eta))
    assert np.max(np.abs(factors - (1 - eta ** 2 + eta ** 4))) < 1e-12
    plain = bilinear.per_step_factors(_play("sgd", eta))
    assert np.max(np.abs(plain - (1 + eta ** 2))) < 1e-12


def test_keras_past_extra_sgd_follows_popov_and_converges():
    """Extrapolation from the past: w_{t+1/2} = w_t - eta F(w_{t-1/2}), checked against
    the recursion written out in numpy, and it contracts."""
    eta = 0.25
    w, prev_half_grad = np.array([0.8, -0.6]), np.zeros(2)
    expected = [w @ w]
    for _ in range(40):
        half = w - eta * prev_half_grad
        prev_half_grad = bilinear.field(half)
        w = w - eta * prev_half_grad
        expected.append(w @ w)
    got = _play("past_extra_sgd", eta, steps=40)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert got[-1] < 0.2 * got[0]


def test_every_optimizer_name_builds_and_extra_adam_wraps_adam():
    for name in OPTIMIZERS:
        assert make_optimizer(name, 1e-3) is not None
    extra = make_optimizer("extra_adam", 1e-3)
    assert isinstance(extra, Extragradient) and type(extra.base).__name__ == "Adam"
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        make_optimizer("lion", 1e-3)
