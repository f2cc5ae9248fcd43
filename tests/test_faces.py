"""Thesis 003's face GAN: the appendix networks, both modes, the optimisers, the control grid."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from models.faces.config import MODES, FacesConfig, mode_overrides
from models.faces.losses import LOSSES, bce
from models.faces.networks import build_discriminator, build_generator

TINY = dict(channel_divisor=16, control_grid=2)


def _params_by_hand_generator():
    """Appendix 2, counted from the listing (kernel * in * out + out per layer)."""
    dense = 32 * 128 * 16 * 16 + 128 * 16 * 16
    conv1 = 5 * 5 * 128 * 256 + 256
    deconv = 4 * 4 * 256 * 256 + 256
    conv2 = 5 * 5 * 256 * 512 + 512
    conv3 = 5 * 5 * 512 * 512 + 512
    out = 7 * 7 * 512 * 3 + 3
    return dense + conv1 + 2 * deconv + conv2 + conv3 + out


def _params_by_hand_discriminator():
    """Appendix 3: Conv2D(256, 3) on 64x64x3 (62x62), four Conv2D(256, 4, strides 2) without
    padding (30, 14, 6, 2), Flatten (2*2*256), Dense(1)."""
    return (3 * 3 * 3 * 256 + 256) + 4 * (4 * 4 * 256 * 256 + 256) + (2 * 2 * 256 + 1)


def test_appendix_networks_have_the_listed_parameters_and_shapes():
    g = build_generator(32)
    d = build_discriminator((64, 64, 3))
    assert g.count_params() == _params_by_hand_generator() == 13_905_155
    assert d.count_params() == _params_by_hand_discriminator() == 4_203_521
    assert tuple(g.output.shape) == (None, 64, 64, 3)
    assert tuple(d.output.shape) == (None, 1)
    shapes = [tuple(layer.output.shape[1:]) for layer in g.layers
              if type(layer).__name__ in ("Conv2D", "Conv2DTranspose")]
    assert shapes == [(16, 16, 256), (32, 32, 256), (64, 64, 256), (64, 64, 512),
                      (64, 64, 512), (64, 64, 3)]
    d_shapes = [tuple(layer.output.shape[1:3]) for layer in d.layers
                if type(layer).__name__ == "Conv2D"]
    assert d_shapes == [(62, 62), (30, 30), (14, 14), (6, 6), (2, 2)]
    assert [l.negative_slope for l in g.layers if type(l).__name__ == "LeakyReLU"] == [0.3] * 6


def test_faithful_loss_is_the_listings_bce_with_its_label_convention():
    l_real, l_fake = tf.constant([0.3, -1.0]), tf.constant([2.0, 0.5])
    n_real, n_fake = tf.constant([0.01, 0.04]), tf.constant([0.02, 0.0])
    terms = LOSSES["faithful"](l_real, l_fake, n_real, n_fake)
    p_real, p_fake = tf.sigmoid(l_real).numpy(), tf.sigmoid(l_fake).numpy()
    y_real, y_fake = n_real.numpy(), 1.0 + n_fake.numpy()
    by_hand = lambda y, p: -(y * np.log(p) + (1 - y) * np.log(1 - p))  # noqa: E731
    np.testing.assert_allclose(terms["d_loss"], 0.5 * (by_hand(y_real, p_real)
                                                       + by_hand(y_fake, p_fake)), rtol=1e-5)
    # G towards label 0 (= "real" in this coding): -log(1 - D(G(z)))
    np.testing.assert_allclose(terms["g_loss"], -np.log(1 - p_fake), rtol=1e-5)
    # the quirk: a noisy 'generated' label above 1 makes D's loss unbounded below
    assert float(bce(tf.constant(1.05), tf.constant(200.0))) < -9


def test_unknown_mode_and_optimizer_are_refused():
    from models import get_family
    # the mode names the loss: the family's loss registry refuses it, alone
    with pytest.raises(ValueError, match="unknown face GAN mode 'pretty' for family 'faces'; "
                                         "known: faithful, fixed"):
        get_family("faces").loss("pretty")
    FacesConfig(loss="pretty").validate()  # not the options' check
    with pytest.raises(ValueError, match="unknown face GAN optimizer 'lion'"):
        FacesConfig(optimizer="lion").validate()
    with pytest.raises(ValueError, match="known modes: faithful, fixed"):
        mode_overrides("pretty")


def test_quick_face_runs_cap_the_batch_and_a_bad_cap_is_refused(monkeypatch):
    """The quick profile's face runs: the fixed mode's thesis batch (64) capped by the
    family's batch cap (8, a CPU budget), the faithful mode's 2 untouched; a cap that is not a
    positive integer is named as the cap's error."""
    from experiments import thesis_003
    from experiments.profiles import get_profile
    from models import get_family

    quick = get_profile("quick")
    plans = thesis_003.plan_faces(thesis_003.face_runs(["faces"]), quick,
                                  dataset="fashion_mnist", out_dir="/tmp/unused", seeds=1)
    assert [(p.family_config.loss, p.family_config.batch_size) for p in plans] == [
        ("faithful", 2), ("fixed", 8), ("fixed", 8), ("fixed", 8)]
    assert all(p.run_dir.endswith(("-b2-z32-s0", "-b8-z32-s0")) for p in plans)
    family = get_family("faces")
    assert family.max_batch_size("quick") == 8 and family.max_batch_size("paper") is None
    assert "max_batch_size" not in family.preset("quick")  # presets hold FacesConfig fields
    monkeypatch.setitem(family.batch_caps, "quick", 0)
    with pytest.raises(ValueError, match=r"BATCH_CAPS\['quick'\] must be a positive integer"):
        family.max_batch_size("quick")


