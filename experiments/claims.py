"""Thesis 004's qualitative findings, one by one, checked against a report folder's runs.

The thesis judged its models by eye ("StyleGAN2 looks best", "WAE is sharper",
"Perceptual is brightest at 128"). Each finding here is a small function of the loaded
report (:class:`Evidence`) that returns a :class:`Finding`: the measure that stands in
for the claim, our numbers, and a verdict, one of

- ``supported``: the difference the claim names is there and exceeds seed noise;
- ``contradicted``: the difference exceeds seed noise in the other direction (for a claim
  that things are alike: some pair does differ);
- ``not distinguishable``: the measured difference is within seed noise (for a claim that
  things are alike this is as far as a test can go: it cannot prove equality);
- ``not measurable here``: a side has one seed, the folder lacks the runs, or nothing in
  a run folder measures the claim.

It reads only what the run folders hold: metrics.json's scores, history.csv's curves and
samples.npz's images. Where a claim is about looks, an image statistic stands in for it
(:func:`brightness`, :func:`contrast`, :func:`laplacian_energy`) or a score does (the
Fréchet distance for "looks best", precision for "fewest artefacts"); "better" and
"alike" are Welch's t-tests on the per-seed values (``experiments/significance.py``),
so a row of one seed is never tested. A claim that makes several comparisons (against
every other family, at both sizes) holds only if each does: one contradicted comparison
contradicts it, one untestable one leaves it unmeasured.

The GAN rows carry a note: the GAN preset's learning rate was tuned on WGAN-GP seeds
only, so the alternative GAN losses run at a rate chosen for another loss.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import typing

import numpy as np

from experiments import significance, table_3_1

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
NOT_DISTINGUISHABLE = "not distinguishable"
NOT_MEASURABLE = "not measurable here"
HEADING = "The thesis's claims, one by one"
GAN_NOTE = ("The GAN preset's learning rates (both players 0.0025, StyleGAN2-ADA cifar's) "
            "were chosen on three WGAN-GP seeds (`docs/recipes.md`, tuning history of the "
            "GAN); hinge and LSGAN run at that rate without a tuning of their own.")
#: "about twice": the ratio interval must lie inside this band to support the claim
ABOUT_TWICE = (1.5, 2.5)


@dataclasses.dataclass(frozen=True)
class Finding:
    """What one claim's check found: the measure standing in for it, our numbers, the
    verdict, and whether the GAN note applies."""
    measure: str
    numbers: str
    verdict: str
    gan_note: bool = False


# ------------------------------------------------------------------------- image statistics

def _unit(images) -> np.ndarray:
    return np.asarray(images, dtype=np.float64) / 255.0


def brightness(images) -> float:
    """Mean pixel value of uint8 images [n, H, W, C], in [0, 1]."""
    return float(_unit(images).mean())


def contrast(images) -> float:
    """Mean over images of each image's pixel standard deviation, in [0, 1]: a grey,
    washed-out image has little (stand-in for 'grey' on one-channel data, which has no
    colour to lose)."""
    x = _unit(images)
    return float(x.reshape(len(x), -1).std(axis=1).mean())


def laplacian_energy(images) -> float:
    """Mean squared 4-neighbour Laplacian (4x - up - down - left - right) of the images'
    interior pixels in [0, 1]: the energy of their highest spatial frequencies (edges,
    texture, and noise alike), the stand-in for 'sharper' and 'more detailed'."""
    x = np.asarray(images, dtype=np.float64)  # whole numbers: the sums below are exact
    lap = (4.0 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1]
           - x[:, 1:-1, :-2] - x[:, 1:-1, 2:])
    return float(np.mean(lap ** 2)) / 255.0 ** 2


# ------------------------------------------------------------------------------ the evidence

class Evidence:
    """The report's table lines by (family, loss, latent), and per-seed values of their
    runs (image statistics computed once per run)."""

    def __init__(self, report):
        self.lines = {(line.family, line.row["loss"], line.row["latent_size"]): line
                      for lines in report.families().values() for line in lines}
        self._images = {}
        networks = {str(line.row.get("metric_network")) for line in self.lines.values()}
        self.fd_name = ("fd_eval" if networks and all(n.startswith("evaluator")
                                                      for n in networks) else "FID")

    def line(self, key):
        return self.lines.get(key)

    def latents(self, family, loss) -> list:
        """The latent sizes at which ``family``/``loss`` has a line, smallest first."""
        return sorted(z for f, l, z in self.lines if (f, l) == (family, loss))

    def losses(self, family) -> list:
        return list(dict.fromkeys(l for f, l, _ in self.lines if f == family))

    def metric(self, line, key) -> list:
        return significance.seed_values(line.runs, key)

    def final(self, line, column) -> list:
        """Each seed's last recorded value of ``column`` in history.csv."""
        values = []
        for run in line.runs:
            cells = [row.get(column) for row in run.history if row.get(column) not in ("", None)]
            if cells:
                values.append(float(cells[-1]))
        return values

    def image(self, line, statistic) -> list:
        """``statistic`` of each seed's samples.npz (runs without one left out)."""
        values = []
        for run in line.runs:
            key = (run.run_dir, statistic.__name__)
            if key not in self._images:
                images = run.generated(None)
                self._images[key] = None if images is None else statistic(images)
            if self._images[key] is not None:
                values.append(self._images[key])
        return values


