"""Gradient accumulation (``Runtime.accumulate``, ``GenerativeModel.over_micro_batches``):
k micro-batches give the update of one batch of k times their size, in every family,
including the terms that span the batch (CPU, tiny shapes).

Tolerance: two train steps with accumulate 2 (and 4) against accumulate 1 on the same
batch, each optimiser replaced by SGD at rate 1e-3 (its update is the gradient times the
rate; see ``tests.drivers.family_steps.use_sgd`` for why not Adam): every log within
1e-5 relative (plus 1e-7 absolute), every weight within 1e-5 absolute (measured: ~1e-6
and ~1e-7, float32 summation order).

What accumulation means for the batch-spanning terms, as tested here:

- VAE InfoVAE / WAE MMD: exact, the whole global batch's MMD (its latents gathered
  first; ``models.vae.losses.global_mmd``), also with micro-batches of one example.
- GAN: the WGAN-GP gradient penalty and R1 are per example (exact); minibatch-stddev's
  groups are the whole batch's when ``mbstd_group`` divides the micro-batch (exact),
  else groups of gcd(group, micro-batch): the same step as a whole batch with that
  smaller group (tested).
- the VQ tokenizer's codebook EMA: once per step on every micro-batch's codes (exact).
- no family has BatchNorm; the face GAN's dropout draws a fresh mask per micro-batch
  (the cases run with dropout 0; see ``models.faces.model``).
"""
import numpy as np
import pytest

from tests.drivers import family_steps as fs
from training.runtime import Runtime

RTOL, ATOL_LOGS, ATOL_WEIGHTS = 1e-5, 1e-7, 1e-5


def assert_same_steps(name, runtime, reference=Runtime()):
    ref_logs, ref_values, ref_model = fs.run(name, reference)
    logs, values, model = fs.run(name, runtime)
    assert model.accumulate == runtime.accumulate
    for step, (a, b) in enumerate(zip(logs, ref_logs, strict=True)):
        assert set(a) == set(b)
        for key in a:
            assert abs(a[key] - b[key]) <= RTOL * abs(b[key]) + ATOL_LOGS, (step, key, a, b)
    for a, b in zip(values, ref_values, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL_WEIGHTS)
    # the non-trainable state too (EMA weights, ADA's p, the codebook)
    for a, b in zip(fs.state_values(model), fs.state_values(ref_model), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL_WEIGHTS)


@pytest.mark.parametrize("name", fs.params(sorted(fs.CASES)))
def test_two_micro_batches_equal_the_whole_batch(name):
    assert_same_steps(name, Runtime(accumulate=2))


@pytest.mark.parametrize("name", ["vae/wae", "vae/mi"])
def test_mmd_is_the_whole_batch_s_even_over_single_examples(name):
    """accumulate 4 on a batch of 4: micro-batches of one example, for which an MMD within
    the micro-batch would not even be defined (a U-statistic needs pairs)."""
    assert_same_steps(name, Runtime(accumulate=4))


@pytest.mark.slow
def test_minibatch_stddev_groups_follow_the_micro_batch():
    """mbstd_group 4 on micro-batches of 2 uses groups of 2: the whole batch's step with
    mbstd_group 2 (exactly), not the whole batch's step with groups of 4."""
    grouped_logs, grouped_values, _ = fs.run("gan/hinge-mbstd4", Runtime(accumulate=2))
    pairs_logs, pairs_values, _ = fs.run("gan/hinge", Runtime())
    whole_logs, _, _ = fs.run("gan/hinge-mbstd4", Runtime())
    for step, (a, b) in enumerate(zip(grouped_logs, pairs_logs, strict=True)):
        for key in b:
            assert abs(a[key] - b[key]) <= RTOL * abs(b[key]) + ATOL_LOGS, (step, key, a, b)
    for a, b in zip(grouped_values, pairs_values, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL_WEIGHTS)
    assert any(abs(grouped_logs[0][k] - whole_logs[0][k]) > 1e-4 * abs(whole_logs[0][k])
               for k in ("d_real", "d_fake"))


@pytest.mark.parametrize("name", ["vae/elbo", "gan/wasserstein_gp"])
def test_an_accumulation_that_does_not_divide_the_batch_is_refused(name):
    case = fs.CASES[name]
    with pytest.raises(ValueError) as err:
        fs.build(case, Runtime(accumulate=3))
    assert str(err.value) == f"accumulate 3 does not divide the batch {case.batch}"
