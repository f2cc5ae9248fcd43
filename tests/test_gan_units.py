"""GAN family, unit level: losses against their formulas, penalties against their
analytic values, the modulated convolution, augmentations, EMA and ADA updates."""
import dataclasses
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from models import get_family
from models.gan.config import GANConfig
from models.gan.layers import ModulatedConv2D
from models.gan.losses import LOSSES, gradient_penalty
from models.shared import augment
from models.shared.regularizers import r1_penalty

TINY = dict(batch_size=4, latent_size=8, w_dim=8, channel_base=64, channel_max=8,
            mapping_layers=1, jit_compile=False)

D_REAL = [2.0, -0.5, 0.3]
D_FAKE = [-1.5, 0.7, 0.0]


def _losses(name):
    out = LOSSES[name](tf.constant(D_REAL), tf.constant(D_FAKE))
    return {k: v.numpy() for k, v in out.items()}


def _check(name, d_loss, g_loss, d_real_loss):
    out = _losses(name)
    np.testing.assert_allclose(out["d_loss"], d_loss, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["g_loss"], g_loss, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["d_real_loss"], d_real_loss, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["d_real_loss"] + out["d_fake_loss"], out["d_loss"], rtol=1e-6)


def test_wasserstein_on_hand_computed_outputs():
    # L_D = D(fake) - D(real), L_G = -D(fake) (its gradient penalty is tested below)
    _check("wasserstein_gp", d_loss=[-3.5, 1.2, -0.3], g_loss=[1.5, -0.7, 0.0],
           d_real_loss=[-2.0, 0.5, -0.3])


def test_hinge_on_hand_computed_outputs():
    # L_D = max(0, 1 - D(real)) + max(0, 1 + D(fake)) = [0 + 0, 1.5 + 1.7, 0.7 + 1.0]
    _check("hinge", d_loss=[0.0, 3.2, 1.7], g_loss=[1.5, -0.7, 0.0], d_real_loss=[0.0, 1.5, 0.7])


def test_lsgan_on_hand_computed_outputs():
    # L_D = (D(real) - 1)^2 / 2 + D(fake)^2 / 2, L_G = (D(fake) - 1)^2 / 2
    _check("lsgan", d_loss=[0.5 + 1.125, 1.125 + 0.245, 0.245 + 0.0],
           g_loss=[3.125, 0.045, 0.5], d_real_loss=[0.5, 1.125, 0.245])


def test_non_saturating_is_thesis_formulas_2_7_and_2_8():
    def sigmoid(x):
        return 1.0 / (1.0 + math.exp(-x))
    d_loss = [-math.log(sigmoid(r)) - math.log(1.0 - sigmoid(f)) for r, f in zip(D_REAL, D_FAKE)]
    g_loss = [-math.log(sigmoid(f)) for f in D_FAKE]
    _check("ns", d_loss=d_loss, g_loss=g_loss, d_real_loss=[-math.log(sigmoid(r)) for r in D_REAL])


def test_registry_names_and_only_wasserstein_has_its_own_penalty():
    assert set(LOSSES) == {"wasserstein_gp", "hinge", "lsgan", "ns"}
    assert get_family("gan").losses is LOSSES
    assert [n for n, loss in LOSSES.items() if loss.penalty is not None] == ["wasserstein_gp"]


def test_gradient_penalty_of_a_linear_critic():
    rng = np.random.default_rng(0)
    a = tf.constant(rng.normal(size=[4, 4, 3]), tf.float32)

    def critic(x):
        return tf.reduce_sum(x * a, axis=[1, 2, 3])     # f(x) = a . x, gradient a everywhere

    real = tf.constant(rng.normal(size=[5, 4, 4, 3]), tf.float32)
    fake = tf.constant(rng.normal(size=[5, 4, 4, 3]), tf.float32)
    eps = tf.constant(rng.uniform(size=[5]), tf.float32)
    expected = 10.0 * (float(tf.norm(a)) - 1.0) ** 2
    np.testing.assert_allclose(gradient_penalty(critic, real, fake, eps).numpy(),
                               [expected] * 5, rtol=1e-5)
    # the registry's penalty reads its weight from the config (default 10)
    np.testing.assert_allclose(
        LOSSES["wasserstein_gp"].penalty(critic, real, fake, eps, GANConfig()).numpy(),
        [expected] * 5, rtol=1e-5)


def test_r1_of_a_known_function():
    x = tf.constant(np.random.default_rng(1).normal(size=[3, 4, 4, 2]), tf.float32)

    def critic(images):
        return tf.reduce_sum(tf.sin(images), axis=[1, 2, 3])   # gradient cos(x)

    gamma = 0.7
    expected = 0.5 * gamma * tf.reduce_sum(tf.square(tf.cos(x)), axis=[1, 2, 3])
    np.testing.assert_allclose(r1_penalty(critic, x, gamma).numpy(), expected.numpy(), rtol=1e-5)