def baseline(family) -> str | None:
    """The family's Experiment 1 loss (Table 3.1)."""
    return next((row.loss for row in table_3_1.TABLE.rows if row.family == family), None)


@dataclasses.dataclass(frozen=True)
class Measure:
    """What stands in for a claim: a description, the per-seed values of a line, whether
    higher values win, whether its values are scores of a metric network (comparable
    only between lines scored by the same one)."""
    describe: str
    of: typing.Callable[["Evidence", typing.Any], list]
    higher: bool = False
    scored: bool = False


def fd(evidence) -> Measure:
    return Measure(evidence.fd_name, lambda ev, line: ev.metric(line, "fid"), scored=True)


PRECISION = Measure("precision", lambda ev, line: ev.metric(line, "precision"),
                    higher=True, scored=True)
DETAIL = Measure("high-frequency energy (mean squared Laplacian of the samples)",
                 lambda ev, line: ev.image(line, laplacian_energy), higher=True)
BRIGHTNESS = Measure("mean brightness of the samples",
                     lambda ev, line: ev.image(line, brightness), higher=True)
GREYNESS = Measure("contrast of the samples (per-image pixel std; lower = greyer)",
                   lambda ev, line: ev.image(line, contrast))
NOISE_MSE = Measure("final validation noise-prediction MSE (history.csv val_eps_mse)",
                    lambda ev, line: ev.final(line, "val_eps_mse"))


# ----------------------------------------------------------------------------- comparisons

def label(key, short=False) -> str:
    family, loss, latent = key
    return f"{loss}@{latent}" if short else f"{family}/{loss}@{latent}"


def welch(evidence, measure, key_a, key_b, short=False):
    """Welch's test of ``measure`` between the lines ``key_a`` and ``key_b``; None when a
    line is missing, has no values, or the two were scored by different networks."""
    a, b = evidence.line(key_a), evidence.line(key_b)
    if a is None or b is None:
        return None
    if measure.scored and a.row.get("metric_network") != b.row.get("metric_network"):
        return None
    xs, ys = measure.of(evidence, a), measure.of(evidence, b)
    if not xs or not ys:
        return None
    return significance.welch_test(xs, ys, label(key_a, short), label(key_b, short),
                                   lower_is_better=not measure.higher)


def expect(test, winner) -> str:
    """The verdict of one comparison on a claim that ``winner`` (a label) comes out ahead."""
    if test is None or not test.testable:
        return NOT_MEASURABLE
    if test.winner is None:
        return NOT_DISTINGUISHABLE
    return SUPPORTED if test.winner == winner else CONTRADICTED


def alike(test) -> str:
    """The verdict of one comparison on a claim that two lines are alike."""
    if test is None or not test.testable:
        return NOT_MEASURABLE
    return CONTRADICTED if test.winner else NOT_DISTINGUISHABLE


