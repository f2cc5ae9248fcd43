"""Is a difference between two losses larger than seed noise? Welch's t-test on seed means.

For each family and latent size, every pair of losses gets the difference of their seed
means of a metric (the table's Fréchet distance, fd_eval or FID; also KID), a 95%
confidence interval of that difference and a two-sided p-value, and a verdict in words:
"<a> better", "<b> better" or "not distinguishable at this budget" (the interval holds 0).
Lower is better for both metrics.

Why Welch's test on the per-seed values. The unit of replication is the seed: a seed
re-draws everything a run's outcome depends on (initial weights, batch order, noise), so
the spread of a row's scores across seeds is the noise a difference between losses has to
exceed. The thousands of samples scored within one run are not independent replications
of training: they come from one trained network, and their spread (IS's split std, KID's
subset std) says how precisely that one network was scored, not how another training run
would have come out. So each run contributes one number, and a row of n seeds is a sample
of n. Two rows need not share a seed variance (a loss can be less stable than another),
so the test is Welch's (unequal variances; Welch-Satterthwaite degrees of freedom) rather
than Student's pooled one. With 3 seeds a side it has few degrees of freedom, so only
large differences come out distinguishable: that is the honest answer at this budget.

A side with fewer than 2 seeds has no variance estimate: the pair gets its difference but
no interval, no p and the verdict "one seed: not testable". Both sides without spread
(every seed scored the same) make the difference exact: its interval is the point and p
is 0, or 1 when the means are equal too.

The t quantiles and tail probabilities are scipy.stats' (scipy is one of the suite's
dependencies, for the Fréchet distance's matrix square root).
"""
from __future__ import annotations

import dataclasses
import itertools
import math

LEVEL = 0.95
NOT_DISTINGUISHABLE = "not distinguishable at this budget"
NOT_TESTABLE = "one seed: not testable"


@dataclasses.dataclass(frozen=True)
class Welch:
    """Welch's two-sample t-test of ``a`` against ``b`` (difference = mean_a - mean_b).

    ``ci``, ``p``, ``t`` and ``df`` are None when a side has fewer than 2 values; ``df``
    is also None when neither side has spread (the difference is then exact)."""
    a: str
    b: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    var_a: float | None
    var_b: float | None
    difference: float
    se: float | None
    df: float | None
    t: float | None
    p: float | None
    ci: tuple | None
    lower_is_better: bool = True
    level: float = LEVEL

    @property
    def testable(self) -> bool:
        return self.ci is not None

    @property
    def winner(self) -> str | None:
        """The better side's name when the interval excludes 0, else None."""
        if not self.testable or self.ci[0] <= 0.0 <= self.ci[1]:
            return None
        a_lower = self.ci[1] < 0.0
        return self.a if a_lower == self.lower_is_better else self.b

    @property
    def verdict(self) -> str:
        """'<a> better', '<b> better', 'not distinguishable at this budget' or
        'one seed: not testable'."""
        if not self.testable:
            return NOT_TESTABLE
        return f"{self.winner} better" if self.winner else NOT_DISTINGUISHABLE


def sample_variance(values) -> float:
    """The unbiased variance s^2 = sum (x - mean)^2 / (n - 1) of n >= 2 values."""
    mean = sum(values) / len(values)
    return sum((x - mean) ** 2 for x in values) / (len(values) - 1)


def welch_df(var_a: float, n_a: int, var_b: float, n_b: int) -> float | None:
    """Welch-Satterthwaite degrees of freedom of the difference of two means:
    (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1));
    None when both variances are 0 (0/0)."""
    u_a, u_b = var_a / n_a, var_b / n_b
    denominator = u_a ** 2 / (n_a - 1) + u_b ** 2 / (n_b - 1)
    return None if denominator == 0.0 else (u_a + u_b) ** 2 / denominator


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t with ``df`` (possibly fractional) degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(q, df))


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    from scipy import stats

    return float(2.0 * stats.t.sf(abs(t), df))


