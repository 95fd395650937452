"""Per-example statistics for comparing models on the same eval examples.

- `bootstrap_metrics`: the paired bootstrap. Each resample draws N eval example indices with
  replacement; the *same* resamples serve every model, so differences are paired. On each resample a
  model's official metric (accuracy, F1 binary/macro, Matthews, as `tasks.compute_metrics`) is computed
  from its confusion matrix at each of its seeds and averaged over the seeds ("pooled over seeds").
  Confusion matrices of a chunk of resamples are one matrix product (resample counts x one-hot cells),
  so 10,000 resamples of 40k examples take seconds and memory stays bounded by `chunk`.
- `percentile_ci`: the 95% percentile interval of a bootstrap distribution (of a difference, a gap closed).
- `mcnemar_p`: the exact McNemar test of two models' paired correctness (statsmodels).
- `combine_pvalues`: one p-value from one per seed, valid however the seeds depend on each other
  (they share the eval examples): min(1, S/k * p_(k)), k = ceil(S/2) — Rüschendorf's order-statistic
  bound (Vovk & Wang 2020, "Combining p-values via averaging"); with one seed, that seed's p.
- `holm`: Holm's step-down correction (statsmodels `multipletests`).

Everything is deterministic: resamples come from `numpy.random.default_rng(seed)`.
"""
from __future__ import annotations

import math

import numpy as np

N_RESAMPLES = 10_000
LEVEL = 0.95
SEED = 0
CHUNK = 128      # resamples per matrix product: chunk x N counts in memory (int32 indices: chunk * N < 2^31)


def metric_from_confusion(conf: np.ndarray, metric: str, pos_label: int = 1) -> np.ndarray:
    """Official metric in % from confusion counts conf[..., true, pred] (any leading shape), as
    scikit-learn computes it: F1 of class `pos_label` (the task's) for 2 classes, else the macro F1 over the classes present
    in labels or predictions (zero_division=0); Matthews by its multi-class formula (0 when undefined)."""
    conf = np.asarray(conf, dtype=np.float64)
    c = conf.shape[-1]
    n = conf.sum(axis=(-2, -1))
    diag = np.diagonal(conf, axis1=-2, axis2=-1)
    true, pred = conf.sum(axis=-1), conf.sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            out = diag.sum(-1) / n
        elif metric == "f1":
            denom = true + pred
            f1 = np.where(denom > 0, 2 * diag / np.where(denom > 0, denom, 1), 0.0)
            out = f1[..., pos_label] if c == 2 else f1.sum(-1) / np.maximum((denom > 0).sum(-1), 1)
        elif metric == "matthews":
            cov_tp = diag.sum(-1) * n - (true * pred).sum(-1)
            denom = np.sqrt((n ** 2 - (true ** 2).sum(-1)) * (n ** 2 - (pred ** 2).sum(-1)))
            out = np.where(denom > 0, cov_tp / np.where(denom > 0, denom, 1), 0.0)
        else:
            raise ValueError(f"unknown metric '{metric}'")
    return 100.0 * out


def confusion(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """conf[true, pred] counts, int [C, C]."""
    return np.bincount(labels * n_classes + preds, minlength=n_classes ** 2).reshape(n_classes, n_classes)


def bootstrap_metrics(labels, preds: dict[str, np.ndarray], metric: str, n_classes: int,
                      n_resamples: int = N_RESAMPLES, seed=SEED, chunk: int = CHUNK, pos_label: int = 1
                      ) -> dict[str, np.ndarray]:
    """{model: float [n_resamples]}: each model's metric (mean over its seeds) on the same resamples.

    labels: int [N]; preds: {model: int [S, N]} predicted classes of each of the model's S seeds."""
    labels = np.asarray(labels, dtype=np.int64)
    n, cells = len(labels), n_classes ** 2
    chunk = max(1, min(chunk, (2 ** 31 - 1) // max(n, 1)))
    names = list(preds)
    stacks = [np.atleast_2d(np.asarray(preds[m], dtype=np.int64)) for m in names]
    codes = np.concatenate([labels[None, :] * n_classes + p for p in stacks])          # [sum S, N]
    onehot = np.zeros((n, len(codes) * cells), dtype=np.float32)                          # [N, sum S * C^2]
    onehot[np.arange(n)[:, None], np.arange(len(codes)) * cells + codes.T] = 1.0
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, len(codes)))
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n), dtype=np.int32) + (np.arange(b, dtype=np.int32) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float32)
        conf = (counts @ onehot).reshape(b, len(codes), n_classes, n_classes)           # exact: integers < 2^24
        out[start:start + b] = metric_from_confusion(conf, metric, pos_label)
    bounds = np.cumsum([0] + [len(s) for s in stacks])
    return {m: out[:, bounds[i]:bounds[i + 1]].mean(axis=1) for i, m in enumerate(names)}


def percentile_ci(samples, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of a bootstrap distribution; resamples where the statistic is undefined
    (NaN, e.g. a gap closed whose denominator is 0) are left out; (NaN, NaN) when none is defined."""
    x = np.asarray(samples, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not x.size:
        return math.nan, math.nan
    lo, hi = np.percentile(x, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def mcnemar_p(labels, a, b) -> float:
    """Exact (binomial) McNemar p-value, two-sided, of models a and b (predicted classes) on the same examples."""
    from statsmodels.stats.contingency_tables import mcnemar

    ra, rb = np.asarray(a) == labels, np.asarray(b) == labels
    table = [[int(np.sum(ra & rb)), int(np.sum(ra & ~rb))], [int(np.sum(~ra & rb)), int(np.sum(~ra & ~rb))]]
    return float(mcnemar(table, exact=True).pvalue)


def combine_pvalues(ps) -> float:
    """min(1, S/k * p_(k)) with k = ceil(S/2) (the k-th smallest of S per-seed p-values): a valid p-value
    under any dependence between the seeds (Rüschendorf 1982; Vovk & Wang 2020). One seed: its p."""
    ps = sorted(float(p) for p in ps)
    if not ps:
        return math.nan
    k = math.ceil(len(ps) / 2)
    return min(1.0, len(ps) / k * ps[k - 1])


def holm(ps) -> list[float]:
    """Holm-adjusted p-values (NaN entries stay NaN and do not count as tests)."""
    from statsmodels.stats.multitest import multipletests

    ps = [float(p) for p in ps]
    keep = [i for i, p in enumerate(ps) if not math.isnan(p)]
    out = [math.nan] * len(ps)
    if keep:
        adjusted = multipletests([ps[i] for i in keep], method="holm")[1]
        for i, p in zip(keep, adjusted):
            out[i] = float(p)
    return out