def conjunction(verdicts) -> str:
    """A claim of several comparisons: contradicted by any, unmeasured while any is,
    supported only when every one is (and unmeasured when there are none)."""
    verdicts = list(verdicts)
    if not verdicts:
        return NOT_MEASURABLE
    for verdict in (CONTRADICTED, NOT_MEASURABLE, NOT_DISTINGUISHABLE):
        if verdict in verdicts:
            return verdict
    return SUPPORTED


def part_text(test) -> str:
    """'a 4.14 vs b 2.25 (3/3 seeds, p 0.01): b lower' for one comparison (or 'within
    seed noise', or 'one seed, not testable')."""
    head = (f"{test.a} {significance.number(test.mean_a)} vs {test.b} "
            f"{significance.number(test.mean_b)} ({test.n_a}/{test.n_b} seeds")
    if not test.testable:
        return head + "): one seed, not testable"
    head += f", p {significance.p_text(test.p)})"
    if test.winner is None:
        return head + ": within seed noise"
    winner_mean = test.mean_a if test.winner == test.a else test.mean_b
    side = "higher" if winner_mean > min(test.mean_a, test.mean_b) else "lower"
    return head + f": {test.winner} {side}"


def _mean(values) -> float:
    return float(np.mean(values)) if values else math.inf


def _seeds(line) -> str:
    return "1 seed" if len(line.runs) == 1 else f"{len(line.runs)} seeds"


def _finding(measure_text, parts, verdict, gan_note=False, missing="no runs to compare") -> Finding:
    numbers = "; ".join(part_text(test) for test in parts if test is not None) or missing
    return Finding(measure_text, numbers, verdict, gan_note)


def _winner_claim(evidence, measure, pairs, short=False, gan_note=False, stand_in=""):
    """A claim that the first line of each pair beats the second on ``measure``."""
    tests = [welch(evidence, measure, a, b, short) for a, b in pairs]
    verdict = conjunction(expect(t, label(a, short)) for t, (a, _) in zip(tests, pairs))
    return _finding(measure.describe + stand_in, tests, verdict, gan_note)


def _alike_claim(evidence, measure, pairs, short=False, stand_in=""):
    tests = [welch(evidence, measure, a, b, short) for a, b in pairs]
    return _finding(measure.describe + stand_in, tests, conjunction(alike(t) for t in tests))


def _family_pairs(evidence, family, others):
    """(family's baseline, other family's baseline) at each size setting: the i-th latent
    of one against the i-th of the other (128 with 128; StyleGAN2's 1024 with 2048)."""
    pairs = []
    ours = [(family, baseline(family), z) for z in evidence.latents(family, baseline(family))]
    for other in others:
        theirs = [(other, baseline(other), z) for z in evidence.latents(other, baseline(other))]
        pairs += list(zip(ours, theirs))
    return pairs


def _loss_pairs(evidence, family, loss, others):
    """(family/loss, family/other) at every latent both have."""
    return [((family, loss, z), (family, other, z)) for other in others
            for z in evidence.latents(family, loss) if (family, other, z) in evidence.lines]


FAMILIES = ("vae", "autoregressive", "gan", "diffusion")


def _others(family):
    return [f for f in FAMILIES if f != family]


# ---------------------------------------------------------------------------------- claims

def stylegan2_best_visually(ev) -> Finding:
    """Experiment 1: StyleGAN2's samples beat every other family's (baseline losses)."""
    return _winner_claim(ev, fd(ev), _family_pairs(ev, "gan", _others("gan")), gan_note=True,
                         stand_in=" of the baseline rows, stand-in for looks")


def stylegan2_hardest_and_longest(ev) -> Finding:
    """Not measurable: the recipes, not the families, set how long a run trains."""
    return Finding("none", "each family's training length is fixed by its profile's recipe "
                   "(quick: sized to about 10 minutes a stage on 2 cores), so time measures "
                   "the recipe, and the families' losses share no scale on which one could "
                   "be called jumpier", NOT_MEASURABLE, gan_note=True)


