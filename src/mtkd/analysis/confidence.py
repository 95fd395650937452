"""How confident the teachers are, at T = 1 and at the distillation temperature T.

Per teacher: mean max probability, mean entropy in nats, and the share (%) of examples
whose max probability exceeds 0.95. Softening with T > 1 lowers the first and third and
raises the second: this shows how much dark knowledge the soft targets carry.
"""
from __future__ import annotations

import numpy as np

CONFIDENT = 0.95


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy in nats of each row; 0 * log 0 counts as 0."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=-1)


def confidence_stats(logits: np.ndarray, temperature: float = 1.0) -> dict:
    """{'mean max prob', 'mean entropy', 'pct max>0.95'} of softmax(logits / temperature)."""
    p = softmax(logits, temperature)
    top = p.max(axis=-1)
    return {"mean max prob": float(top.mean()),
            "mean entropy": float(entropy(p).mean()),
            "pct max>0.95": 100.0 * float((top > CONFIDENT).mean())}
