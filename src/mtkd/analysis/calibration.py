"""Calibration of a classifier from its probabilities.

ECE    15 equal-width bins of the max probability on [0, 1] (bin b holds confidences in
       (b/15, (b+1)/15], the first bin also holds 0); ECE = sum_b n_b/N * |acc_b - conf_b|
NLL    mean over examples of -log p(true label), in nats
Brier  mean over examples of sum over classes of (p_c - onehot_c)^2  (range 0..2)
"""
from __future__ import annotations

import numpy as np

N_BINS = 15


def bin_index(conf: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    return np.digitize(np.asarray(conf), inner, right=True)


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS):
    """Per bin: (count int [B], mean confidence [B], accuracy [B]); NaN in empty bins."""
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    b = bin_index(conf, n_bins)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=n_bins) / count
        acc = np.bincount(b, weights=(pred == labels).astype(float), minlength=n_bins) / count
    return count, mean_conf, acc


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    count, mean_conf, acc = reliability(probs, labels, n_bins)
    keep = count > 0
    return float((count[keep] / count.sum() * np.abs(acc[keep] - mean_conf[keep])).sum())


def nll(log_probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    onehot = np.eye(probs.shape[1])[labels]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())