def vae_worst(ev) -> Finding:
    """Experiment 1: every other family beats the VAE."""
    pairs = [(b, a) for a, b in _family_pairs(ev, "vae", _others("vae"))]
    return _winner_claim(ev, fd(ev), pairs, stand_in=" of the baseline rows")


def vae_better_at_2048(ev) -> Finding:
    """The VAE (ELBO) scores better at batch = latent = 2048 than at 128."""
    return _winner_claim(ev, fd(ev), [(("vae", "elbo", 2048), ("vae", "elbo", 128))],
                         short=True)


def textures_over_objects(ev) -> Finding:
    """Not measurable: no run-folder quantity separates texture from object shape."""
    return Finding("none", "nothing in a run folder separates texture from object shape",
                   NOT_MEASURABLE)


def diffusion_more_detailed(ev) -> Finding:
    """Stable Diffusion's samples are more detailed than DALL-E's (the families the
    thesis describes together)."""
    return _winner_claim(ev, DETAIL, _family_pairs(ev, "diffusion", ["autoregressive"]),
                         stand_in=", stand-in for detail (it counts noise too)")


def diffusion_trains_most_easily(ev) -> Finding:
    """Stable Diffusion reaches the best samples of every family in its profile's budget."""
    return _winner_claim(ev, fd(ev), _family_pairs(ev, "diffusion", _others("diffusion")),
                         stand_in=" reached in the profile's budget, stand-in for ease "
                                  "of training")


def wae_sharper(ev) -> Finding:
    """WAE's samples are sharper than ELBO's and MI's."""
    return _winner_claim(ev, DETAIL, _loss_pairs(ev, "vae", "wae", ["elbo", "mi"]),
                         short=True, stand_in=", stand-in for sharpness")


def mi_like_elbo(ev) -> Finding:
    """MI's samples are like ELBO's."""
    return _alike_claim(ev, fd(ev), _loss_pairs(ev, "vae", "mi", ["elbo"]), short=True)


def mi_twice_elbo_loss(ev) -> Finding:
    """MI's loss is about twice ELBO's: the ratio of their final validation objectives,
    its interval from Welch's test on the per-seed log losses, inside ABOUT_TWICE."""
    parts, verdicts = [], []
    for (a, b) in _loss_pairs(ev, "vae", "mi", ["elbo"]):
        xs, ys = ev.metric(ev.line(a), "val_loss"), ev.metric(ev.line(b), "val_loss")
        if not xs or not ys or min(xs + ys) <= 0.0:
            continue
        test = significance.welch_test([math.log(x) for x in xs], [math.log(y) for y in ys],
                                       label(a, True), label(b, True))
        ratio = math.exp(test.difference)
        text = f"mi / elbo at {a[2]} = {ratio:.2f} ({test.n_a}/{test.n_b} seeds"
        if not test.testable:
            parts.append(text + "): one seed, not testable")
            verdicts.append(NOT_MEASURABLE)
            continue
        low, high = math.exp(test.ci[0]), math.exp(test.ci[1])
        parts.append(text + f", 95% CI [{low:.2f}, {high:.2f}])")
        inside = ABOUT_TWICE[0] <= low and high <= ABOUT_TWICE[1]
        apart = high < ABOUT_TWICE[0] or low > ABOUT_TWICE[1]
        verdicts.append(SUPPORTED if inside else CONTRADICTED if apart else NOT_DISTINGUISHABLE)
    return Finding(f"ratio of the final validation objectives (metrics.json val_loss); "
                   f"'about twice' = {ABOUT_TWICE[0]}-{ABOUT_TWICE[1]}",
                   "; ".join(parts) or "no runs to compare", conjunction(verdicts))


def perceptual_brightest_at_128(ev) -> Finding:
    """DALL-E with the perceptual loss gives the brightest samples at latent 128."""
    pairs = [p for p in _loss_pairs(ev, "autoregressive", "perceptual",
                                    ["cross_entropy", "mse"]) if p[0][2] == 128]
    return _winner_claim(ev, BRIGHTNESS, pairs, short=True)


def perceptual_grey_at_2048(ev) -> Finding:
    """DALL-E with the perceptual loss gives the greyest samples at latent 2048."""
    pairs = [p for p in _loss_pairs(ev, "autoregressive", "perceptual",
                                    ["cross_entropy", "mse"]) if p[0][2] == 2048]
    return _winner_claim(ev, GREYNESS, pairs, short=True)


