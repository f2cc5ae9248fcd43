"""A second opinion and a calibration for every number of a report folder.

A report folder may hold two CSVs written by the metrics commands (``docs/metrics.md``):

- ``second_opinion.csv`` (``python -m metrics second-opinion RUNS --out ...``): every scored
  run's recorded fd_eval, KID, precision and recall (the suite's evaluator) beside
  fd_eval2 and kid_eval2, the same samples.npz scored by a second, independent evaluator
  (``metrics/contrastive.py``: another architecture, another objective, no labels);
- ``calibration.csv`` (``python -m metrics calibrate --out ...``): real held-out images,
  clean and degraded in known ways (blur, pixel noise, block offsets, pixelation), scored
  by the same metrics (``metrics/calibration.py``).

:func:`second_opinion` aggregates the runs per table row (seed means) and asks whether the
two evaluators rank them alike: Spearman's rho over runs and over rows, and the pairs of
rows whose order they disagree on, "not robust" (``metrics/agreement.py``).
:func:`calibration` sets each degradation beside the best generated row per metric: a
degradation that scores worse than the best model is one the metric punishes, one that
scores better is one it misses (it ranks those damaged real images above every model).

Both read CSVs only (no TensorFlow, no network runs here); each CSV row names the
networks (label and weights' SHA-256) and the image counts behind its numbers, which the
sections repeat. A folder without a CSV gets no section (:func:`load` gives None).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re

from common import files as artifacts
from metrics import agreement

SECOND_OPINION_FILE = "second_opinion.csv"
CALIBRATION_FILE = "calibration.csv"
SECOND_OPINION_HEADING = "Second opinion: a second evaluator on the same samples"
CALIBRATION_HEADING = "Calibration: what each metric makes of damaged real images"
#: (first evaluator's key, second evaluator's key, name in the text) compared run by run
PAIRED = (("fd_eval", "fd_eval2", "Fréchet distance"), ("kid", "kid_eval2", "KID"))
#: calibration metrics in table order: key -> (name in the report, lower is better)
CALIBRATION_METRICS = {"fd_eval": ("fd_eval", True), "kid": ("KID", True),
                       "precision": ("precision", False), "recall": ("recall", False),
                       "fd_eval2": ("fd_eval2", True), "kid_eval2": ("kid_eval2", True)}
CLEAN = "clean"
_SEED = re.compile(r"-s[0-9]+(?=\+|$)")
_NUMERIC = ("latent_size", "seed", "n_samples", "reference_images", "fd_eval", "kid",
            "precision", "recall", "fd_eval2", "kid_eval2", "precision_eval2", "recall_eval2",
            "is_eval", "fd_eval_recomputed")


# --------------------------------------------------------------------------------- reading

def read_rows(path) -> list[dict] | None:
    """The rows of a metrics CSV with its numeric columns as floats (an empty cell: NaN),
    or None when the file is absent."""
    if not os.path.isfile(path):
        return None
    return [{k: (_float(v) if k in _NUMERIC else v) for k, v in row.items()}
            for row in artifacts.read_csv(path)]


def _float(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _mean(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


# ---------------------------------------------------------------------------- second opinion

def row_name(run: dict) -> str:
    """The table row a run belongs to, named as the claims name it: 'family/loss@latent',
    plus the run folder's ``+overrides`` suffix if it has one."""
    suffix = run["run"].split("+", 1)[1] if "+" in run["run"] else ""
    latent = run.get("latent_size", math.nan)
    latent = int(latent) if math.isfinite(latent) else "?"
    return f"{run['family']}/{run['loss']}@{latent}" + (f"+{suffix}" if suffix else "")


def row_means(runs: list[dict]) -> list[dict]:
    """One dict per table row (runs whose folder names differ only by the seed): ``row``
    (:func:`row_name`), ``seeds`` and the seed mean of each paired metric and of precision
    and recall, in the order the rows first appear."""
    groups = {}
    for run in runs:
        groups.setdefault(_SEED.sub("", run["run"]), []).append(run)
    keys = [k for pair in PAIRED for k in pair[:2]] + ["precision", "recall"]
    return [{"row": row_name(members[0]), "seeds": len(members),
             **{k: _mean([m.get(k, math.nan) for m in members]) for k in keys}}
            for members in groups.values()]


@dataclasses.dataclass
class SecondOpinion:
    """Both evaluators over one folder's runs: per-row means, rank agreement, and the
    pairs of rows each pair of metrics orders differently."""
    runs: list            # the CSV's rows, one per run
    rows: list            # row_means(runs)
    agreement: dict       # first key -> {"runs": spearman over runs, "rows": over row means}
    not_robust: dict      # first key -> items of metrics.agreement.not_robust over rows
    networks: tuple       # (first, second): sorted distinct 'label (sha256 ...)' texts
    n_samples: list       # distinct sample counts per run
    reference_images: list  # distinct train image counts behind the reference statistics


