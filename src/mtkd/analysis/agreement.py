"""Agreement regions: where the teachers' argmax predictions agree.

For K teachers and one example, let d be the number of distinct labels they predict:
  "all agree"        d == 1                (with one teacher every example is here)
  "full disagree"    d == K and K >= 2     (no two teachers agree; with K = 2 every
                                            disagreement is full and "partial" is empty;
                                            impossible when K > number of classes)
  "partial disagree" 1 < d < K             (some, not all, teachers agree)
The regions are mutually exclusive and exhaustive.
"""
from __future__ import annotations

import numpy as np

REGIONS = ("all agree", "partial disagree", "full disagree")
ALL, PARTIAL, FULL = 0, 1, 2


def n_distinct(teacher_preds: np.ndarray) -> np.ndarray:
    """teacher_preds int [K, N] -> number of distinct predicted labels per example, int [N]."""
    s = np.sort(np.asarray(teacher_preds), axis=0)
    return 1 + (np.diff(s, axis=0) != 0).sum(axis=0)


def regions(teacher_preds: np.ndarray) -> np.ndarray:
    """teacher_preds int [K, N] -> region code per example (ALL, PARTIAL or FULL), int [N]."""
    k = np.asarray(teacher_preds).shape[0]
    d = n_distinct(teacher_preds)
    out = np.full(d.shape, PARTIAL)
    out[d == 1] = ALL
    if k >= 2:
        out[d == k] = FULL
    return out


def region_shares(region: np.ndarray) -> list[tuple[str, int, float]]:
    """(region name, count, share in %) for every region, empty ones included."""
    n = max(len(region), 1)
    return [(name, int((region == r).sum()), 100.0 * (region == r).sum() / n) for r, name in enumerate(REGIONS)]


def region_accuracy(pred: np.ndarray, labels: np.ndarray, region: np.ndarray) -> list[float]:
    """Accuracy in % of `pred` inside each region (NaN for an empty region)."""
    out = []
    for r in range(len(REGIONS)):
        mask = region == r
        out.append(100.0 * float((pred[mask] == labels[mask]).mean()) if mask.any() else float("nan"))
    return out