def hinge_fewest_artefacts(ev) -> Finding:
    """StyleGAN2 with the hinge loss has the fewest artefacts of the GAN losses."""
    return _winner_claim(ev, PRECISION, _loss_pairs(ev, "gan", "hinge", ["wasserstein_gp",
                                                                          "lsgan"]),
                         short=True, gan_note=True,
                         stand_in=" (share of samples inside the real images' feature "
                                  "manifold), stand-in for few artefacts")


def hinge_best_gan(ev) -> Finding:
    """The hinge loss is the best of the GAN losses."""
    return _winner_claim(ev, fd(ev), _loss_pairs(ev, "gan", "hinge", ["wasserstein_gp",
                                                                       "lsgan"]),
                         short=True, gan_note=True)


def lsgan_curves_swap(ev) -> Finding:
    """LSGAN's generator and discriminator loss curves swap places: the order of G's and
    D's training losses in the first epoch is reversed in the last, in every seed."""
    parts, verdicts = [], []
    for z in ev.latents("gan", "lsgan"):
        for run in ev.line(("gan", "lsgan", z)).runs:
            rows = [r for r in run.history if r.get("g_loss") not in ("", None)
                    and r.get("d_loss") not in ("", None)]
            if len(rows) < 2:
                continue
            first, last = rows[0], rows[-1]
            above = [float(r["g_loss"]) > float(r["d_loss"]) for r in (first, last)]
            swapped = above[0] != above[1]
            verdicts.append(swapped)
            parts.append(f"latent {z}, seed {run.seed}: G {'above' if above[0] else 'below'} "
                         f"D in epoch {first['epoch']} ({float(first['g_loss']):.3g} vs "
                         f"{float(first['d_loss']):.3g}), {'above' if above[1] else 'below'} "
                         f"in epoch {last['epoch']} ({float(last['g_loss']):.3g} vs "
                         f"{float(last['d_loss']):.3g})")
    verdict = (NOT_MEASURABLE if not verdicts else SUPPORTED if all(verdicts)
               else CONTRADICTED if not any(verdicts) else NOT_DISTINGUISHABLE)
    return Finding("order of G's and D's training losses (history.csv g_loss, d_loss) in "
                   "the first and the last epoch, per seed",
                   "; ".join(parts) or "no LSGAN runs with curves", verdict, gan_note=True)


def diffusion_losses_alike(ev) -> Finding:
    """Stable Diffusion's three losses give samples that look alike."""
    losses = ev.losses("diffusion")
    pairs = [((("diffusion", a, z)), ("diffusion", b, z))
             for a, b in itertools.combinations(losses, 2) for z in ev.latents("diffusion", a)
             if ("diffusion", b, z) in ev.lines]
    return _alike_claim(ev, fd(ev), pairs, short=True, stand_in=", stand-in for looks")


def mae_trains_best(ev) -> Finding:
    """Stable Diffusion trains best with MAE: the lowest validation noise-prediction
    error on the scale every diffusion loss records (eps-MSE)."""
    return _winner_claim(ev, NOISE_MSE, _loss_pairs(ev, "diffusion", "mae", ["mse", "huber"]),
                         short=True)


def overall_best(ev) -> Finding:
    """StyleGAN2 + hinge and Stable Diffusion + MAE beat every other row."""
    measure = fd(ev)
    candidates = [("gan", "hinge", z) for z in ev.latents("gan", "hinge")]
    candidates += [("diffusion", "mae", z) for z in ev.latents("diffusion", "mae")]
    rows = [key for key in ev.lines if key[0] in FAMILIES]
    others = [key for key in rows if key not in candidates]
    means = sorted(_mean(measure.of(ev, ev.line(key))) for key in rows)
    parts, verdicts = [], []
    for key in candidates:
        found = [expect(welch(ev, measure, key, other), label(key)) for other in others]
        verdicts += found
        mine = _mean(measure.of(ev, ev.line(key)))
        counts = ", ".join(f"{found.count(v)} {v}" for v in
                           (SUPPORTED, CONTRADICTED, NOT_DISTINGUISHABLE, NOT_MEASURABLE)
                           if found.count(v))
        parts.append(f"{label(key)} {significance.number(mine)} ({_seeds(ev.line(key))}), "
                     f"mean ranked {means.index(mine) + 1} of the {len(means)} rows, against "
                     f"each of the {len(others)} others: {counts}")
    return Finding(measure.describe + " against every other row of the folder",
                   "; ".join(parts) or "no StyleGAN2 + hinge or Stable Diffusion + MAE runs",
                   conjunction(verdicts), gan_note=True)


