"""The diffusion family's pieces: forward process, samplers, losses, guidance, shapes, options."""
import math

import numpy as np
import pytest
import tensorflow as tf

from models import get_family
from models.diffusion.config import DiffusionConfig, latent_shape
from models.diffusion.losses import LOSSES, autoencoder_terms
from models.diffusion.samplers import ddim_sample, ddim_timesteps, ddpm_sample, guided_eps
from models.diffusion.schedules import Schedule, cosine_betas, linear_betas
from models.shared.distributions import gaussian_kl


def _linear(timesteps=1000):
    return Schedule(linear_betas(timesteps, 1e-4, 0.02))


# ------------------------------------------------------------------ forward process
def test_linear_schedule_is_eq_2_12():
    s = _linear()
    assert s.timesteps == 1000
    assert s.betas[0] == pytest.approx(1e-4) and s.betas[-1] == pytest.approx(0.02)
    np.testing.assert_allclose(s.alpha_bar, np.cumprod(1 - s.betas), rtol=1e-15)


@pytest.mark.parametrize("schedule", [_linear(), Schedule(cosine_betas(1000))])
def test_closed_form_equals_iterated_forward_moments(schedule):
    # x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps_t is linear-Gaussian: its mean
    # coefficient m and variance v follow a recursion that must equal the closed form
    # q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) at every t.
    m, v = 1.0, 0.0
    for t, beta in enumerate(schedule.betas):
        m, v = math.sqrt(1 - beta) * m, (1 - beta) * v + beta
        assert m == pytest.approx(math.sqrt(schedule.alpha_bar[t]), rel=1e-12, abs=1e-15)
        assert v == pytest.approx(1 - schedule.alpha_bar[t], rel=1e-12)


def test_q_sample_matches_simulated_forward_process():
    # Simulate T = 50 noising steps on 20,000 copies of x0 with TensorFlow and compare
    # the empirical distribution at several t with the closed-form q_sample.
    schedule = Schedule(linear_betas(50, 1e-3, 0.2))
    x0 = tf.constant([[0.7, -0.3]], tf.float32)
    n = 20000
    x = tf.tile(x0, [n, 1])
    gen = tf.random.Generator.from_seed(1)
    for t in range(schedule.timesteps):
        beta = float(schedule.betas[t])
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * gen.normal(x.shape)
        if t in (0, 9, 49):
            closed = schedule.q_sample(tf.tile(x0, [n, 1]), tf.fill([n], t),
                                       gen.normal(x.shape))
            for sim, ref in ((x, closed),):
                se = 4 * math.sqrt((1 - schedule.alpha_bar[t]) / n)  # 4 standard errors
                np.testing.assert_allclose(tf.reduce_mean(sim, 0), tf.reduce_mean(ref, 0),
                                           atol=2 * se + 1e-6)
                np.testing.assert_allclose(tf.math.reduce_std(sim, 0),
                                           tf.math.reduce_std(ref, 0), rtol=0.03)
            np.testing.assert_allclose(tf.reduce_mean(closed, 0),
                                       math.sqrt(schedule.alpha_bar[t]) * x0[0], atol=0.03)


def test_cosine_schedule_follows_its_definition():
    s = Schedule(cosine_betas(1000))
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 100, 500, 900):
        assert s.alpha_bar[t] == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert s.betas.max() <= 0.999


# ------------------------------------------------------------------ samplers
def _oracle(schedule, x0):
    """The exact noise of a point-mass data distribution at x0: eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)."""
    def eps_fn(x_t, t):
        return (x_t - schedule.signal_rate(t) * x0) / schedule.noise_rate(t)
    return eps_fn


def _noise(shape, seed=3):
    return lambda i: tf.random.stateless_normal(shape, [seed, i])


@pytest.mark.parametrize("steps", [1, 10, 50])
def test_ddim_with_the_true_noise_recovers_x0(steps):
    schedule = _linear()
    x0 = tf.random.stateless_uniform([4, 4, 4, 3], [0, 1], -1, 1)
    eps = tf.random.stateless_normal(x0.shape, [0, 2])
    x_T = schedule.q_sample(x0, tf.fill([4], 999), eps)
    out = ddim_sample(lambda x, t: eps, schedule, x_T, _noise(x0.shape), steps, eta=0.0)
    np.testing.assert_allclose(out, x0, atol=2e-4)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim_eta1"])