def _source():
    return _synthetic_64("train", 8)


def _model(**overrides):
    from models.faces import build
    config = FacesConfig(**{**TINY, **overrides})
    return build(config, (64, 64, 3), global_batch_size=2, seed=0)


def _step(model, steps=1):
    model(tf.zeros([1, 64, 64, 3]))
    model.build_optimizers()
    images = next(iter(_source().batches(2)))
    before = [w.numpy().copy() for w in model.generator.trainable_weights]
    d_before = [w.numpy().copy() for w in model.discriminator.trainable_weights]
    for _ in range(steps):
        logs = model.train_step(images)
        model.step_counter.assign_add(1)
    moved = any(np.abs(a - w.numpy()).max() > 0
                for a, w in zip(before, model.generator.trainable_weights))
    d_moved = any(np.abs(a - w.numpy()).max() > 0
                  for a, w in zip(d_before, model.discriminator.trainable_weights))
    return {k: float(v) for k, v in logs.items()}, moved and d_moved


@pytest.mark.parametrize("mode,optimizer", [("faithful", None), ("fixed", None),
                                            ("fixed", "extra_adam"),
                                            ("faithful", "past_extra_rmsprop")])
def test_one_step_of_each_mode_and_optimizer_trains_both_players(mode, optimizer):
    overrides = mode_overrides(mode)
    if optimizer:
        overrides["optimizer"] = optimizer
    model = _model(**overrides)
    logs, moved = _step(model)
    assert moved
    assert all(np.isfinite(v) for v in logs.values())
    images = model.generate(model.control_latents())
    assert images.shape == (4, 64, 64, 3)
    assert float(tf.reduce_min(images)) >= -1 and float(tf.reduce_max(images)) <= 1


def test_faithful_mode_keeps_the_listings_settings():
    cfg = FacesConfig()
    assert (cfg.optimizer, cfg.learning_rate, cfg.clipvalue, cfg.lr_decay) == ("rmsprop", 1e-4,
                                                                              1.0, 1e-8)
    assert (cfg.batch_size, cfg.latent_size, cfg.image_range, cfg.label_noise) == (2, 32, "unit",
                                                                                  0.05)
    model = _model()
    model(tf.zeros([1, 64, 64, 3]))
    model.build_optimizers()
    opt = model.d_optimizer
    assert type(opt).__name__ == "RMSprop" and opt.clipvalue == 1.0
    # Keras 2's decay: lr / (1 + 1e-8 t)
    assert float(opt.learning_rate) == pytest.approx(1e-4)
    schedule = opt._learning_rate
    assert float(schedule(10 ** 6)) == pytest.approx(1e-4 / (1 + 1e-2))
    # [0, 1] data against tanh: generate() clips tanh's negative half
    assert float(model.to_model_range(tf.constant(-1.0))) == 0.0


