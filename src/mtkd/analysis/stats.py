"""Per-example statistics for comparing models on the same eval examples.

- `bootstrap_metrics`: the paired bootstrap. Each resample draws N eval example indices with
  replacement; the *same* resamples serve every model, so differences are paired. On each resample a
  model's official metric (accuracy, F1 binary/macro, Matthews, as `tasks.compute_metrics`) is computed
  from its confusion matrix at each of its seeds and averaged over the seeds ("pooled over seeds").
  Confusion matrices of a chunk of resamples are one matrix product (resample counts x one-hot cells),
  so 10,000 resamples of 40k examples take seconds and memory stays bounded by `chunk`.
- `percentile_ci`: the 95% percentile interval of a bootstrap distribution (of a difference, a gap closed).
- `permutation_p`: the paired approximate-randomization test (Yeh 2000; Dror et al. 2018) of the difference
  of two models' official metric, averaged over seed pairs: each permutation swaps the two models'
  predictions on each example with probability 1/2, **one coin per example shared by every seed pair**
  (the null is that the two methods are exchangeable on an example, whatever the seed), so it tests the
  metric the interval is about (an F1 loss from a threshold shift shows, which a right/wrong test such as
  McNemar's cannot see). For accuracy at one seed it is the randomization form of McNemar's test. An
  independent coin per seed pair would treat S seeds as S independent eval sets: seeds of two students
  disagree on the same examples, so that null is about sqrt(S) too narrow (at 3 seeds, p <= 0.05 in ~20% of
  repeats under a population null; tests/test_stats.py simulates it).
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


def permutation_p(labels, pairs, metric: str, n_classes: int, n_permutations: int = N_RESAMPLES, seed=SEED,
                  chunk: int = CHUNK, pos_label: int = 1) -> float:
    """Two-sided p-value of mean_s[metric(a_s) - metric(b_s)] over the seed pairs `pairs` = [(a_s, b_s)]
    (predicted classes, int [N] each, on the same examples `labels`): the share of random swaps whose mean
    difference is at least as far from 0 as the observed one, counting the observed arrangement
    ((1 + hits) / (1 + n_permutations)). A swap exchanges a_s[i] and b_s[i] for every pair s at once (one
    coin per example i, shared by the seed pairs). Only examples where a_s and b_s differ change a
    confusion matrix. Identical models: 1."""
    if not pairs:
        return math.nan
    labels = np.asarray(labels, dtype=np.int64)
    cells, rng = n_classes ** 2, np.random.default_rng(seed)
    parts = []   # per pair: (confusion of a, confusion of b, discordant examples d, D = onehot(b) - onehot(a) on d)
    for a, b in pairs:
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        conf_a, conf_b = confusion(labels, a, n_classes).ravel(), confusion(labels, b, n_classes).ravel()
        d = np.flatnonzero(a != b)
        diff = np.zeros((len(d), cells), dtype=np.float32)
        diff[np.arange(len(d)), labels[d] * n_classes + b[d]] += 1.0
        diff[np.arange(len(d)), labels[d] * n_classes + a[d]] -= 1.0
        parts.append((conf_a.astype(np.float64), conf_b.astype(np.float64), d, diff))
    shape = (n_classes, n_classes)

    def mean_diff(conf_a, conf_b):   # [..., C*C] each -> the metric difference
        return (metric_from_confusion(conf_a.reshape(*conf_a.shape[:-1], *shape), metric, pos_label)
                - metric_from_confusion(conf_b.reshape(*conf_b.shape[:-1], *shape), metric, pos_label))

    observed = float(np.mean([mean_diff(ca, cb) for ca, cb, _, _ in parts]))
    used = np.unique(np.concatenate([d for _, _, d, _ in parts]))   # examples discordant in some pair
    if not len(used):
        return 1.0
    where = [np.searchsorted(used, d) for _, _, d, _ in parts]       # each pair's discordant examples among them
    hits = 0
    for start in range(0, n_permutations, chunk):
        r = min(chunk, n_permutations - start)
        coins = rng.random((r, len(used))) < 0.5                        # one coin per example, every pair
        total = np.zeros(r)
        for (conf_a, conf_b, _, diff), w in zip(parts, where):
            moved = coins[:, w].astype(np.float32) @ diff                # [r, C*C], exact integers
            total += mean_diff(conf_a + moved, conf_b - moved)
        hits += int(np.sum(np.abs(total / len(parts)) >= abs(observed) - 1e-9))
    return (1 + hits) / (1 + n_permutations)


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
