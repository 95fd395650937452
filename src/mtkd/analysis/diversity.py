"""How different the teachers are, and what a perfect combination of them could reach.

pairwise agreement   share (%) of examples where two teachers predict the same label
Fleiss' kappa        teachers as raters, classes as categories (Fleiss 1971): chance-corrected
                     agreement; NaN with fewer than 2 teachers or when chance agreement is 1
oracle accuracy      share (%) of examples where at least one teacher is right
majority vote        the label most teachers predict; ties go to the lowest class index
"""
from __future__ import annotations

from itertools import combinations

import numpy as np


def pairwise_agreement(teacher_preds: np.ndarray, names: list[str]) -> list[tuple[str, str, float]]:
    preds = np.asarray(teacher_preds)
    return [(names[a], names[b], 100.0 * float((preds[a] == preds[b]).mean()))
            for a, b in combinations(range(len(names)), 2)]


def vote_counts(teacher_preds: np.ndarray, n_classes: int) -> np.ndarray:
    """int [N, C]: how many teachers predict each class for each example."""
    preds = np.asarray(teacher_preds)
    counts = np.zeros((preds.shape[1], n_classes), dtype=np.int64)
    for row in preds:
        counts[np.arange(preds.shape[1]), row] += 1
    return counts


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of a subjects x categories table of rating counts (same raters per row)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(axis=1)
    if counts.shape[0] == 0 or n[0] < 2 or not np.all(n == n[0]):
        return float("nan")
    n = n[0]
    p_i = ((counts ** 2).sum(axis=1) - n) / (n * (n - 1))
    p_j = counts.sum(axis=0) / counts.sum()
    p_bar, p_e = p_i.mean(), (p_j ** 2).sum()
    if np.isclose(p_e, 1.0):
        return float("nan")
    return float((p_bar - p_e) / (1 - p_e))


def oracle_accuracy(teacher_preds: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float((np.asarray(teacher_preds) == labels[None, :]).any(axis=0).mean())


def majority_vote(teacher_preds: np.ndarray, n_classes: int) -> np.ndarray:
    """Most voted label per example; np.argmax breaks ties toward the lowest class index."""
    return vote_counts(teacher_preds, n_classes).argmax(axis=1)