def test_fixed_mode_uses_the_gan_family_pieces_and_ema():
    fixed = MODES["fixed"]
    assert fixed["loss"] == "fixed" and fixed["optimizer"] == "adam"
    model = _model(**{**fixed, "r1_gamma": 1.0, "ada": True})
    logs, moved = _step(model, steps=2)
    assert moved and np.isfinite(logs["d_loss"])
    ema = model.ema_generator.trainable_weights or model.ema_generator.weights
    assert any(np.abs(e.numpy() - w.numpy()).max() > 0
               for e, w in zip(ema, model.generator.weights))


def test_extragradient_step_is_the_look_ahead_then_the_update_from_the_saved_point():
    """With extra_sgd, one step equals: extrapolate by SGD from w_t, then w_t - lr * grad
    at the look-ahead point; here checked on D's weights through the optimiser's slots."""
    model = _model(**{**mode_overrides("fixed"), "optimizer": "extra_sgd", "ema_kimg": 0.0,
                      "dropout": 0.0})
    model(tf.zeros([1, 64, 64, 3]))
    model.build_optimizers()
    start = [w.numpy().copy() for w in model.discriminator.trainable_weights]
    images = next(iter(_source().batches(2)))
    model.train_step(images)
    saved = [s.numpy() for s in model.d_optimizer.saved]
    for a, b in zip(start, saved):  # the look-ahead started from w_t
        np.testing.assert_array_equal(a, b)
    assert any(np.abs(a - w.numpy()).max() > 0
               for a, w in zip(start, model.discriminator.trainable_weights))


# ----------------------------------------------------------------- CelebA
def _celeba_folder(root, numbers, size=(178, 218)):
    from PIL import Image
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in numbers:
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        pixels[:15] = 255  # rows above the thesis's crop box: must not reach the thumbnail
        Image.fromarray(pixels).save(folder / f"{k:06d}.jpg", quality=90)
    return folder


def test_celeba_folder_and_zip_give_the_thesis_crop_and_thumbnail(tmp_path):
    import zipfile

    from PIL import Image

    from data import open_dataset
    from data.celeba import thesis_preprocess
    folder = _celeba_folder(tmp_path / "d", [1, 2, 3, 162771])
    train = open_dataset("celeb_a", "train", image_size=64, data_dir=str(tmp_path / "d"))
    assert train.num_examples == 3 and train.image_shape == (64, 64, 3)
    assert "crop (0, 15, 178, 193)" in train.provenance
    with Image.open(folder / "000002.jpg") as image:
        by_hand = image.convert("RGB").crop((0, 15, 178, 193))
        by_hand.thumbnail((64, 64), Image.Resampling.LANCZOS)
        np.testing.assert_array_equal(train.arrays()[0][1], np.asarray(by_hand))
        np.testing.assert_array_equal(thesis_preprocess(image, 64, 3), np.asarray(by_hand))
    val = open_dataset("celeb_a", "validation", image_size=64, data_dir=str(folder))
    assert val.num_examples == 1
    archive = tmp_path / "img_align_celeba.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.iterdir()):
            z.write(path, f"img_align_celeba/{path.name}")
    zipped = open_dataset("celeb_a", "train", image_size=64, data_dir=str(archive))
    np.testing.assert_array_equal(zipped.arrays()[0], train.arrays()[0])