# ----------------------------------------------------------- modulated convolution
def _modconv(mode, up=False, demodulate=True, filters=16, cin=32, size=16, batch=64, seed=0):
    layer = ModulatedConv2D(filters, 3, 0, demodulate=demodulate, up=up, mode=mode, seed=seed)
    x = tf.random.stateless_normal([batch, size, size, cin], [seed, 1])
    ws = tf.random.stateless_normal([batch, 1, 8], [seed, 2])
    return layer, x, ws


def test_demodulated_conv_keeps_unit_variance():
    layer, x, ws = _modconv("input_scaling")
    y = layer([x, ws]).numpy()[:, 1:-1, 1:-1, :]      # interior: the zero padding adds no terms
    # E[y^2] = 1 for unit-variance inputs, for every example and output channel
    assert abs(y.var() - 1.0) < 0.05, y.var()
    per_channel = y.var(axis=(0, 1, 2))                 # [out], each over 64 styles
    assert np.all(np.abs(per_channel - 1.0) < 0.1), per_channel
    # without demodulation the scale depends on the styles
    layer, x, ws = _modconv("input_scaling", demodulate=False)
    assert abs(layer([x, ws]).numpy().var() - 1.0) > 0.05


@pytest.mark.parametrize("up,demodulate", [(False, True), (True, True), (False, False)])
def test_modconv_implementations_agree(up, demodulate):
    fast, x, ws = _modconv("input_scaling", up=up, demodulate=demodulate, batch=4, cin=8, size=8)
    slow, _, _ = _modconv("per_sample_weights", up=up, demodulate=demodulate, batch=4, cin=8,
                          size=8)
    slow.build([x.shape, ws.shape])
    fast.build([x.shape, ws.shape])
    for a, b in zip(slow.weights, fast.weights):
        a.assign(b)
    np.testing.assert_allclose(slow([x, ws]).numpy(), fast([x, ws]).numpy(), atol=1e-4)


# ------------------------------------------------------------------- augmentation
def _images(batch=4, size=8, seed=0):
    return tf.random.stateless_uniform([batch, size, size, 3], [seed, 0], -1.0, 1.0)


