"""GAN family through the shared trainer: a smoke run of every loss, and an exact
resume that restores the EMA generator and ADA's p."""
import functools
import os

import numpy as np
import pytest
import tensorflow as tf

from common import files as artifacts
from training.config import TrainConfig
from training.runtime import Runtime
from training.trainer import EpochProgress, Trainer
from models import get_family
from models.gan.config import GANConfig

SIZE = 8
BATCH = 4
TINY = dict(batch_size=BATCH, latent_size=8, w_dim=8, channel_base=64, channel_max=8,
            mapping_layers=1, mbstd_group=2, jit_compile=False)


class TinySource:
    """In-memory image source with the ``data.ImageSource`` batching interface."""

    def __init__(self, n=48, seed=0, split="train"):
        rng = np.random.default_rng(seed)
        # smooth colour blobs rather than white noise, in [-1, 1]
        low = rng.uniform(-1, 1, (n, 2, 2, 3)).astype(np.float32)
        self.images = tf.image.resize(low, [SIZE, SIZE]).numpy()
        self.labels = rng.integers(0, 10, n).astype(np.int32)
        self.num_examples, self.image_shape = n, (SIZE, SIZE, 3)
        self.name, self.split = "tiny", split

    def batches(self, batch_size, *, shuffle_seed=None, epoch=0, skip_batches=0,
                drop_remainder=False, repeat=False):
        ds = tf.data.Dataset.from_tensor_slices((self.images, self.labels))
        if shuffle_seed is not None:
            ds = ds.shuffle(self.num_examples, seed=shuffle_seed * 7919 + epoch,
                            reshuffle_each_iteration=False)
        return ds.batch(batch_size, drop_remainder=drop_remainder).skip(skip_batches)


def _fit(run_dir, config, epochs=1, steps=2, validate=True, checkpoint_every=1, runtime=None):
    family = get_family("gan")
    trainer = Trainer(lambda: family.build(config, (SIZE, SIZE, 3), BATCH, seed=3),
                      TinySource(), TinySource(seed=1, split="test") if validate else None,
                      TrainConfig(epochs=epochs, steps_per_epoch=steps, val_batches=1,
                                  checkpoint_every=checkpoint_every, grid_size=2),
                      global_batch_size=BATCH, run_dir=str(run_dir), verbose=False,
                      runtime=runtime)
    return trainer.fit()


def _values(variables):
    return [v.numpy().copy() for v in variables]


SMOKE = {
    "wasserstein_gp": {},
    "hinge": {"diffaugment": "color,translation,cutout", "r1_gamma": 1.0, "d_reg_every": 2},
    "lsgan": {"ada": True, "ada_interval": 1, "ada_kimg": 0.01, "ada_target": -2.0},
    # the XLA path (the run's jit, on by default where a GPU/TPU is present), with lazy
    # R1 in a tf.cond
    "ns": {"r1_gamma": 0.5, "d_reg_every": 1},
}
JIT = {"ns"}


@pytest.mark.parametrize("loss", sorted(SMOKE))
@pytest.mark.slow
def test_smoke_run_of_every_loss(tmp_path, loss):
    config = GANConfig(**{**TINY, "loss": loss, **SMOKE[loss]})
    family = get_family("gan")
    init = family.build(config, (SIZE, SIZE, 3), BATCH, seed=3)   # same seed: same init
    validate = loss not in JIT                 # (an XLA compilation less for the jit run)
    result = _fit(tmp_path, config, validate=validate, runtime=Runtime(jit=loss in JIT))
    model = result.model
    assert result.steps == 2
    row = result.history[-1]
    keys = ["g_loss", "d_loss", "d_real_loss", "d_fake_loss", "ada_p", "d_real_sign", "gp", "r1"]
    if validate:
        keys += ["val_d_loss", "val_d_real_loss", "val_g_loss", "val_d_real_sign"]
    for key in keys:
        assert np.isfinite(float(row[key])), (key, row)
    assert (float(row["gp"]) > 0) == (loss == "wasserstein_gp")
    assert (float(row["r1"]) > 0) == ("r1_gamma" in SMOKE[loss])
    assert (float(row["ada_p"]) > 0) == (loss == "lsgan")
    # Gulrajani et al.'s n_critic = 5 for WGAN-GP, one D step per G step otherwise
    d_steps = 5 if loss == "wasserstein_gp" else 1
    assert int(model.d_optimizer.iterations) == 2 * d_steps
    assert int(model.g_optimizer.iterations) == 2
    for name in ("mapping", "synthesis", "discriminator", "ema_synthesis"):
        before, after = getattr(init, name).weights, getattr(model, name).weights
        assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(before, after)), name
    files = set(os.listdir(tmp_path))
    assert {"history.csv", "loss_curves.png", "checkpoints"} <= files
    assert os.listdir(tmp_path / "samples") == ["epoch_001.png"]
    # the thesis's two keys are in the history
    assert model.TRAIN_LOSS_KEY in row and model.VAL_LOSS_KEY in row