def test_celeba_folder_without_jpegs_or_with_a_truncated_one_is_refused(tmp_path):
    from data import DatasetError, open_dataset
    (tmp_path / "e" / "img_align_celeba").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds no JPEGs"):
        open_dataset("celeb_a", "train", image_size=64, data_dir=str(tmp_path / "e"))
    folder = _celeba_folder(tmp_path / "t", [1, 2])
    data = (folder / "000002.jpg").read_bytes()
    (folder / "000002.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="000002.jpg: cannot be read as a JPEG"):
        open_dataset("celeb_a", "train", image_size=64, data_dir=str(tmp_path / "t"))


def test_tfds_celeb_a_gets_the_thesis_crop_at_64(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    from data import open_dataset, tfds_source
    monkeypatch.setattr(tfds_source, "reachable", lambda *args, **kwargs: True)  # mock_data
    with tfds.testing.mock_data(num_examples=2, policy=tfds.testing.MockPolicy.USE_CODE):
        source = open_dataset("celeb_a", "train", image_size=64, data_dir=str(tmp_path))
    assert source.image_shape == (64, 64, 3) and source.num_examples == 2


# ----------------------------------------------------------------- run_all, end to end
def _synthetic_64(split, limit):
    from data import open_dataset
    return open_dataset("synthetic", split, image_size=64, limit=limit)


def _images(n):
    return next(iter(_synthetic_64("train", n).batches(n)))[0].numpy()


@pytest.fixture(scope="module")
def tiny_evaluator_cache(tmp_path_factory):
    """A metrics cache holding a tiny evaluator for synthetic 64x64x3 (trained here in
    seconds; run_all would train the full one, minutes): cache folder, (model, info)."""
    from metrics.evaluator import EvaluatorConfig, load_or_train_evaluator
    cache = tmp_path_factory.mktemp("cache")
    tiny = EvaluatorConfig(width=4, epochs=1, batch_size=32, max_train_examples=64,
                           max_test_examples=32)
    loaded = load_or_train_evaluator(
        "synthetic", (64, 64, 3), cache_dir=cache, train_src=_synthetic_64("train", 64),
        test_src=_synthetic_64("test", 32), config=tiny, verbose=False)
    return cache, loaded


@pytest.mark.slow
def test_run_all_smoke_faithful_and_bilinear_then_load_and_sample(tmp_path, capsys,
                                                                  tiny_evaluator_cache,
                                                                  monkeypatch):
    import json

    import run_all
    from experiments.runs import load_run
    monkeypatch.setenv("GENBENCH_CACHE", str(tiny_evaluator_cache[0]))
    out = tmp_path / "o"
    args = ["--profile", "smoke", "--only", "faces/faithful", "bilinear", "--dataset",
            "synthetic", "--metrics", "evaluator", "--quiet", "--out", str(out)]
    assert run_all.main(args) == 0, capsys.readouterr().err[-3000:]
    run = out / "runs" / "faces-faithful-b2-z32-s0"
    for name in ("metrics.json", "control_timeline.png", "diversity.png", "samples.npz",
                 "control/diversity.csv", "control/step_000004.png"):
        assert (run / name).exists(), name
    for name in ("thesis_003_faces", "bilinear"):
        for ext in ("md", "csv", "json"):
            assert (out / f"{name}.{ext}").stat().st_size > 0
    assert (out / "thesis_003_curves.png").exists() and (out / "bilinear.png").exists()
    table = json.loads((out / "thesis_003_faces.json").read_text())
    (line,) = table["rows"]
    assert line["mode"] == "faithful" and line["optimizer"] == "rmsprop"
    assert line["iterations"] == 4 and line["control_diversity_last"] >= 0
    # diversity in pixels and in the features of the metric network that scored the run
    assert line["feature_network"] == line["metric_network"]
    assert line["metric_network"].startswith("evaluator:synthetic-64x64x3")
    assert line["control_feature_diversity_last"] >= 0 and line["real_feature_diversity"] > 0
    assert line["fid"] is not None and "not measured" not in (
        out / "thesis_003_faces.md").read_text()
    assert "Offline stand-in" in table["note"]
    config = json.loads((run / "config.json").read_text())
    assert config["family_config"]["loss"] == "faithful" and config["seed"] == 0
    loaded = load_run(str(run))
    images = loaded.model.generate(loaded.model.sample_latents(3, seed=1))
    assert images.shape == (3, 64, 64, 3)
    np.testing.assert_array_equal(images, loaded.model.generate(
        loaded.model.sample_latents(3, seed=1)))
    capsys.readouterr()
    assert run_all.main(args) == 0  # complete: skipped, reports rewritten
    assert "thesis 003: faces-faithful" not in capsys.readouterr().out


@pytest.mark.slow
def test_gan_family_trains_with_extra_adam_by_name(tmp_path):
    """GANConfig.optimizer picks the extragradient wrapper; one trainer step moves both
    players and the look-ahead started from the weights before the step."""
    from models.gan import build as build_gan
    from models.gan.config import GANConfig
    from tests.drivers.stages import one_step
    config = GANConfig(optimizer="extra_adam", loss="ns", batch_size=8)
    config.validate()
    model = one_step(lambda: build_gan(config, (32, 32, 3), 8, seed=0), str(tmp_path),
                     tf.distribute.get_strategy())
    assert type(model.g_optimizer).__name__ == "Extragradient"
    assert int(model.g_optimizer.iterations.numpy()) == 2  # look-ahead + update
    history = (tmp_path / "history.csv").read_text()
    assert "g_loss" in history and "nan" not in history.lower()
    with pytest.raises(ValueError, match="unknown GAN optimizer"):
        GANConfig(optimizer="lion").validate()


# ------------------------------------------------------- mode collapse, measured
def test_feature_diversity_in_the_evaluator_drops_for_a_collapsed_grid(tiny_evaluator_cache):
    """The control grid's diversity in the evaluator's feature space (a tiny one, trained
    here): 0 for identical images, low for near-copies, higher for different images."""
    from experiments.thesis_003 import FeatureSpace, pairwise_rms
    from metrics.evaluator import evaluator_network
    space = FeatureSpace.of(evaluator_network(*tiny_evaluator_cache[1]))
    assert space.label.startswith("evaluator:synthetic-64x64x3")
    diverse = _images(16)
    collapsed = np.repeat(diverse[:1], 16, axis=0)
    noise = np.random.default_rng(0).uniform(-0.02, 0.02, collapsed.shape).astype(np.float32)
    near = np.clip(collapsed + noise, -1, 1)
    spread = space.diversity(diverse)
    assert space.diversity(collapsed) < 1e-6 * spread
    assert 0 < space.diversity(near) < 0.5 * spread
    assert pairwise_rms(collapsed) == 0 < pairwise_rms(near) < pairwise_rms(diverse)


class _GridModel:
    """What ControlTimeline reads of a face GAN: a step counter and the control grid,
    diverse until ``collapse`` is set, then every image the first."""

    def __init__(self, images):
        self.images, self.collapse = images, False
        self.step_counter = tf.Variable(0, dtype=tf.int64)

    def control_latents(self):
        return np.zeros((len(self.images), 2), np.float32)

    def generate(self, latents):
        return np.repeat(self.images[:1], len(latents), 0) if self.collapse else self.images


def test_control_timeline_records_and_plots_both_spaces(tmp_path):
    import csv

    from experiments.thesis_003 import ControlTimeline, FeatureSpace, diversity_summary
    images = _images(4)
    colour = FeatureSpace("mean colour (injected)", lambda x: np.asarray(x).mean(axis=(1, 2)))
    timeline = ControlTimeline(str(tmp_path), 1, _images(16), features=colour)
    model = _GridModel(images)
    timeline.set_model(model)
    timeline.on_train_begin()
    model.collapse = True
    timeline.on_train_batch_end(1)
    timeline.on_train_end()
    with open(tmp_path / "control" / "diversity.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [0, 1]
    assert {r["feature_network"] for r in rows} == {"mean colour (injected)"}
    for key in ("control_diversity", "control_feature_diversity"):
        assert float(rows[0][key]) > 0 == float(rows[1][key])
    assert float(rows[0]["real_feature_diversity"]) > 0
    summary = diversity_summary(str(tmp_path))
    assert summary["feature_collapse_ratio_last"] == 0 == summary["collapse_ratio_last"]
    assert (tmp_path / "diversity.png").stat().st_size > 0
    assert (tmp_path / "control_timeline.png").stat().st_size > 0
