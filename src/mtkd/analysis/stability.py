"""Steadiness of a method over its seeds: how much the official metric moves from seed to seed
(sample standard deviation, worst seed) and how many eval predictions change (churn).

Churn of two seeds = the share of eval examples whose predicted label differs between them; a
method's churn is the mean over every pair of its seeds. Its 95% interval is a percentile bootstrap
over eval examples (scipy.stats.bootstrap): the per-example disagreement rate, averaged over seed
pairs, is resampled, so the interval says how much the churn depends on which examples were drawn
(not on which seeds were).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 2000


@dataclass
class Stability:
    n_seeds: int
    mean: float          # official metric, mean over seeds
    std: float           # sample std over seeds (ddof 1); NaN with one seed
    worst: float         # the lowest official metric of any seed
    worst_seed: int | str
    churn: float         # % of eval examples whose prediction differs between two seeds, mean over pairs; NaN < 2 seeds
    churn_low: float     # 95% percentile-bootstrap interval over eval examples
    churn_high: float


def disagreement(preds: np.ndarray) -> np.ndarray:
    """Per eval example, the share of seed pairs that predict it differently: float [N] for int preds [S, N]."""
    preds = np.asarray(preds)
    pairs = list(itertools.combinations(range(len(preds)), 2))
    if not pairs:
        return np.full(preds.shape[1], np.nan)
    return np.mean([preds[i] != preds[j] for i, j in pairs], axis=0)


def churn(preds: np.ndarray) -> float:
    """% of eval examples predicted differently by two seeds, averaged over all pairs of seeds."""
    d = disagreement(preds)
    return 100.0 * float(d.mean()) if len(d) else math.nan


def churn_interval(preds: np.ndarray, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap over eval examples of `churn` (in %); (NaN, NaN) with fewer than 2 seeds."""
    from scipy import stats
    d = disagreement(preds)
    if len(preds) < 2 or len(d) < 2:
        return math.nan, math.nan
    if np.all(d == d[0]):     # no spread to resample (e.g. no example ever changes)
        return 100.0 * float(d[0]), 100.0 * float(d[0])
    res = stats.bootstrap((d,), np.mean, n_resamples=N_RESAMPLES, confidence_level=confidence,
                          method="percentile", random_state=np.random.default_rng(seed))
    return 100.0 * float(res.confidence_interval.low), 100.0 * float(res.confidence_interval.high)


def stability(metrics: dict, preds: dict | None = None) -> Stability:
    """`metrics`: seed -> official metric (%); `preds`: seed -> predicted eval labels (int [N]), optional."""
    seeds = list(metrics)
    values = np.array([metrics[s] for s in seeds], dtype=float)
    worst = int(np.argmin(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    c, lo, hi = math.nan, math.nan, math.nan
    if preds and len(preds) > 1:
        p = np.stack([preds[s] for s in preds])
        c = churn(p)
        lo, hi = churn_interval(p)
    return Stability(len(values), float(values.mean()), std, float(values[worst]), seeds[worst], c, lo, hi)