@pytest.mark.slow
def test_resume_restores_ema_and_ada_p_exactly(tmp_path):
    tf.config.experimental.enable_op_determinism()
    # ADA with a target below any r_t, so p rises at every update and is never 0.
    config = GANConfig(**{**TINY, "loss": "hinge", "ada": True, "ada_interval": 1,
                          "ada_kimg": 0.01, "ada_target": -2.0, "ema_rampup": 0.5})
    fit = functools.partial(_fit, config=config, validate=False, checkpoint_every=0)
    straight = fit(tmp_path / "straight", epochs=2)
    first = fit(tmp_path / "split", epochs=1)
    p_saved = float(first.model.ada_p)
    ema_saved = _values(first.model.ema_weights)
    assert 0 < p_saved < float(straight.model.ada_p)

    # the checkpoint alone holds p, its accumulators and the EMA weights
    family = get_family("gan")
    fresh = family.build(config, (SIZE, SIZE, 3), BATCH, seed=3)
    fresh(tf.zeros([1, SIZE, SIZE, 3]))
    fresh.build_optimizers()
    latest = tf.train.latest_checkpoint(str(tmp_path / "split" / "checkpoints"))
    tf.train.Checkpoint(model=fresh, progress=EpochProgress(),
                        **fresh.checkpoint_objects()).read(latest).assert_existing_objects_matched()
    assert float(fresh.ada_p) == p_saved
    for a, b in zip(_values(fresh.ema_weights), ema_saved, strict=True):
        np.testing.assert_array_equal(a, b)

    resumed = fit(tmp_path / "split", epochs=2)
    assert resumed.resumed_from_step == 2 and resumed.steps == 4
    assert float(resumed.model.ada_p) == float(straight.model.ada_p)
    for name in ("ema_weights", "generator_weights"):
        for a, b in zip(_values(getattr(straight.model, name)),
                        _values(getattr(resumed.model, name)), strict=True):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(_values(straight.model.discriminator.weights),
                    _values(resumed.model.discriminator.weights), strict=True):
        np.testing.assert_array_equal(a, b)
    rows = [artifacts.read_csv(os.path.join(tmp_path, d, "history.csv")) for d in ("straight", "split")]
    strip = [[{k: v for k, v in r.items() if k != "wall_s"} for r in rs] for rs in rows]
    assert strip[0] == strip[1]
    assert [float(r["ada_p"]) for r in rows[0]] == sorted(float(r["ada_p"]) for r in rows[0])


@pytest.mark.slow
def test_critic_steps_take_their_own_batches_and_resume_exactly(tmp_path):
    """d_steps = 3: three D updates per G update, each on its own real batch; a run
    stopped after one epoch and resumed ends bit-identical to the straight run."""
    tf.config.experimental.enable_op_determinism()
    config = GANConfig(**{**TINY, "loss": "wasserstein_gp", "d_steps": 3})
    fit = functools.partial(_fit, config=config, validate=False, checkpoint_every=0)
    straight = fit(tmp_path / "straight", epochs=2)
    assert int(straight.model.d_optimizer.iterations) == 3 * 4
    assert int(straight.model.g_optimizer.iterations) == 4
    fit(tmp_path / "split", epochs=1)
    resumed = fit(tmp_path / "split", epochs=2)
    assert resumed.resumed_from_step == 2 and resumed.steps == 4
    for name in ("generator_weights", "ema_weights"):
        for a, b in zip(_values(getattr(straight.model, name)),
                        _values(getattr(resumed.model, name)), strict=True):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(_values(straight.model.discriminator.weights),
                    _values(resumed.model.discriminator.weights), strict=True):
        np.testing.assert_array_equal(a, b)


def test_each_critic_step_sees_its_own_slice_of_the_step_batch():
    """The step's [d_steps * b] reals are cut into d_steps batches in order: D's
    first update uses only the first b images (changing the others leaves it)."""
    config = GANConfig(**{**TINY, "loss": "wasserstein_gp", "d_steps": 2})
    family = get_family("gan")
    source = TinySource()
    reals = tf.constant(source.images[:2 * BATCH])
    labels = tf.zeros([2 * BATCH], tf.int32)
    first_d = []
    for second_half in (reals[BATCH:], -reals[BATCH:]):
        model = family.build(config, (SIZE, SIZE, 3), BATCH, seed=3)
        model(tf.zeros([1, SIZE, SIZE, 3]))
        model.build_optimizers()
        model.critic_step(reals[:BATCH], tf.constant(0.0), lambda opt, g, v: opt.apply(g, v))
        first_d.append(_values(model.discriminator.weights))
        model.train_step((tf.concat([reals[:BATCH], second_half], 0), labels))
        assert int(model.d_optimizer.iterations) == 3
    for a, b in zip(*first_d, strict=True):
        np.testing.assert_array_equal(a, b)