def test_stochastic_samplers_with_an_oracle_land_on_the_data_point(sampler):
    schedule = _linear(200)
    x0 = tf.constant(np.linspace(-0.9, 0.9, 2 * 2 * 2 * 3).reshape(2, 2, 2, 3), tf.float32)
    x_T = tf.random.stateless_normal(x0.shape, [5, 5])
    if sampler == "ddpm":
        out = ddpm_sample(_oracle(schedule, x0), schedule, x_T, _noise(x0.shape))
    else:
        out = ddim_sample(_oracle(schedule, x0), schedule, x_T, _noise(x0.shape), 20, eta=1.0)
    np.testing.assert_allclose(out, x0, atol=1e-4)


def test_ddim_timesteps_run_from_the_last_step_to_zero():
    assert ddim_timesteps(1000, 1) == [999]
    taus = ddim_timesteps(1000, 50)
    assert taus[0] == 999 and taus[-1] == 0 and len(taus) == 50 and taus == sorted(taus)[::-1]


def test_guidance_formula():
    cond, uncond = tf.constant([1.0, 2.0]), tf.constant([0.5, -1.0])
    np.testing.assert_array_equal(guided_eps(cond, uncond, 1.0), cond)
    np.testing.assert_array_equal(guided_eps(cond, uncond, 0.0), uncond)
    np.testing.assert_allclose(guided_eps(cond, uncond, 3.0), [2.0, 8.0])