#: (the thesis's finding, in its order, and the function that checks it)
CLAIMS = (
    ("StyleGAN2 gives the best-looking images (Experiment 1)", stylegan2_best_visually),
    ("StyleGAN2 has artefacts and jumpy losses, and trains hardest and longest "
     "(up to 2.5 h on Colab)", stylegan2_hardest_and_longest),
    ("The VAE is the worst family (coloured pixel noise)", vae_worst),
    ("The VAE is better at batch = latent = 2048", vae_better_at_2048),
    ("DALL-E and Stable Diffusion show textures more than objects", textures_over_objects),
    ("Stable Diffusion is more detailed (than DALL-E)", diffusion_more_detailed),
    ("Stable Diffusion trains most easily", diffusion_trains_most_easily),
    ("WAE gives sharper shapes (than ELBO and MI)", wae_sharper),
    ("MI is like ELBO", mi_like_elbo),
    ("MI's loss is about twice ELBO's", mi_twice_elbo_loss),
    ("Perceptual is the brightest at 128 (DALL-E)", perceptual_brightest_at_128),
    ("Perceptual is grey at 2048 (DALL-E)", perceptual_grey_at_2048),
    ("Hinge has the fewest artefacts (StyleGAN2)", hinge_fewest_artefacts),
    ("Hinge is the best GAN loss", hinge_best_gan),
    ("LSGAN's G and D curves swap places", lsgan_curves_swap),
    ("The three diffusion losses look alike", diffusion_losses_alike),
    ("Stable Diffusion trains best with MAE", mae_trains_best),
    ("Overall best: StyleGAN2 + hinge and Stable Diffusion + MAE", overall_best),
)


def check(report) -> list:
    """[(claim, Finding)] for every claim of :data:`CLAIMS`, on ``report``'s runs."""
    evidence = Evidence(report)
    return [(claim, function(evidence)) for claim, function in CLAIMS]


def applies(report) -> bool:
    """Whether the report holds thesis 004's families (the claims are about them)."""
    return any(family in FAMILIES for family in report.families())


def markdown(report, level: int = 2) -> str:
    """The README section: a heading at ``level``, how to read it, and the table
    (claim, measure, our numbers, verdict), the GAN's tuning note below it."""
    rows = check(report)
    out = [f"{'#' * level} {HEADING}", "",
           "Thesis 004's qualitative findings, each checked by `experiments/claims.py` "
           "against the runs in this folder (regenerated with the README). Where a claim "
           "is about looks, the measure column names what stands in for it. Comparisons "
           "are Welch's t-tests on the per-seed values (95%, `experiments/significance.py`): "
           "**supported** or **contradicted** when the difference exceeds seed noise in the "
           "claim's or the other direction, **not distinguishable** when it does not (for "
           "a claim that things are alike, as far as a test can go), **not measurable "
           "here** when a side has one seed, the runs are missing or nothing here measures "
           "it. A claim of several comparisons holds only if each does.", "",
           "| claim (thesis 004) | measure | our numbers | verdict |", "|---|---|---|---|"]
    for claim, found in rows:
        mark = " ¹" if found.gan_note else ""
        numbers = found.numbers.replace("; ", "<br>")  # a comparison per line of the cell
        out.append(f"| {claim} | {found.measure} | {numbers} | **{found.verdict}**{mark} |")
    if any(found.gan_note for _, found in rows):
        out += ["", f"¹ {GAN_NOTE}"]
    return "\n".join(out) + "\n"
