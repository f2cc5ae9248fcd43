"""experiments.significance: Welch's t-test on seed means, checked against hand computations."""
import math
import types

import pytest

from experiments import significance


def test_welch_on_equal_variances_matches_the_hand_computation():
    # a = 1, 2, 3: mean 2, s^2 = ((1-2)^2 + 0 + (3-2)^2) / 2 = 1
    # b = 4, 5, 6: mean 5, s^2 = 1
    # difference 2 - 5 = -3; se = sqrt(1/3 + 1/3) = sqrt(2/3) = 0.816497
    # df = (1/3 + 1/3)^2 / ((1/3)^2/2 + (1/3)^2/2) = (4/9) / (1/9) = 4
    # t = -3 / 0.816497 = -3.674235 (t^2 = 13.5)
    # t_{0.975, 4} = 2.776 (printed tables); CI = -3 +- 2.776445 * 0.816497
    #   = -3 +- 2.266958 = [-5.266958, -0.733042]
    # p, from the closed form for 4 degrees of freedom, P(|T| < t) = sin(th) (1 + cos^2(th)/2)
    #   with tan(th) = t / 2: sin^2 = t^2 / (4 + t^2) = 27/35, cos^2 = 8/35, so
    #   p = 1 - sqrt(27/35) * 39/35 = 1 - 0.878310 * 1.114286 = 0.021312
    test = significance.welch_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], "elbo", "mi")
    assert (test.n_a, test.n_b, test.mean_a, test.mean_b) == (3, 3, 2.0, 5.0)
    assert test.var_a == pytest.approx(1.0) and test.var_b == pytest.approx(1.0)
    assert test.difference == pytest.approx(-3.0)
    assert test.se == pytest.approx(0.816497, abs=1e-6)
    assert test.df == pytest.approx(4.0)
    assert test.t == pytest.approx(-3.674235, abs=1e-6)
    assert test.ci == pytest.approx((-5.266958, -0.733042), abs=1e-5)
    assert test.p == pytest.approx(1 - math.sqrt(27 / 35) * 39 / 35, abs=1e-9)
    assert test.p == pytest.approx(0.021312, abs=1e-6)
    assert test.winner == "elbo" and test.verdict == "elbo better"  # lower is better


def test_welch_degrees_of_freedom_with_unequal_variances():
    # a = 1, 2, 3: s^2 = 1, s^2/n = 1/3;  b = 0, 4, 8, 12: mean 6,
    # s^2 = (36 + 4 + 4 + 36) / 3 = 80/3, s^2/n = 20/3
    # se^2 = 1/3 + 20/3 = 7, se = 2.645751
    # df = 7^2 / ((1/3)^2/2 + (20/3)^2/3) = 49 / (1/18 + 400/27) = 49 / 14.870370 = 3.295143
    # (Student's pooled test would claim 5): t_{0.975, 3.295} lies between the tables'
    # t_{0.975, 3} = 3.182 and t_{0.975, 4} = 2.776
    test = significance.welch_test([1.0, 2.0, 3.0], [0.0, 4.0, 8.0, 12.0], "a", "b")
    assert test.df == pytest.approx(3.295143, abs=1e-6)
    assert test.se == pytest.approx(math.sqrt(7.0))
    assert test.t == pytest.approx(-4.0 / math.sqrt(7.0))
    quantile = (test.ci[1] - test.difference) / test.se
    assert 2.776 < quantile < 3.182
    assert test.ci[0] < 0.0 < test.ci[1] and test.winner is None
    assert test.verdict == "not distinguishable at this budget"


def test_t_quantiles_match_printed_tables():
    # two-sided 95% critical values of Student's t (any statistics textbook's table)
    for df, value in [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (10, 2.228), (30, 2.042)]:
        assert significance.t_quantile(0.975, df) == pytest.approx(value, abs=5e-4)
    assert significance.t_two_sided_p(12.706, 1) == pytest.approx(0.05, abs=1e-4)
    assert significance.t_two_sided_p(0.0, 3) == pytest.approx(1.0)


def test_higher_is_better_swaps_the_winner():
    test = significance.welch_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], "dim", "bright",
                                   lower_is_better=False)
    assert test.winner == "bright" and test.verdict == "bright better"


def test_one_seed_is_not_testable():
    test = significance.welch_test([5.0], [1.0, 2.0, 3.0], "hinge", "wasserstein_gp")
    assert test.difference == pytest.approx(3.0)  # the point estimates still differ...
    assert (test.ci, test.p, test.t, test.df) == (None, None, None, None)
    assert test.winner is None and test.verdict == "one seed: not testable"  # ...untested
    assert significance.welch_test([1.0, 2.0], [7.0]).verdict == "one seed: not testable"
    with pytest.raises(ValueError, match="no finite values"):
        significance.welch_test([], [1.0, 2.0])