def _input_gradient(fn, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(tf.square(fn(x)))
    return tape.gradient(total, x)


def test_diffaugment_keeps_shapes_and_passes_gradients():
    x = _images()
    u = tf.random.stateless_uniform([4, augment.DIFFAUGMENT_UNIFORMS], [0, 3])
    policy = augment.parse_policy("color,translation,cutout")
    y = augment.diff_augment(x, policy, u)
    assert y.shape == x.shape
    assert not np.allclose(y.numpy(), x.numpy())
    g = _input_gradient(lambda t: augment.diff_augment(t, policy, u), x)
    assert g is not None and np.all(np.isfinite(g.numpy())) and np.abs(g.numpy()).sum() > 0
    np.testing.assert_array_equal(augment.diff_augment(x, (), u).numpy(), x.numpy())
    with pytest.raises(ValueError):
        augment.parse_policy("color,zoom")


def test_translation_and_cutout_move_the_right_pixels():
    x = _images(batch=1)
    y = augment.translate(x, tf.constant([1.0]), tf.constant([-2.0]))
    np.testing.assert_array_equal(y[0, 1:, :-2].numpy(), x[0, :-1, 2:].numpy())
    np.testing.assert_array_equal(y[0, 0].numpy(), 0.0)
    np.testing.assert_array_equal(y[0, :, -2:].numpy(), 0.0)
    c = augment.cutout(x, tf.constant([4.0]), tf.constant([4.0]), 4)
    np.testing.assert_array_equal(c[0, 2:6, 2:6].numpy(), 0.0)
    np.testing.assert_array_equal(c[0, :2].numpy(), x[0, :2].numpy())


def test_ada_augment_identity_at_p0_and_differentiable_at_p1():
    x = _images()
    u = tf.random.stateless_uniform([4, augment.ADA_UNIFORMS], [0, 4])
    n = tf.random.stateless_normal([4, augment.ADA_NORMALS], [0, 5])
    np.testing.assert_allclose(augment.ada_augment(x, 0.0, u, n).numpy(), x.numpy(), atol=1e-5)
    y = augment.ada_augment(x, 1.0, u, n)
    assert y.shape == x.shape and not np.allclose(y.numpy(), x.numpy())
    g = _input_gradient(lambda t: augment.ada_augment(t, 1.0, u, n), x)
    assert g is not None and np.all(np.isfinite(g.numpy())) and np.abs(g.numpy()).sum() > 0


def test_ada_xflip_alone_is_an_exact_mirror():
    x = _images(batch=2)
    u = np.full([2, augment.ADA_UNIFORMS], 0.99, np.float32)   # every gate closed ...
    u[:, 0], u[:, 1] = 0.0, 0.75                                # ... but the x-flip (i = 1)
    n = tf.zeros([2, augment.ADA_NORMALS])
    y = augment.ada_augment(x, 0.5, tf.constant(u), n)
    np.testing.assert_allclose(y.numpy(), x.numpy()[:, :, ::-1], atol=1e-5)


# ------------------------------------------------------------------ EMA and ADA
def _model(**overrides):
    cfg = GANConfig(**{**TINY, **overrides})
    model = get_family("gan").build(cfg, (8, 8, 3), cfg.batch_size, seed=0)
    model(tf.zeros([1, 8, 8, 3]))
    model.build_optimizers()
    return model


def test_ema_update_and_sampler_reads_the_ema_copy():
    model = _model()
    for ema, w in zip(model.ema_weights, model.generator_weights):
        np.testing.assert_array_equal(ema.numpy(), w.numpy())     # starts as a copy
    before = [e.numpy() for e in model.ema_weights]
    for w in model.generator_weights:
        w.assign(w + 1.0)
    model.update_ema(beta=0.9)
    for ema, w, old in zip(model.ema_weights, model.generator_weights, before):
        np.testing.assert_allclose(ema.numpy(), w.numpy() + 0.9 * (old - w.numpy()), rtol=1e-6)
    # beta = 0.5 ** (batch / min(ema_kimg * 1000, rampup * images seen))
    model.step_counter.assign(99)
    expected = 0.5 ** (4 / min(10_000, 0.05 * 100 * 4))
    assert float(model.ema_beta()) == pytest.approx(expected, rel=1e-5)
    # samples come from the EMA networks: breaking G's weights changes nothing
    z = model.sample_latents(3, seed=1)
    images = model.generate(z).numpy()
    for w in model.generator_weights:
        w.assign(tf.zeros_like(w))
    np.testing.assert_array_equal(model.generate(z).numpy(), images)
    assert images.shape == (3, 8, 8, 3) and images.min() >= -1 and images.max() <= 1


def test_truncation_pulls_w_towards_its_mean_and_psi_1_changes_nothing():
    model = _model()
    z = model.sample_latents(5, seed=2)
    plain = model.generate(z).numpy()
    w = model.ema_mapping(z, training=False)
    np.testing.assert_array_equal(model.truncate(w).numpy(), w.numpy())  # psi = 1: identity
    model.config = dataclasses.replace(model.config, truncation_psi=0.5)
    model.configure_sampler()
    centre = model.w_avg().numpy()
    np.testing.assert_allclose(model.truncate(w).numpy(), centre + 0.5 * (w.numpy() - centre),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.generate(z).numpy(), plain)
    model.config = dataclasses.replace(model.config, truncation_psi=0.0)
    collapsed = model.generate(z).numpy()  # every sample is the mean w's image
    np.testing.assert_allclose(collapsed, np.broadcast_to(collapsed[:1], collapsed.shape),
                               atol=1e-6)
    model.config = dataclasses.replace(model.config, truncation_psi=1.5)
    with pytest.raises(ValueError, match="truncation_psi must be in"):
        model.configure_sampler()
    assert get_family("gan").sampler_fields == ("truncation_psi",)


def test_a_config_field_added_later_matches_older_runs_at_its_default(tmp_path):
    """Runs recorded before truncation_psi existed match a plan at psi = 1 (the old
    behaviour); another psi is a sampler change (re-sample), not a different run."""
    import json

    from experiments.profiles import get_profile
    from experiments.runner import (check_reusable, plan_run, recorded_identity,
                                    sampler_changes)
    from experiments.tables import Row

    row = Row(table="table_3_1", family="gan", model="StyleGAN2", loss="hinge", batch_size=8,
              latent_size=128)

    def plan(**overrides):
        return plan_run(row, 0, get_profile("smoke"), dataset="synthetic", image_size=32,
                        out_dir=str(tmp_path), overrides=overrides or None)

    old = plan().identity()
    del old["family_config"]["truncation_psi"]
    os.makedirs(plan().run_dir)
    with open(os.path.join(plan().run_dir, "config.json"), "w") as f:
        json.dump({"identity": old}, f)
    assert recorded_identity(plan()) == plan().identity()
    check_reusable(plan())
    assert sampler_changes(plan(truncation_psi=0.7)) == {"truncation_psi": (1.0, 0.7)}


def test_ada_p_rises_when_the_discriminator_overfits_and_falls_back():
    model = _model(ada=True, ada_interval=2, ada_kimg=0.1, ada_target=0.6)
    step = 4 * 2 / (0.1 * 1000)             # batch * interval / (ada_kimg * 1000) = 0.08
    overfit = tf.constant([3.0, 1.0, 0.5, 2.0])   # D(real) > 0 everywhere: r_t = 1 > 0.6
    expected = []
    for i in range(6):
        model.update_ada(overfit)
        model.step_counter.assign_add(1)
        expected.append(step * ((i + 1) // 2))
        assert float(model.ada_p) == pytest.approx(expected[-1], abs=1e-6)
    # r_t = 0.5 < 0.6 (D unsure on the reals): p comes back down, never below 0
    mixed = tf.constant([1.0, -1.0, 1.0, 1.0])
    for _ in range(10):
        model.update_ada(mixed)
        model.step_counter.assign_add(1)
    assert float(model.ada_p) == 0.0
    assert float(model.ada_count) == 0.0


def test_leaky_relu_first_and_second_order_gradients_match_tf():
    from models.gan.layers import leaky_relu
    rng = np.random.default_rng(2)
    w = tf.Variable(rng.normal(size=[6, 5]), dtype=tf.float32)
    x = tf.constant(rng.normal(size=[4, 6]), tf.float32)

    def penalty_grad(act):       # d/dw ||d/dx sum(act(x w)^2)||^2: a double backprop
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = tf.reduce_sum(tf.square(act(x @ w)))
            g = inner.gradient(y, x)
            r = tf.reduce_sum(tf.square(g))
        return g, outer.gradient(r, w)

    ours, ref = penalty_grad(leaky_relu), penalty_grad(lambda t: tf.nn.leaky_relu(t, 0.2))
    np.testing.assert_allclose(leaky_relu(x @ w).numpy(), tf.nn.leaky_relu(x @ w, 0.2).numpy())
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_bfloat16_convolutions_stay_close_to_float32():
    fast, x, ws = _modconv("input_scaling", batch=4, cin=8, size=8)
    half = ModulatedConv2D(16, 3, 0, conv_dtype="bfloat16", seed=0)
    half.build([x.shape, ws.shape])
    fast.build([x.shape, ws.shape])
    for a, b in zip(half.weights, fast.weights):
        a.assign(b)
    y32, y16 = fast([x, ws]).numpy(), half([x, ws]).numpy()
    assert y16.dtype == np.float32
    assert np.abs(y16 - y32).max() < 0.05 * np.abs(y32).max()


def test_networks_at_64x64_and_num_ws():
    from models.gan.networks import noise_shapes, num_ws
    assert num_ws(32) == 8 and num_ws(64) == 10
    assert noise_shapes(8) == [(4, 4, 1), (8, 8, 1), (8, 8, 1)]
    cfg = GANConfig(**TINY)
    model = get_family("gan").build(cfg, (64, 64, 3), 4, seed=0)
    images = model.generate(model.sample_latents(2, seed=0))
    assert images.shape == (2, 64, 64, 3)
    assert model(images).shape == (2,)
    with pytest.raises(ValueError):
        get_family("gan").build(cfg, (48, 48, 3), 4)


def test_critic_steps_default_to_each_objectives_paper_and_bad_values_fail_up_front():
    from experiments.profiles import get_profile
    from experiments.runner import plan_run
    from experiments.table_3_1 import TABLE
    from common.config import ConfigError

    assert GANConfig(loss="wasserstein_gp").critic_steps() == 5  # Gulrajani et al., n_critic
    assert GANConfig(loss="hinge").critic_steps() == 1
    assert GANConfig(loss="hinge", d_steps=3).batches_per_step() == 3
    row = next(r for r in TABLE.rows if r.family == "gan")
    for bad, message in (({"d_steps": 0}, "d_steps must be a positive integer"),
                         ({"d_architecture": "skip"}, "d_architecture must be")):
        with pytest.raises(ConfigError, match=message):
            plan_run(row, 0, get_profile("smoke"), dataset="synthetic", image_size=32,
                     out_dir="/tmp/unused", overrides=bad)


@pytest.mark.parametrize("architecture", ["resnet", "orig"])
def test_discriminator_architectures_build_and_differ_in_skip_layers(architecture):
    from models.gan.networks import build_discriminator

    config = GANConfig(d_architecture=architecture, channel_base=64, channel_max=8)
    d = build_discriminator((16, 16, 1), config, seed=0)
    skips = [layer.name for layer in d.layers if layer.name.endswith("_skip")]
    assert (len(skips) > 0) == (architecture == "resnet")
    assert d(tf.zeros([4, 16, 16, 1])).shape == (4,)