def second_opinion(runs: list[dict]) -> SecondOpinion:
    """:class:`SecondOpinion` of the rows of a second_opinion.csv."""
    rows = row_means(runs)
    agree, flips = {}, {}
    for first, second, _ in PAIRED:
        agree[first] = {"runs": agreement.rank_agreement(runs, first, second),
                        "rows": agreement.rank_agreement(rows, first, second)}
        flips[first] = agreement.not_robust(rows, first, second, name_key="row")
    return SecondOpinion(runs, rows, agree, flips,
                         (_networks(runs, "metric_network"), _networks(runs, "metric_network2")),
                         _distinct(runs, "n_samples"), _distinct(runs, "reference_images"))


def _networks(rows, key) -> list:
    """The distinct networks of ``rows``' column ``key``, each with the start of its
    weights' SHA-256 (column ``key``_sha256)."""
    found = {(row.get(key) or "?", row.get(f"{key}_sha256") or "") for row in rows}
    return [f"`{label}` (weights sha256 {digest[:12]})" if digest else f"`{label}`"
            for label, digest in sorted(found)]


def _distinct(rows, key) -> list:
    return sorted({int(r[key]) for r in rows if math.isfinite(r.get(key, math.nan))})


# ------------------------------------------------------------------------------- calibration

@dataclasses.dataclass
class Reading:
    """What one metric makes of the calibration sets: the best generated row it is read
    against, the degradations it scores worse than that row (``punishes``) and those it
    scores at least as well (``misses``), and whether clean real images are its best set."""
    key: str
    best_row: str | None
    best_value: float
    punishes: list        # (set, value), worst first
    misses: list          # (set, value), best first
    clean_best: bool


@dataclasses.dataclass
class Calibration:
    """The calibration rows and, per metric, its :class:`Reading`."""
    rows: list
    readings: list
    networks: tuple
    n_samples: list
    reference_images: list


def best_generated(rows: list[dict], key: str, lower_is_better: bool):
    """(row name, seed mean) of the best generated row on ``key``, (None, NaN) without one."""
    scored = [r for r in rows if math.isfinite(r.get(key, math.nan))]
    if not scored:
        return None, math.nan
    pick = min if lower_is_better else max
    best = pick(scored, key=lambda r: r[key])
    return best["row"], best[key]


def reading(sets: list[dict], key: str, generated: list[dict]) -> Reading:
    """How ``key`` scores the calibration ``sets`` against the best of the ``generated``
    row means: a degradation worse than that row is punished, one at least as good is
    missed (the metric prefers those damaged real images to every model)."""
    lower = CALIBRATION_METRICS[key][1]
    sign = 1.0 if lower else -1.0  # sign * value: lower is better
    best_row, best = best_generated(generated, key, lower)
    degraded = [(s["set"], s[key]) for s in sets if s["set"] != CLEAN
                and math.isfinite(s.get(key, math.nan))]
    by_badness = sorted(degraded, key=lambda item: -sign * item[1])
    punishes = ([item for item in by_badness if sign * item[1] > sign * best]
                if math.isfinite(best) else [])
    misses = ([item for item in reversed(by_badness) if sign * item[1] <= sign * best]
              if math.isfinite(best) else [])
    clean = [s[key] for s in sets if s["set"] == CLEAN and math.isfinite(s.get(key, math.nan))]
    clean_best = bool(clean) and all(sign * clean[0] < sign * value for _, value in degraded)
    return Reading(key, best_row, best, punishes, misses, clean_best)


def calibration(sets: list[dict], generated: list[dict] | None) -> Calibration:
    """:class:`Calibration` of a calibration.csv's rows, read against the ``generated`` row
    means (:func:`row_means`; None or [] without a second opinion: no reading then names
    punished or missed degradations)."""
    generated = generated or []
    readings = [reading(sets, key, generated) for key in CALIBRATION_METRICS
                if any(math.isfinite(s.get(key, math.nan)) for s in sets)]
    return Calibration(sets, readings,
                       (_networks(sets, "metric_network"), _networks(sets, "metric_network2")),
                       _distinct(sets, "n_samples"), _distinct(sets, "reference_images"))


# ---------------------------------------------------------------------------------- loading