def test_identical_values_are_not_distinguishable():
    test = significance.welch_test([3.0, 3.0, 3.0], [3.0, 3.0, 3.0])
    assert test.difference == 0.0 and test.ci == (0.0, 0.0) and test.p == 1.0
    assert test.df is None  # 0/0: no degrees of freedom to speak of
    assert test.verdict == "not distinguishable at this budget"


def test_zero_variance_on_one_side_leaves_the_other_sides_degrees_of_freedom():
    # a = 1, 1, 1: s^2 = 0;  b = 2, 3, 4: mean 3, s^2 = 1, s^2/n = 1/3
    # df = (1/3)^2 / ((1/3)^2 / 2) = 2 (b's n - 1); se = sqrt(1/3) = 0.577350
    # t = -2 / 0.577350 = -3.464102; t_{0.975, 2} = 4.302653;
    # CI = -2 +- 4.302653 * 0.577350 = -2 +- 2.484138 = [-4.484138, 0.484138]: holds 0
    test = significance.welch_test([1.0, 1.0, 1.0], [2.0, 3.0, 4.0])
    assert test.df == pytest.approx(2.0)
    assert test.t == pytest.approx(-3.464102, abs=1e-6)
    assert test.ci == pytest.approx((-4.484138, 0.484138), abs=1e-6)
    assert test.verdict == "not distinguishable at this budget"


def test_zero_variance_on_both_sides_makes_the_difference_exact():
    test = significance.welch_test([1.0, 1.0], [2.0, 2.0], "a", "b")
    assert test.ci == (-1.0, -1.0) and test.p == 0.0 and test.df is None
    assert test.verdict == "a better"


def test_non_finite_values_are_left_out():
    test = significance.welch_test([1.0, float("nan"), 2.0, 3.0, None], [4.0, 5.0, 6.0])
    assert test.n_a == 3 and test.df == pytest.approx(4.0)


def test_mean_interval_is_t_based():
    # 10, 20: mean 15, s = sqrt(50) = 7.071068, se = s / sqrt(2) = 5;
    # t_{0.975, 1} = 12.706205: half-width 63.531
    mean, half = significance.mean_interval([10.0, 20.0])
    assert mean == 15.0 and half == pytest.approx(63.531024, abs=1e-5)
    assert significance.mean_interval([10.0]) is None
    assert significance.mean_interval([10.0, None]) is None


def _line(loss, latent, fids, kids=None, network="net"):
    runs = [types.SimpleNamespace(metrics={"fid": fid, "kid": kid})
            for fid, kid in zip(fids, kids or [None] * len(fids))]
    return types.SimpleNamespace(row={"family": "vae", "loss": loss, "latent_size": latent,
                                      "metric_network": network}, runs=runs)


def test_family_differences_pair_every_loss_per_latent_and_render_a_table():
    lines = [_line("elbo", 128, [1.0, 2.0, 3.0], [0.1, 0.2, 0.3]),
             _line("elbo", 2048, [9.0, 9.5]),
             _line("mi", 128, [4.0, 5.0, 6.0], [0.1, 0.2, 0.3]),
             _line("wae", 128, [7.0]),
             _line("wae", 2048, [1.0], network="other")]  # another network: never paired
    found = significance.family_differences(lines)
    assert [(d.latent, d.test.a, d.test.b, d.metric) for d in found] == [
        (128, "elbo", "mi", "fid"), (128, "elbo", "mi", "kid"), (128, "elbo", "wae", "fid"),
        (128, "mi", "wae", "fid")]
    assert found[0].test.verdict == "elbo better"
    assert found[1].test.verdict == "not distinguishable at this budget"  # same KIDs
    text = significance.differences_markdown(found, {"fid": "fd_eval", "kid": "KID"})
    rows = text.splitlines()
    assert rows[0].startswith("| pair (a − b) | latent | seeds (a / b) | metric |")
    assert "95% CI" in rows[0]
    assert rows[2] == ("| elbo − mi | 128 | 3 / 3 | fd_eval | -3 | [-5.27, -0.733] | 0.021 "
                       "| elbo better |")
    assert rows[4] == ("| elbo − wae | 128 | 3 / 1 | fd_eval | -5 | – | – "
                       "| one seed: not testable |")
    assert significance.differences_markdown([], {}) == ""
