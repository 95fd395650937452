"""`mtkd seeds`: the sweep over `seed`, summarised across seeds -- per task and method the mean, std and a 95%
t-interval, the worst seed and the churn between seeds (analysis.stability), and the paired difference best
multi - best single, seed by seed (seed_summary.csv/.md)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..analysis.stability import stability
from ..tables import Table, cell
from ..tasks import TaskData
from .execute import Result
from .outputs import best_of_type, methods_of
from .plan import Sweep


def t_critical(df: int) -> float:
    """t(0.975, df): the two-sided 95% quantile of Student's t (scipy comes with scikit-learn)."""
    from scipy import stats
    return float(stats.t.ppf(0.975, df))


@dataclass
class Interval:
    n: int
    mean: float
    std: float          # sample std (n - 1); NaN when n < 2
    low: float          # mean ± t(0.975, n-1) · std / sqrt(n); NaN when n < 2
    high: float


def t_interval(values) -> Interval:
    x = np.asarray(values, dtype=float)
    n, mean = len(x), float(np.mean(x)) if len(x) else math.nan
    if n < 2:
        return Interval(n, mean, math.nan, math.nan, math.nan)
    std = float(np.std(x, ddof=1))
    half = t_critical(n - 1) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)


STEADINESS = ["worst", "worst_seed", "churn", "churn_ci95_low", "churn_ci95_high"]


def seed_summary(tasks: list[TaskData], results: list[Result]) -> tuple[Table, list[str]]:
    """Per task (and AVG over tasks when there are several) and method: mean, std, n, 95% t-interval of the
    official metric across seeds, the worst seed, and prediction churn between seeds (analysis.stability;
    per task only); then the paired difference best multi − best single (both selected on validation: the
    highest mean validation metric across seeds), seed by seed."""
    header = ["task", "method", "type", "n", "mean", "std", "ci95_low", "ci95_high", *STEADINESS, "share_multi_wins", "ties"]
    rows, sentences = [], []
    scopes = [t.name for t in tasks] + (["AVG"] if len(tasks) > 1 else [])
    for scope in scopes:
        score = (lambda r: r.avg) if scope == "AVG" else (lambda r, s=scope: r.official[s])   # reported: eval
        for method, type_ in methods_of(results):
            mine = [r for r in results if r.method == method]
            iv = t_interval([score(r) for r in mine])
            seed_of = lambda r: r.point.values[0] if len(r.point.values) == 1 else r.point.folder
            st = stability({seed_of(r): score(r) for r in mine},
                           None if scope == "AVG" else {seed_of(r): r.preds[scope] for r in mine if scope in r.preds})
            rows.append([scope, method, type_, str(iv.n), *(cell(v) for v in (iv.mean, iv.std, iv.low, iv.high)),
                         cell(st.worst), str(st.worst_seed), *(cell(v) for v in (st.churn, st.churn_low, st.churn_high)),
                         "", ""])
        multi = best_of_type(results, "multi", None if scope == "AVG" else scope)
        single = best_of_type(results, "single", None if scope == "AVG" else scope)
        if not (multi and single):
            continue
        by_point = {}
        for r in results:
            if r.method in (multi, single):
                by_point.setdefault(r.point.folder, {})[r.method] = score(r)
        diffs = [v[multi] - v[single] for v in by_point.values() if len(v) == 2]
        iv = t_interval(diffs)
        wins, ties = sum(d > 0 for d in diffs), sum(d == 0 for d in diffs)
        rows.append([scope, f"{multi} - {single}", "paired_difference", str(iv.n),
                     *(cell(v) for v in (iv.mean, iv.std, iv.low, iv.high)), *[""] * len(STEADINESS),
                     cell(wins / len(diffs)), str(ties)])
        sentences.append(f"- **{scope}**: best multi ({multi}) − best single ({single}) = {iv.mean:+.2f} pp, "
                         f"95% CI [{cell(iv.low)}, {cell(iv.high)}] over {iv.n} seeds; multi better on {wins}/{iv.n} "
                         f"seeds, tied on {ties}.")
    return Table(header, rows), sentences


def seed_markdown(sweep: Sweep, table: Table, sentences: list[str]) -> str:
    seeds = ", ".join(p.values[0] for p in sweep.points)
    n = 8 + len(STEADINESS)
    method_rows = Table(table.columns[:n], [r[:n] for r in table.rows if r[2] != "paired_difference"])
    drop = {2, *range(8, n)}   # type and the steadiness columns
    paired = Table([c for i, c in enumerate(table.columns) if i not in drop],
                   [[c for i, c in enumerate(r) if i not in drop] for r in table.rows if r[2] == "paired_difference"])
    lines = [f"# Across seeds: `{sweep.folder.name}`", "",
             f"Seeds {seeds}; teachers and their logits are the base run's (seed "
             f"{sweep.base.seed}) at every seed, so the spread is the students' alone. Metric: each task's official "
             "metric on eval (%). std is the sample standard deviation; the interval is mean ± t(0.975, n−1)·std/√n. "
             "worst: the lowest seed (worst_seed). churn: % of eval examples whose predicted label differs between "
             "two seeds, averaged over every pair of seeds, with a 95% bootstrap interval over eval examples.",
             "", method_rows.to_markdown().rstrip(), "",
             "## Best multi-teacher − best single-teacher student, paired by seed", "",
             "Best = the method of that type with the highest mean validation metric across seeds (selected on "
             "validation, for both sides; first in config order on ties), compared on eval. A win is a strictly "
             "higher eval metric at the same seed.", ""]
    if paired.rows:
        lines += [paired.to_markdown().rstrip(), "", *sentences]
    else:
        lines.append("No comparison: the sweep has no multi-teacher or no single-teacher student.")
    return "\n".join(lines) + "\n"