# ------------------------------------------------------------------ losses
def test_losses_against_hand_computed_values():
    eps = tf.constant([[0.0, 1.0, 2.0, -3.0], [1.0, 1.0, 1.0, 1.0]])
    eps_hat = tf.constant([[0.5, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    cfg = DiffusionConfig(huber_delta=1.0)
    # residuals 0.5, 0, 2, 3 in the first example, 0 in the second
    np.testing.assert_allclose(LOSSES["mse"](eps, eps_hat, cfg), [(0.25 + 4 + 9) / 4, 0.0])
    np.testing.assert_allclose(LOSSES["mae"](eps, eps_hat, cfg), [(0.5 + 2 + 3) / 4, 0.0])
    # Huber, delta 1: 0.5 * 0.5^2, 0, 1 * (2 - 0.5), 1 * (3 - 0.5)
    np.testing.assert_allclose(LOSSES["huber"](eps, eps_hat, cfg),
                               [(0.125 + 1.5 + 2.5) / 4, 0.0])
    # a wider delta keeps 2 in the quadratic zone: 0.125, 0, 2, 2.5 * (3 - 1.25)
    wide = DiffusionConfig(huber_delta=2.5)
    np.testing.assert_allclose(LOSSES["huber"](eps, eps_hat, wide),
                               [(0.125 + 2.0 + 2.5 * 1.75) / 4, 0.0], rtol=1e-6)


def test_autoencoder_terms():
    x = tf.zeros([2, 2, 2, 1])
    x_hat = tf.constant(np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2)[..., :1] / 10)
    mean, log_var = tf.zeros([2, 1, 1, 2]), tf.zeros([2, 1, 1, 2])
    terms = autoencoder_terms(x, x_hat, mean, log_var, DiffusionConfig(ae_kl_weight=0.5))
    l1 = np.abs(x_hat.numpy()).reshape(2, -1).sum(1)
    np.testing.assert_allclose(terms["recon"], l1, rtol=1e-6)
    np.testing.assert_allclose(terms["kl"], [0.0, 0.0])  # N(0, I) posterior
    np.testing.assert_allclose(gaussian_kl(tf.ones([1, 3]), tf.zeros([1, 3])), [1.5])


# ------------------------------------------------------------------ shapes and options
def test_latent_size_mapping():
    cfg = lambda z, **kw: DiffusionConfig(latent_size=z, **kw)  # noqa: E731
    assert latent_shape(cfg(128), (32, 32, 3)) == (4, 4, 8)
    assert latent_shape(cfg(2048), (32, 32, 3)) == (8, 8, 32)
    assert latent_shape(cfg(2048), (64, 64, 3)) == (16, 16, 8)
    assert latent_shape(cfg(128, latent_side=2), (32, 32, 3)) == (2, 2, 32)
    assert latent_shape(cfg(128, first_stage="none"), (32, 32, 1)) == (32, 32, 1)
    with pytest.raises(ValueError, match="does not map onto 32x32"):
        latent_shape(cfg(100), (32, 32, 3))
    with pytest.raises(ValueError, match="power-of-two"):
        latent_shape(cfg(128), (48, 40, 3))


@pytest.mark.parametrize("change, message", [
    ({"sampler": "euler"}, "unknown diffusion sampler 'euler'"),
    ({"guidance_scale": -0.5}, "guidance_scale must be >= 0"),
    ({"schedule": "sigmoid"}, "unknown noise schedule"),
    ({"sampling_steps": 0}, "sampling_steps"),
    ({"first_stage": "vqgan"}, "unknown first_stage"),
])
def test_bad_options_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        DiffusionConfig(**change).validate()


def _tiny_config(**kw):
    base = dict(batch_size=4, latent_size=128, ae_widths=(8, 8, 16, 16), unet_widths=(16, 16),
                attention_heads=2, num_classes=3, sampling_steps=3)
    return DiffusionConfig(**{**base, **kw})


@pytest.mark.slow
def test_networks_shapes_and_guidance_scale_one_is_the_conditional_model():
    family = get_family("diffusion")
    config = _tiny_config()
    model = family.build(config, (32, 32, 3), 4, seed=0)
    eps = model(tf.zeros([2, 32, 32, 3]))
    assert eps.shape == (2, 4, 4, 8)
    assert model.autoencoder.trainable is False and not model.autoencoder.trainable_variables
    assert {id(v) for v in model.trainable_variables} == {id(v) for v in model.unet.trainable_variables}
    z = tf.random.stateless_normal([2, 4, 4, 8], [1, 1])
    t, y = tf.constant([10, 500]), tf.constant([0, 2])
    cond = model.ema_unet([z, t, y])
    np.testing.assert_array_equal(model.guided_eps(z, t, y), cond)
    model.config.guidance_scale = 2.5
    model.configure_sampler()
    uncond = model.ema_unet([z, t, tf.fill([2], config.num_classes)])
    np.testing.assert_allclose(model.guided_eps(z, t, y), uncond + 2.5 * (cond - uncond),
                               rtol=1e-5, atol=1e-6)
    images = model.generate(model.sample_latents(3, seed=4))
    assert images.shape == (3, 32, 32, 3)
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0
    np.testing.assert_array_equal(images, model.generate(model.sample_latents(3, seed=4)))


@pytest.mark.slow
def test_cached_encoder_moments_give_the_steps_what_encoding_each_batch_gives():
    """training_source encodes once; its batches must be the per-batch encodings of the
    same images in the same order (shuffled, skipped), and a step must refuse images."""
    from data import FeatureSource, ImageSource
    family = get_family("diffusion")
    model = family.build(_tiny_config(), (32, 32, 3), 4, seed=0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (37, 32, 32, 3), dtype=np.uint8)
    source = ImageSource("toy", "train", images, rng.integers(0, 3, 37), ["a", "b", "c"], "test")
    cached = model.training_source(source)
    assert isinstance(cached, FeatureSource) and cached.feature_shape == (4, 4, 16)
    assert cached.fingerprint() == source.fingerprint()
    kw = dict(shuffle_seed=5, epoch=2, skip_batches=1, drop_remainder=True)
    pairs = list(zip(cached.batches(8, **kw), source.batches(8, **kw)))
    assert len(pairs) == 3
    noise = tf.random.stateless_normal([8, 4, 4, 8], [3, 4])
    for (moments, labels), (x, x_labels) in pairs:
        np.testing.assert_array_equal(labels, x_labels)
        np.testing.assert_allclose(moments, model.encoder_moments(x), rtol=1e-5, atol=1e-6)
        mean, log_var = model.autoencoder.encode(x)
        np.testing.assert_allclose(model.sample_posterior(moments, noise),
                                   (mean + tf.exp(0.5 * log_var) * noise) * model.latent_scale,
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="encoder's moments"):
        model.test_step((tf.zeros([4, 32, 32, 3]), tf.zeros([4], tf.int32)))
    pixel = family.build(_tiny_config(first_stage="none", unet_widths=(8, 16, 16, 16)),
                         (16, 16, 1), 4, seed=0)
    assert pixel.training_source(source) is source


@pytest.mark.slow
def test_pixel_space_option_has_no_first_stage():
    family = get_family("diffusion")
    config = _tiny_config(first_stage="none", unet_widths=(8, 16, 16, 16))
    assert [s.name for s in family.stages_for(config)] == ["denoiser"]
    model = family.build(config, (16, 16, 1), 4, seed=0)
    assert model.autoencoder is None
    assert model(tf.zeros([1, 16, 16, 1])).shape == (1, 16, 16, 1)
    for sampler in ("ddim", "ddpm"):
        model.config.sampler, model.config.timesteps = sampler, 20
        model.schedule = Schedule(linear_betas(20, 1e-4, 0.2))
        model.configure_sampler()
        assert model.generate(model.sample_latents(2, seed=0)).shape == (2, 16, 16, 1)


@pytest.mark.slow
def test_patchify_folds_the_latent_and_the_unet_sees_the_folded_side():
    from models.diffusion.config import unet_patch
    from models.diffusion.networks import Patchify
    x = tf.random.stateless_normal([2, 8, 8, 3], [0, 1])
    folded = Patchify(2)(x)
    np.testing.assert_array_equal(folded, tf.nn.space_to_depth(x, 2))
    np.testing.assert_array_equal(Patchify(2, inverse=True)(folded), x)
    config = _tiny_config(latent_size=2048, unet_input_side=4, unet_widths=(16, 16))
    assert unet_patch(config, 8) == 2 and unet_patch(config, 4) == 1
    assert unet_patch(_tiny_config(), 8) == 1  # 0 = off
    model = get_family("diffusion").build(config, (32, 32, 3), 4, seed=0)
    assert model.latent_shape == (8, 8, 32)
    assert model.unet.get_layer("stem").input.shape[1:] == (4, 4, 128)
    assert model(tf.zeros([2, 32, 32, 3])).shape == (2, 8, 8, 32)
    with pytest.raises(ValueError, match="unet_input_side"):
        _tiny_config(unet_input_side=3).validate()


@pytest.mark.slow
def test_a_patched_unet_wider_than_its_first_level_can_copy_its_input():
    """8x8x32 in 2x2 patches is 128 channels per position against a first level of 16:
    the output layer also sees the patched input, so eps_hat = z_t (what eps is at high
    noise) is representable. Set the to_eps kernel to pass those channels through: the
    U-Net must then return z_t itself, position for position (patch order included)."""
    from models.diffusion.networks import build_unet
    unet = build_unet((8, 8, 32), (16, 16), 1, 0, 2, 3, patch=2)
    to_eps = unet.get_layer("to_eps")
    kernel = np.zeros(to_eps.kernel.shape, np.float32)  # [3, 3, 16 + 128, 128]
    kernel[1, 1, 16:, :] = np.eye(128)
    to_eps.kernel.assign(kernel)
    z = tf.random.stateless_normal([2, 8, 8, 32], [5, 6])
    out = unet([z, tf.constant([3, 900]), tf.constant([0, 3])])
    np.testing.assert_allclose(out, z, rtol=1e-6, atol=1e-6)
    # eps_skip: the untrained (zero-output) network predicts sqrt(1 - alpha_bar_t) z_t
    table = np.linspace(0.1, 1.0, 1000)
    unet = build_unet((8, 8, 32), (16, 16), 1, 0, 2, 3, patch=2, eps_skip=table)
    t = tf.constant([3, 900])
    out = unet([z, t, tf.constant([0, 3])])
    np.testing.assert_allclose(out, z * table[[3, 900]].reshape(2, 1, 1, 1).astype(np.float32),
                               rtol=1e-6, atol=1e-6)
    unpatched = build_unet((4, 4, 8), (16, 16), 1, 0, 2, 3, eps_skip=table)  # 8 < 16: plain
    names = [layer.name for layer in unpatched.layers]
    assert "input_skip" not in names and "eps_skip" not in names


@pytest.mark.parametrize("kernel_size, shape", [(3, [2, 4, 4, 6]), (1, [3, 2, 2, 5]),
                                                (3, [2, 7, 5, 3])])
def test_same_conv_equals_keras_conv_in_value_and_gradients(kernel_size, shape):
    from keras import layers
    from models.shared.blocks import SameConv2D

    x = tf.random.stateless_normal(shape, [0, 3])
    ours, ref = SameConv2D(4, kernel_size), layers.Conv2D(4, kernel_size, padding="same")
    ours.build(shape), ref.build(shape)
    kernel = tf.random.stateless_normal(ours.kernel.shape, [1, 3])
    bias = tf.random.stateless_normal([4], [2, 3])
    for layer in (ours, ref):
        layer.kernel.assign(kernel), layer.bias.assign(bias)
    dy = tf.random.stateless_normal([*shape[:3], 4], [4, 3])
    results = []
    for layer in (ours, ref):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * dy)
        results.append([y, *tape.gradient(loss, [x, layer.kernel, layer.bias])])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
