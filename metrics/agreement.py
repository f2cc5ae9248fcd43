"""Do two metrics rank the runs alike? Spearman's rank correlation, and the pairs of runs
whose order the two metrics disagree on ("not robust").

Numpy and scipy only (no TensorFlow): the report writer calls these on numbers already
computed (fd_eval from each run's metrics.json, fd_eval2 from
:func:`metrics.second_opinion.score_runs`).
"""
from __future__ import annotations

import itertools
import math
from typing import Iterable, Sequence

import numpy as np

ROBUST, NOT_ROBUST = "robust", "not robust"


def _finite_pairs(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"two equally long lists of numbers expected, got shapes {a.shape} "
                         f"and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def spearman(a: Sequence[float], b: Sequence[float]) -> dict:
    """Spearman's rank correlation of two metrics over the same runs (entries i of ``a``
    and ``b`` belong to one run; pairs with a NaN or Inf are left out): ``rho`` (ties get
    their average rank, scipy.stats.spearmanr), its two-sided ``p`` value (the t
    approximation; rough below about 10 runs) and ``n`` the runs used. Fewer than 3 runs,
    or a metric constant over them: ``rho`` NaN."""
    from scipy import stats

    a, b = _finite_pairs(a, b)
    n = int(len(a))
    if n < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return {"rho": math.nan, "p": math.nan, "n": n}
    result = stats.spearmanr(a, b)
    return {"rho": float(result.statistic), "p": float(result.pvalue), "n": n}


def rank_agreement(rows: Iterable[dict], key_a: str, key_b: str) -> dict:
    """:func:`spearman` of columns ``key_a`` and ``key_b`` of ``rows`` (dicts; a missing
    value counts as NaN), plus the two keys."""
    rows = list(rows)
    a = [_number(r.get(key_a)) for r in rows]
    b = [_number(r.get(key_b)) for r in rows]
    return {"a": key_a, "b": key_b, **spearman(a, b)}


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _order(x: float, y: float, lower_is_better: bool) -> int:
    """+1: the first is better, -1: the second, 0: a tie (or a NaN)."""
    if not (math.isfinite(x) and math.isfinite(y)) or x == y:
        return 0
    first_better = x < y if lower_is_better else x > y
    return 1 if first_better else -1


def pairwise_orders(rows: Iterable[dict], key_a: str, key_b: str, *, name_key: str = "run",
                    pairs: Iterable[tuple[str, str]] | None = None,
                    lower_is_better: bool = True) -> list[dict]:
    """For each pair of runs (every pair of ``rows``, or the named ``pairs``), which one
    each metric calls better, and whether the call is ``robust``: both metrics name the
    same run. Where they name different runs, or one of them has a tie or a missing value
    while the other does not, the comparison is "not robust" (``verdict``). Two ties are
    robust (both say: no difference).

    Each item: ``first``, ``second`` (run names), ``better_by_a``/``better_by_b`` (a run's
    name, or None for a tie), ``robust`` (bool), ``verdict`` ("robust" | "not robust").
    """
    rows = list(rows)
    by_name = {}
    for row in rows:
        name = row.get(name_key)
        if name in by_name:
            raise ValueError(f"two rows are named {name!r} ({name_key})")
        by_name[name] = row
    if pairs is None:
        pairs = itertools.combinations([r.get(name_key) for r in rows], 2)
    out = []
    for first, second in pairs:
        missing = [n for n in (first, second) if n not in by_name]
        if missing:
            raise ValueError(f"no row named {missing[0]!r} ({name_key})")
        r1, r2 = by_name[first], by_name[second]
        order_a = _order(_number(r1.get(key_a)), _number(r2.get(key_a)), lower_is_better)
        order_b = _order(_number(r1.get(key_b)), _number(r2.get(key_b)), lower_is_better)
        robust = order_a == order_b
        name = {1: first, -1: second, 0: None}
        out.append({"first": first, "second": second, "better_by_a": name[order_a],
                    "better_by_b": name[order_b], "robust": robust,
                    "verdict": ROBUST if robust else NOT_ROBUST})
    return out


def not_robust(rows: Iterable[dict], key_a: str, key_b: str, **kwargs) -> list[dict]:
    """The items of :func:`pairwise_orders` whose verdict is "not robust"."""
    return [item for item in pairwise_orders(rows, key_a, key_b, **kwargs) if not item["robust"]]
