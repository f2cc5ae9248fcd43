"""The autoregressive family's pieces: quantiser, codebook EMA, losses, the transformer's
causality and key/value cache, the sampler's options, shapes and bad options."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from models import get_family
from models.autoregressive.config import AutoregressiveConfig, check_context, token_grid
from models.autoregressive.losses import LOSSES, brier, feature_distance, soft_reconstruction
from models.autoregressive.model import Tokenizer
from models.autoregressive.networks import TransformerPrior
from models.autoregressive.quantizer import (code_statistics, ema_codebook_update,
                                             nearest_codes, straight_through)


def _tiny_config(**kw):
    base = dict(batch_size=4, latent_size=16, vq_widths=(8, 8, 16), code_dim=8, width=16,
                depth=2, heads=2, num_classes=3, vq_batch_size=4)
    return AutoregressiveConfig(**{**base, **kw})


def _model(shape=(16, 16, 3), **kw):
    keras.utils.set_random_seed(0)
    model = get_family("autoregressive").build(_tiny_config(**kw), shape, 4, seed=0)
    model(tf.zeros([1, *shape]))
    return model


# ------------------------------------------------------------------ quantiser
def test_nearest_codes_and_statistics():
    codebook = tf.constant([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    z = tf.constant([[[0.1, 0.1], [0.9, -0.2]], [[0.2, 1.5], [-5.0, 0.0]]])  # [2, 2, 2]
    np.testing.assert_array_equal(nearest_codes(z, codebook), [[0, 1], [2, 0]])
    counts, perplexity, used = code_statistics(tf.constant([0, 1, 2, 0]), 4)
    np.testing.assert_array_equal(counts, [2, 1, 1, 0])
    p = np.array([0.5, 0.25, 0.25])
    assert float(perplexity) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-6)
    assert float(used) == 0.75


def test_straight_through_gradient_is_the_identity_to_the_encoder():
    z_e = tf.constant([[0.3, -1.2], [2.0, 0.5]])
    codebook = tf.constant([[0.0, 0.0], [2.0, 1.0]])
    weight = tf.constant([[1.0, 2.0], [-3.0, 4.0]])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([z_e, codebook])
        z_q = tf.gather(codebook, nearest_codes(z_e, codebook))
        out = straight_through(z_e, z_q)
        loss = tf.reduce_sum(weight * out)
    np.testing.assert_array_equal(out, z_q)  # forward: the quantised vectors
    np.testing.assert_array_equal(tape.gradient(loss, z_e), weight)  # backward: copied
    assert tape.gradient(loss, codebook) is None  # the codebook learns by EMA, not here


def test_codebook_ema_update_against_a_hand_computation():
    count = tf.constant([1.0, 2.0, 1.0])
    total = tf.constant([[1.0, 1.0], [2.0, 0.0], [0.0, 1.0]])
    z = tf.constant([[1.0, 3.0], [3.0, 1.0], [5.0, 5.0]])
    codes = tf.constant([0, 0, 1])
    restart = tf.constant([[9.0, 9.0], [8.0, 8.0], [7.0, 7.0]])
    new_count, new_total, codebook, dead = ema_codebook_update(
        count, total, z, codes, decay=0.5, threshold=0.9, restart_vectors=restart)
    # code 0: N = .5*1 + .5*2 = 1.5, m = .5*(1,1) + .5*(4,4) = (2.5, 2.5), e = m / N
    # code 1: N = .5*2 + .5*1 = 1.5, m = .5*(2,0) + .5*(5,5) = (3.5, 2.5)
    # code 2: N = .5*1 + 0 = 0.5 < 0.9: dead, restarted at (7, 7); m = (0, 0.5)
    np.testing.assert_allclose(new_count, [1.5, 1.5, 0.5])
    np.testing.assert_allclose(new_total, [[2.5, 2.5], [3.5, 2.5], [0.0, 0.5]])
    np.testing.assert_allclose(codebook, [[2.5 / 1.5, 2.5 / 1.5], [3.5 / 1.5, 2.5 / 1.5],
                                          [7.0, 7.0]], rtol=1e-6)
    np.testing.assert_array_equal(dead, [False, False, True])
    # threshold 0: no restarts
    *_, codebook, dead = ema_codebook_update(count, total, z, codes, 0.5, 0.0, restart)
    assert not np.any(dead) and float(codebook[2, 1]) == pytest.approx(1.0)


@pytest.mark.slow
def test_tokenizer_round_trip_of_its_own_reconstructions_is_stable():
    """After a short training on 32 images, re-tokenising a reconstruction keeps most
    codes, and a second round trip moves the image less than the first one did."""
    from data import open_dataset
    keras.utils.set_random_seed(0)
    x, y = next(iter(open_dataset("synthetic", "train", image_size=16, limit=32).batches(32)))
    cfg = AutoregressiveConfig(latent_size=32, vq_widths=(8, 16, 16), code_dim=8,
                               vq_learning_rate=3e-3)
    tok = Tokenizer(cfg, image_shape=(16, 16, 3), global_batch_size=32)
    tok(x[:1])
    tok.build_optimizers()

    @tf.function(autograph=False)
    def step():
        logs = tok.train_step((x, y))
        tok.step_counter.assign_add(1)
        return logs
    for _ in range(300):
        logs = step()
    assert float(logs["codes_used"]) > 0.5  # restarts keep the codebook in use
    codes = tok.tokens(x)
    once = tok.decode_codes(codes)
    again = tok.tokens(once)
    twice = tok.decode_codes(again)
    first = float(tf.reduce_mean(tf.square(once - x)))
    second = float(tf.reduce_mean(tf.square(twice - once)))
    assert np.mean(codes.numpy() == again.numpy()) > 0.6
    assert second < first  # round trips converge instead of drifting
    np.testing.assert_array_equal(tok.reconstruct(x), once)  # reconstruct = decode(tokens)


# ------------------------------------------------------------------ losses
def test_cross_entropy_and_brier_against_hand_computed_values():
    logits = tf.constant([[[0.0, np.log(3.0)], [np.log(3.0), 0.0]]])  # p = (1/4, 3/4), (3/4, 1/4)
    codes = tf.constant([[1, 1]])
    cfg = _tiny_config()
    ce = LOSSES["cross_entropy"](logits, codes, None, None, cfg)
    np.testing.assert_allclose(ce, [(-np.log(0.75) - np.log(0.25)) / 2], rtol=1e-6)
    # position 0: (1/4)^2 + (3/4 - 1)^2 = 1/8; position 1: (3/4)^2 + (1/4 - 1)^2 = 9/8
    np.testing.assert_allclose(LOSSES["mse"](logits, codes, None, None, cfg), [(1 / 8 + 9 / 8) / 2],
                               rtol=1e-6)
    perfect = 200.0 * tf.one_hot([[2, 0, 1]], 3)  # softmax is one-hot in float32
    np.testing.assert_array_equal(brier(perfect, tf.constant([[2, 0, 1]])), [0.0])
    worst = 200.0 * tf.one_hot([[0]], 3)
    np.testing.assert_allclose(brier(worst, tf.constant([[1]])), [2.0])  # the maximum


def test_perceptual_loss_is_cross_entropy_for_a_perfect_prediction():
    model = _model()
    tok = model.tokenizer
    codes = tf.random.stateless_uniform([2, 16], [1, 2], 0, 16, tf.int32)
    logits = 500.0 * tf.one_hot(codes, 16)
    # the soft reconstruction of a one-hot distribution is the decoding of its codes
    grid = tf.gather(tok.codebook_tensor(), tf.reshape(codes, [2, 4, 4]))
    np.testing.assert_allclose(soft_reconstruction(logits, tok), tok.decode(grid), atol=1e-5)
    images = tok.decode(grid)
    loss = LOSSES["perceptual"](logits, codes, images, tok, model.config)
    np.testing.assert_allclose(loss, [0.0, 0.0], atol=1e-4)
    other = tf.reverse(images, axis=[0])
    far = LOSSES["perceptual"](logits, codes, other, tok, model.config)
    assert np.all(far.numpy() > 0.01)
    half = LOSSES["perceptual"](logits, codes, other, tok,
                                _tiny_config(perceptual_weight=0.5))
    np.testing.assert_allclose(half, far / 2, rtol=1e-4)  # the stated weight scales the term
    a = [tf.constant([[[[3.0, 4.0]]]])]
    np.testing.assert_allclose(feature_distance(a, [tf.constant([[[[-3.0, -4.0]]]])]), [4.0])


def test_perceptual_step_trains_the_prior_and_leaves_the_tokenizer_alone():
    model = _model()
    model.build_optimizers()
    x = tf.random.stateless_uniform([4, 16, 16, 3], [0, 1], -1, 1)
    labels = tf.constant([0, 1, 2, 0])
    model.loss_fn = LOSSES["perceptual"]
    with tf.GradientTape() as tape:
        terms = model._terms((x, labels), evaluation=False)
    grads = tape.gradient(terms["loss"], model.prior.trainable_variables)
    assert all(g is not None and np.isfinite(tf.convert_to_tensor(g).numpy()).all() for g in grads)
    assert float(terms["loss"]) > float(terms["nll"])  # CE + a positive perceptual term
    tokenizer_before = [w.numpy().copy() for w in model.tokenizer.weights]
    prior_before = [w.numpy().copy() for w in model.prior.weights]
    model.train_step((x, labels))
    assert not model.tokenizer.trainable_variables  # frozen inside stage 2
    for w, before in zip(model.tokenizer.weights, tokenizer_before):
        np.testing.assert_array_equal(w.numpy(), before)
    assert any(np.abs(w.numpy() - b).max() > 0 for w, b in zip(model.prior.weights, prior_before))


def test_cached_codes_give_the_steps_what_tokenizing_each_batch_gives():
    """cross_entropy and mse train on codes tokenized once per fit: the cached batches
    are the per-batch codes of the same images in the same order, and a step on them
    gives the same terms as a step on the images; perceptual keeps the images."""
    from data import FeatureSource, ImageSource
    model = _model()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (29, 16, 16, 3), dtype=np.uint8)
    source = ImageSource("toy", "train", images, rng.integers(0, 3, 29), ["a", "b", "c"], "test")
    cached = model.training_source(source)
    assert isinstance(cached, FeatureSource) and cached.feature_shape == (16,)
    kw = dict(shuffle_seed=3, epoch=1, skip_batches=1, drop_remainder=True)
    pairs = list(zip(cached.batches(4, **kw), source.batches(4, **kw)))
    assert len(pairs) == 6
    for (codes, labels), (x, x_labels) in pairs:
        assert codes.dtype == tf.int32
        np.testing.assert_array_equal(labels, x_labels)
        np.testing.assert_array_equal(codes, model.tokenizer.tokens(x))
    (codes, labels), (x, _) = pairs[0]
    for name in ("cross_entropy", "mse"):
        model.loss_fn = LOSSES[name]
        on_codes = model._terms((codes, labels), evaluation=True)
        on_images = model._terms((x, labels), evaluation=True)
        for key in on_codes:
            np.testing.assert_allclose(on_codes[key], on_images[key], rtol=1e-6)
    model.loss_fn = LOSSES["perceptual"]
    assert model.training_source(source) is source
    with pytest.raises(ValueError, match="compares images"):
        model._terms((codes, labels), evaluation=True)


# ------------------------------------------------------------------ transformer
def _prior(length=12, num_codes=7):
    keras.utils.set_random_seed(1)
    prior = TransformerPrior(num_codes, num_classes=3, length=length, width=16, depth=2, heads=2)
    prior.build()
    return prior


def test_changing_code_t_changes_no_logit_before_it():
    prior = _prior()
    labels = tf.constant([0, 2])
    codes = tf.random.stateless_uniform([2, 11], [3, 4], 0, 7, tf.int32)
    base = prior((labels, codes)).numpy()  # [2, 12, 7]; row i predicts code i
    for t in (0, 4, 10):
        changed = tf.tensor_scatter_nd_update(codes, [[0, t], [1, t]],
                                              (codes[:, t] + 1) % 7)
        out = prior((labels, changed)).numpy()
        # row i predicts code i from the codes before it: rows 0..t do not read code t
        np.testing.assert_array_equal(out[:, :t + 1], base[:, :t + 1])
        assert np.abs(out[:, t + 1:] - base[:, t + 1:]).max() > 1e-6
    other = prior((tf.constant([1, 0]), codes)).numpy()  # the label token comes first:
    assert np.abs(other[:, 0] - base[:, 0]).max() > 1e-6   # every row reads it


def test_key_value_cache_equals_full_recomputation():
    prior = _prior()
    labels = tf.constant([0, 1, 3])
    codes = tf.random.stateless_uniform([3, 12], [5, 6], 0, 7, tf.int32)
    full = prior((labels, codes[:, :-1])).numpy()
    cache = prior.empty_cache(3)
    for i in range(12):
        previous = codes[:, max(i - 1, 0)]
        logits, cache = prior.step(labels, previous, tf.constant(i), cache)
        np.testing.assert_allclose(logits, full[:, i], atol=2e-5, rtol=0)


@pytest.mark.parametrize("settings", [{}, {"top_k": 3, "temperature": 0.7},
                                      {"guidance_scale": 2.0}, {"guidance_scale": 0.0}])
def test_cached_sampler_draws_what_full_recomputation_draws(settings):
    model = _model()
    for key, value in settings.items():
        setattr(model.config, key, value)
    model.configure_sampler()
    labels = tf.constant([0, 1, 2, 1, 0])
    seed = tf.constant(11, tf.int64)
    cached = model.sample_codes(labels, seed, use_cache=True).numpy()
    full = model.sample_codes(labels, seed, use_cache=False).numpy()
    np.testing.assert_array_equal(cached, full)
    assert cached.shape == (5, 16) and cached.min() >= 0 and cached.max() < 16
    if settings.get("top_k") == 3:  # every draw is among the 3 most likely codes
        logits = model.prior((labels, cached[:, :-1])).numpy()
        top = np.argsort(-logits, axis=-1)[..., :3]
        assert np.all((top == cached[..., None]).any(-1))


def test_sampling_is_deterministic_in_the_seed_and_images_are_in_range():
    model = _model()
    images = model.generate(model.sample_latents(3, seed=4))
    assert images.shape == (3, 16, 16, 3) and float(tf.reduce_max(tf.abs(images))) <= 1.0
    np.testing.assert_array_equal(images, model.generate(model.sample_latents(3, seed=4)))
    assert np.abs(images - model.generate(model.sample_latents(3, seed=5))).max() > 0


# ------------------------------------------------------------------ shapes and options
def test_token_grid_mapping():
    cfg = AutoregressiveConfig()
    assert token_grid(cfg, (32, 32, 3)) == (8, 8) and check_context(cfg, (32, 32, 3)) == 64
    assert token_grid(cfg, (64, 64, 1)) == (16, 16)
    with pytest.raises(ValueError, match="16x16 = 256 tokens.*context_length 64"):
        check_context(cfg, (64, 64, 3))
    with pytest.raises(ValueError, match="multiples"):
        token_grid(cfg, (30, 30, 3))


@pytest.mark.parametrize("change, message", [
    ({"top_k": 0}, "top_k must be >= 1"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"temperature": -1.0}, "temperature must be > 0"),
    ({"guidance_scale": -0.5}, "guidance_scale must be >= 0"),
    ({"heads": 3}, "not divisible by heads"),
    ({"vq_widths": (8, 16)}, "vq_widths needs"),
    ({"downsample": 3}, "power of two"),
    ({"latent_size": 1}, "codebook size K"),
])
def test_bad_options_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        AutoregressiveConfig(**change).validate()


def test_prior_refuses_a_tokenizer_of_another_codebook_size_or_a_short_context():
    family = get_family("autoregressive")
    tokenizer = family.stages[0].build(_tiny_config(latent_size=32), (16, 16, 3), 4)
    with pytest.raises(ValueError, match="codebook of 32 codes.*latent size .* is 16"):
        family.final_stage.build(_tiny_config(), (16, 16, 3), 4, inputs={"tokenizer": tokenizer})
    with pytest.raises(ValueError, match="longer than the prior's context_length 8"):
        family.build(_tiny_config(context_length=8), (16, 16, 3), 4)


def test_shapes_and_frozen_tokenizer():
    model = _model()
    assert model(tf.zeros([2, 16, 16, 3])).shape == (2, 16, 16)
    assert model.tokenizer.trainable is False
    assert {id(v) for v in model.trainable_variables} == \
        {id(v) for v in model.prior.trainable_variables}