def welch_test(values_a, values_b, a: str = "a", b: str = "b", *,
               lower_is_better: bool = True, level: float = LEVEL) -> Welch:
    """Welch's t-test of the per-seed ``values_a`` against ``values_b`` (non-finite
    values left out): the difference of the means, its ``level`` interval
    d +- t_{(1+level)/2, df} * se with se = sqrt(s_a^2/n_a + s_b^2/n_b), and p."""
    xs, ys = finite(values_a), finite(values_b)
    if not xs or not ys:
        raise ValueError(f"no finite values to compare ({a}: {len(xs)}, {b}: {len(ys)})")
    mean_a, mean_b = sum(xs) / len(xs), sum(ys) / len(ys)
    difference = mean_a - mean_b
    if len(xs) < 2 or len(ys) < 2:
        return Welch(a, b, len(xs), len(ys), mean_a, mean_b, None, None, difference,
                     None, None, None, None, None, lower_is_better, level)
    var_a, var_b = sample_variance(xs), sample_variance(ys)
    se = math.sqrt(var_a / len(xs) + var_b / len(ys))
    df = welch_df(var_a, len(xs), var_b, len(ys))
    if df is None:  # no spread on either side: the difference is exact
        t, p, half = None, (1.0 if difference == 0.0 else 0.0), 0.0
    else:
        t = difference / se
        p, half = t_two_sided_p(t, df), t_quantile((1.0 + level) / 2.0, df) * se
    return Welch(a, b, len(xs), len(ys), mean_a, mean_b, var_a, var_b, difference, se, df,
                 t, p, (difference - half, difference + half), lower_is_better, level)


def mean_interval(values, level: float = LEVEL):
    """(mean, half-width) of the t-based ``level`` interval of the mean of the finite
    ``values``: t_{(1+level)/2, n-1} * s / sqrt(n); None with fewer than 2 values."""
    xs = finite(values)
    if len(xs) < 2:
        return None
    half = t_quantile((1.0 + level) / 2.0, len(xs) - 1) * math.sqrt(
        sample_variance(xs) / len(xs))
    return sum(xs) / len(xs), half


def finite(values) -> list:
    """The values that are finite numbers, as floats (a seed without a score left out)."""
    return [float(v) for v in values
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def seed_values(runs, key: str) -> list:
    """``key`` of each run's metrics.json (one value per seed; missing ones left out)."""
    return finite(run.metrics.get(key) for run in runs)


# ------------------------------------------------------------------ pairs of a family's losses

@dataclasses.dataclass(frozen=True)
class Difference:
    """One pair of losses of a family at one latent size, on one metric."""
    family: str
    latent: int
    metric: str
    test: Welch


def family_differences(lines, keys=("fid", "kid"), level: float = LEVEL) -> list:
    """Every pair of losses of one family's table lines (``.row``, ``.runs``), per latent
    size and metric ``key``, in the lines' order (baseline first): a Difference per pair
    whose two rows were scored by the same metric network and both have values."""
    out = []
    for latent in sorted({line.row["latent_size"] for line in lines}):
        at = [line for line in lines if line.row["latent_size"] == latent]
        for first, second in itertools.combinations(at, 2):
            if first.row.get("metric_network") != second.row.get("metric_network"):
                continue  # scores of different networks are on different scales
            for key in keys:
                xs, ys = seed_values(first.runs, key), seed_values(second.runs, key)
                if xs and ys:
                    test = welch_test(xs, ys, first.row["loss"], second.row["loss"],
                                      level=level)
                    out.append(Difference(first.row["family"], latent, key, test))
    return out


def number(value: float) -> str:
    """Three significant digits, as the tables print them."""
    return f"{value:.3g}"


def p_text(p: float | None) -> str:
    """p to two significant digits, '< 0.001' below that, '–' when there is none."""
    if p is None:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def ci_text(ci) -> str:
    return "–" if ci is None else f"[{number(ci[0])}, {number(ci[1])}]"


def differences_markdown(differences, metric_names: dict) -> str:
    """The 'Differences' table of a family: pair, latent, seeds, metric, mean difference,
    95% interval, p and verdict per row (``metric_names``: metric key -> column name)."""
    if not differences:
        return ""
    level = differences[0].test.level
    out = [f"| pair (a − b) | latent | seeds (a / b) | metric | mean difference | "
           f"{level:.0%} CI | p | verdict |", "|---|---|---|---|---|---|---|---|"]
    for d in differences:
        t = d.test
        out.append(f"| {t.a} − {t.b} | {d.latent} | {t.n_a} / {t.n_b} | "
                   f"{metric_names.get(d.metric, d.metric)} | {number(t.difference)} | "
                   f"{ci_text(t.ci)} | {p_text(t.p)} | {t.verdict} |")
    if not any(d.test.testable for d in differences):
        out += ["", "No pair is testable yet: each has a loss of one seed. More seeds per "
                    "row (`run_all.py --seeds 3`) make them testable."]
    return "\n".join(out) + "\n"