def load(out_dir) -> tuple[SecondOpinion | None, Calibration | None]:
    """The report folder's second opinion and calibration, each None without its CSV (or
    with an empty one)."""
    runs = read_rows(os.path.join(out_dir, SECOND_OPINION_FILE))
    sets = read_rows(os.path.join(out_dir, CALIBRATION_FILE))
    opinion = second_opinion(runs) if runs else None
    return opinion, (calibration(sets, opinion.rows if opinion else None) if sets else None)


# -------------------------------------------------------------------------------- rendering

def _g(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else "–"


def _counts(values, what) -> str:
    return "/".join(f"{v:,}" for v in values) + f" {what}" if values else f"? {what}"


def _rho(found: dict) -> str:
    if not math.isfinite(found["rho"]):
        return f"undefined ({found['n']} values)"
    return f"**{found['rho']:.3f}** (p {found['p']:.2g}, n = {found['n']})"


def _ranks(rows, key) -> dict:
    """row name -> rank on ``key`` (1 = lowest; NaN rows unranked)."""
    scored = sorted((r for r in rows if math.isfinite(r[key])), key=lambda r: r[key])
    return {r["row"]: i + 1 for i, r in enumerate(scored)}


def second_opinion_markdown(opinion: SecondOpinion, level: int = 2) -> str:
    """The README's second-opinion section: where the numbers come from, the rank
    agreement, the per-row table and the not-robust pairs."""
    first, second = (", ".join(n) for n in opinion.networks)
    rows = sorted(opinion.rows, key=lambda r: (not math.isfinite(r["fd_eval"]), r["fd_eval"]))
    pairs = len(rows) * (len(rows) - 1) // 2
    fd, kid = opinion.agreement["fd_eval"], opinion.agreement["kid"]
    out = [f"{'#' * level} {SECOND_OPINION_HEADING}", "",
           f"Every scored run's samples.npz ({_counts(opinion.n_samples, 'samples per run')}, "
           f"{len(opinion.runs)} runs, against "
           f"{_counts(opinion.reference_images, 'train images')}) scored by the suite's "
           f"evaluator {first} (fd_eval, KID: the numbers of the tables above) and by a second, "
           f"independent one, {second} (fd_eval2, kid_eval2: another architecture, trained "
           f"contrastively without labels; `metrics/contrastive.py`). "
           f"[{SECOND_OPINION_FILE}]({SECOND_OPINION_FILE}) holds every run's numbers, written "
           f"by `python -m metrics second-opinion <this folder>/runs --out <this folder>/"
           f"{SECOND_OPINION_FILE}`; drawn by `experiments/evidence.py`. Lower is better for "
           f"all four.", "",
           f"Spearman's rank correlation of the two evaluators: fd_eval vs fd_eval2 "
           f"{_rho(fd['runs'])} over runs, {_rho(fd['rows'])} over the row means; KID vs "
           f"kid_eval2 {_rho(kid['runs'])} over runs, {_rho(kid['rows'])} over the row means.",
           "", "| row | seeds | fd_eval | fd_eval2 | rank by fd_eval / fd_eval2 | KID | "
           "kid_eval2 |", "|---|---|---|---|---|---|---|"]
    rank_a, rank_b = _ranks(rows, "fd_eval"), _ranks(rows, "fd_eval2")
    for r in rows:
        out.append(f"| {r['row']} | {r['seeds']} | {_g(r['fd_eval'])} | {_g(r['fd_eval2'])} | "
                   f"{rank_a.get(r['row'], '–')} / {rank_b.get(r['row'], '–')} | "
                   f"{_g(r['kid'])} | {_g(r['kid_eval2'])} |")
    out += ["", _not_robust_markdown(opinion, pairs)]
    return "\n".join(out) + "\n"


def flipped_pairs(opinion: SecondOpinion) -> list[tuple]:
    """The pairs of rows some paired metric orders differently, each once, in the order
    first found: ((first row, second row), [names of the metrics that disagree])."""
    found = {}
    for a, _, name in PAIRED:
        for item in opinion.not_robust[a]:
            found.setdefault((item["first"], item["second"]), []).append(name)
    return list(found.items())


def rank_moves(opinion: SecondOpinion, threshold: int | None = None) -> list[tuple]:
    """(row, rank by fd_eval, rank by fd_eval2) of the rows whose rank moves by at least
    ``threshold`` places (default a quarter of the rows, at least 2), largest move first."""
    rows = opinion.rows
    threshold = threshold or max(2, len(rows) // 4)
    by_a, by_b = _ranks(rows, "fd_eval"), _ranks(rows, "fd_eval2")
    moves = [(r, by_a[r], by_b[r]) for r in by_a if r in by_b
             and abs(by_a[r] - by_b[r]) >= threshold]
    return sorted(moves, key=lambda m: -abs(m[1] - m[2]))


def _not_robust_markdown(opinion: SecondOpinion, pairs: int) -> str:
    """How many pairs of rows (seed means) the two evaluators order differently, the rows
    that move most, and the pairs, one line each, folded away (they can be many)."""
    counts = ", ".join(f"{len(opinion.not_robust[a])} of {pairs} by {name} ({a} vs {b})"
                       for a, b, name in PAIRED)
    moves = rank_moves(opinion)
    moved = ("; the rows whose rank moves most (by fd_eval → by fd_eval2): "
             + ", ".join(f"{row} ({a} → {b})" for row, a, b in moves) if moves else "")
    flipped = flipped_pairs(opinion)
    text = (f"Pairs of rows the two evaluators order differently (seed means): {counts}. "
            f"Their order rests on the choice of network: **not robust**; every other pair "
            f"is ordered alike by both{moved}.")
    if not flipped:
        return text
    means = {r["row"]: r for r in opinion.rows}
    keys = [k for pair in PAIRED for k in pair[:2]]
    out = [text, "", f"<details><summary>The {len(flipped)} pairs ordered differently by at "
                     f"least one metric</summary>", "",
           "| pair (a, b) | " + " | ".join(f"{k}: a vs b" for k in keys) + " | verdict |",
           "|---|" + "---|" * (len(keys) + 1)]
    for (first, second), names in flipped:
        x, y = means[first], means[second]
        out.append(f"| {first}, {second} | "
                   + " | ".join(f"{_g(x[k])} vs {_g(y[k])}" for k in keys)
                   + f" | **not robust**: {' and '.join(names)} |")
    return "\n".join(out + ["", "</details>"])


def calibration_markdown(calib: Calibration, level: int = 2) -> str:
    """The README's calibration section: where the numbers come from, the table (clean
    real images first, then each degradation; the best generated row per metric below),
    and one sentence per metric."""
    first, second = (", ".join(n) for n in calib.networks)
    keys = [r.key for r in calib.readings]
    out = [f"{'#' * level} {CALIBRATION_HEADING}", "",
           f"Real held-out images (the test split, trained on by neither evaluator nor any "
           f"model; {_counts(calib.n_samples, 'images per set')}) clean and "
           f"degraded in known ways, each set scored against "
           f"{_counts(calib.reference_images, 'train images')} as a run's samples are: "
           f"fd_eval, KID, precision and recall by {first}; fd_eval2 and kid_eval2 by {second}. "
           f"[{CALIBRATION_FILE}]({CALIBRATION_FILE}) was written by `python -m metrics "
           f"calibrate --out <this folder>/{CALIBRATION_FILE}` (`metrics/calibration.py`). "
           f"Lower is better except for precision and recall.", "",
           "| set | degradation | " + " | ".join(CALIBRATION_METRICS[k][0] for k in keys) + " |",
           "|---|---|" + "---|" * len(keys)]
    for s in calib.rows:
        out.append(f"| {s['set']} | {s.get('description', '')} | "
                   + " | ".join(_g(s.get(k, math.nan)) for k in keys) + " |")
    if any(r.best_row for r in calib.readings):
        out.append("| *best generated row* | seed mean of the best table row on each metric | "
                   + " | ".join(f"{_g(r.best_value)} ({r.best_row})" if r.best_row else "–"
                                for r in calib.readings) + " |")
    out += ["", "What each metric punishes and misses, read against the best generated row "
                "(a degradation scored worse than every model is one it punishes; one scored "
                "at least as well as the best model is one it misses):", ""]
    out += [f"- {reading_sentence(r)}" for r in calib.readings]
    return "\n".join(out) + "\n"


def reading_sentence(r: Reading) -> str:
    """One sentence: what metric ``r.key`` punishes and misses, with the numbers."""
    name = CALIBRATION_METRICS[r.key][0]
    items = lambda found: ", ".join(f"{s} ({_g(v)})" for s, v in found)  # noqa: E731
    clean = ("clean real images score best" if r.clean_best
             else "clean real images are **not** its best set")
    if r.best_row is None:
        return f"**{name}**: {clean}; no generated rows to read the degradations against."
    against = f"the best generated row, {r.best_row}, scores {_g(r.best_value)}"
    punished = (f"punishes {items(r.punishes)}" if r.punishes
                else "punishes none of the degradations")
    missed = (f"misses {items(r.misses)}, scoring those damaged real images at least as "
              f"well as every model" if r.misses else "misses none")
    return f"**{name}**: {clean}; {against}; it {punished}; it {missed}."
