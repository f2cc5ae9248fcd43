"""Shipped weights (``training.checkpoints.write_weights`` / ``restore_weights`` with the
model's ``shipped_parts``): what a fresh clone reads back is what the sampler needs, and a
family that samples from an EMA copy ships that copy alone (CPU, tiny shapes)."""
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.drivers import family_steps as fs
from training.checkpoints import restore_weights, write_weights


def _size(folder):
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def _values(variables):
    return [np.asarray(v) for v in variables]


def test_the_diffusion_row_ships_its_ema_u_net_alone(tmp_path):
    case = fs.CASES["diffusion/denoiser"]
    model = fs.build(case, sgd=1e-2)
    fs.train_steps(model, fs.step_data(model, case), steps=2)
    model.latent_scale.assign(0.37)
    raw, ema = _values(model.unet.variables), _values(model.ema_unet.variables)
    assert any(not np.array_equal(a, b) for a, b in zip(raw, ema))  # the two differ
    prefix = write_weights(model, str(tmp_path))
    tf.train.Checkpoint(model=model).write(str(tmp_path / "whole" / "model"))
    shipped = _size(os.path.dirname(prefix))
    assert shipped < 0.75 * _size(tmp_path / "whole")  # one U-Net, not two

    fresh = fs.build(case, seed=5, build_optimizers=False)
    restore_weights(fresh, str(tmp_path), weights_only=True)
    for a, b in zip(_values(fresh.ema_unet.variables), ema, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_values(fresh.autoencoder.variables),
                    _values(model.autoencoder.variables), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(fresh.latent_scale) == pytest.approx(0.37)
    assert int(fresh.step_counter) == int(model.step_counter) == 2
    # the raw U-Net was not shipped: it starts from the EMA
    for a, b in zip(_values(fresh.unet.variables), ema, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_family_without_an_ema_only_sampler_ships_the_whole_model(tmp_path):
    case = fs.CASES["vae/elbo"]
    model = fs.build(case, sgd=1e-2)
    fs.train_steps(model, fs.step_data(model, case), steps=1)
    assert set(model.shipped_parts()) == {"model"}
    write_weights(model, str(tmp_path))
    fresh = fs.build(case, seed=5, build_optimizers=False)
    restore_weights(fresh, str(tmp_path), weights_only=True)
    for a, b in zip(_values(fresh.variables), _values(model.variables), strict=True):
        np.testing.assert_array_equal(a, b)
