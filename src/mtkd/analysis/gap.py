"""Selection, multi-teacher advantage and gap closed, from the official metric of each model (in %).

best (selection) = the model of a kind with the highest official metric on VALIDATION (mean over its
                   seeds), ties broken by config order (the manifest's); a model without a validation
                   metric is never selected. The selected model is then reported on eval.
advantage (pp)   = eval metric of the best multi-teacher student - that of the best single-teacher student
verdict          = from the paired bootstrap 95% CI of that difference (analysis/significance.py):
                   "multi-teacher better" if the CI is above 0, "multi-teacher worse" if below 0,
                   "no significant difference" if it contains 0, "n/a" if either kind is missing
gap closed (%)   = 100 * (student - baseline) / (best teacher - baseline), on eval
                   NaN when the baseline or every teacher is missing, or the denominator is 0, or (with
                   the bootstrap of significance.py) its 95% interval is not above 0.
                   A negative value means the student is below the baseline; above 100 it beats
                   the best teacher. (If the baseline beats the best teacher the denominator is
                   negative and the sign of the ratio flips; the table shows it as computed.)
"""
from __future__ import annotations

import math

import numpy as np

SELECTED_ON = "validation"
# students that train exactly as another (the same gradient; only the loss's value differs): one method.
# Where both are present the twin is left out of selection and of the Holm family (its row is kept, marked).
DUPLICATE_OF = {"multi_kl_sum": "multi_prob_average"}
VERDICTS = ("multi-teacher better", "multi-teacher worse", "no significant difference", "n/a")


def best(models):
    """The model with the highest validation metric (first in config order on ties), or None."""
    scored = [m for m in models if not math.isnan(m.val_metric)]
    return max(scored, key=lambda m: m.val_metric) if scored else None   # max keeps the first of equals


def verdict(ci_low: float, ci_high: float) -> str:
    if math.isnan(ci_low) or math.isnan(ci_high):
        return "n/a"
    if ci_low > 0:
        return "multi-teacher better"
    if ci_high < 0:
        return "multi-teacher worse"
    return "no significant difference"


def gap_closed(student, baseline, teacher):
    """100 (student - baseline) / (teacher - baseline); works on floats and on arrays (bootstrap samples)."""
    s, b, t = (np.asarray(x, dtype=np.float64) for x in (student, baseline, teacher))
    denom = t - b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom != 0, 100.0 * (s - b) / np.where(denom != 0, denom, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def duplicate_of(method: str, methods) -> str | None:
    """The method `method` trains exactly as, when that one is among `methods`; else None."""
    twin = DUPLICATE_OF.get(method)
    return twin if twin in set(methods) else None


def distinct(models) -> list:
    """`models` without those that train exactly as another one of them (DUPLICATE_OF)."""
    names = [m.method for m in models]
    return [m for m in models if duplicate_of(m.method, names) is None]


def selection(task) -> dict:
    """The validation-selected models of a task: {"teacher", "baseline", "single", "multi", "student"} -> Model | None.
    A student that trains exactly as another present one (DUPLICATE_OF) is not a candidate."""
    return {"teacher": best(task.teachers), "baseline": best(task.of_type("baseline")),
            "single": best(task.of_type("single")), "multi": best(distinct(task.of_type("multi"))),
            "student": best(distinct(task.of_type("single", "multi")))}


def _named(m) -> dict:
    return {"method": m.method if m else None, "value": _num(m.metric if m else math.nan),
            "validation": _num(m.val_metric if m else math.nan)}


def task_summary(task, sig: dict | None = None) -> dict:
    """Everything the advantage and gap-closed tables and success_metrics.json need for one task;
    `sig` = significance.task_significance(task) (the CIs; without it the verdict is "n/a")."""
    sel = selection(task)
    sig = sig or {}
    nan = math.nan
    metric = lambda m: m.metric if m else nan   # noqa: E731
    base_v, teach_v = metric(sel["baseline"]), metric(sel["teacher"])
    if sig.get("gap_defined") is False:   # the teacher is not above the baseline with a CI above 0: no gap to close
        teach_v = nan
    head = sig.get("headline") or {}
    student_ci = sig.get("gap_ci", {}).get(sel["student"].method if sel["student"] else None, (nan, nan))
    return {
        "metric": task.metric,
        "selected_on": SELECTED_ON,
        "best_multi": _named(sel["multi"]),
        "best_single": _named(sel["single"]),
        "advantage_pp": _num(metric(sel["multi"]) - metric(sel["single"])),
        "advantage_ci_pp": [_num(head.get("ci_low", nan)), _num(head.get("ci_high", nan))],
        "p_value": _num(head.get("p_value", nan)),
        "p_holm": _num(head.get("p_holm", nan)),
        "verdict": verdict(head.get("ci_low", nan), head.get("ci_high", nan)),
        "best_teacher": _named(sel["teacher"]),
        "baseline": _named(sel["baseline"]),
        "best_student": {**_named(sel["student"]),
                         "gap_closed_pct": _num(gap_closed(metric(sel["student"]), base_v, teach_v)),
                         "gap_closed_ci_pct": [_num(student_ci[0]), _num(student_ci[1])]},
        # best teacher - baseline on eval with its CI: gap closed is undefined where the CI is not above 0
        "teacher_minus_baseline_pp": _num(metric(sel["teacher"]) - base_v),
        "teacher_minus_baseline_ci_pp": [_num(x) for x in sig.get("gap_denominator_ci", (nan, nan))],
        "gap_closed_pct": {m.method: _num(gap_closed(m.metric, base_v, teach_v)) for m in task.of_type("single", "multi")},
    }


def success_metrics(tasks, sigs: dict[str, dict] | None = None, average: dict | None = None) -> dict:
    """success_metrics.json: per task summaries (selection on validation, verdicts from the CIs) and averages;
    `average` = significance.significance(...)[1] (the AVG difference with its CI) when there is one."""
    sigs = sigs or {}
    per_task = {t.name: task_summary(t, sigs.get(t.name)) for t in tasks}
    advs = [s["advantage_pp"] for s in per_task.values() if s["advantage_pp"] is not None]
    gaps = [s["best_student"]["gap_closed_pct"] for s in per_task.values()
            if s["best_student"]["gap_closed_pct"] is not None]
    count = lambda v: sum(s["verdict"] == v for s in per_task.values())   # noqa: E731
    return {
        "selected_on": SELECTED_ON,
        "verdict_rule": "paired bootstrap 95% CI of the eval difference (best multi - best single, both selected "
                        "on validation): above 0 = better, below 0 = worse, else no significant difference",
        "tasks": per_task,
        "n_tasks": len(per_task),
        "n_tasks_compared": len(advs),
        "n_multi_better": count("multi-teacher better"),
        "n_multi_worse": count("multi-teacher worse"),
        "n_no_significant_difference": count("no significant difference"),
        "average_advantage_pp": _num(sum(advs) / len(advs)) if advs else None,
        "average_advantage_ci_pp": [_num(average["ci_low"]), _num(average["ci_high"])] if average else None,
        "average_verdict": verdict(average["ci_low"], average["ci_high"]) if average else None,
        "average_gap_closed_by_best_student_pct": _num(sum(gaps) / len(gaps)) if gaps else None,
        "average_gap_closed_ci_pct": [_num(x) for x in average.get("gap_closed_ci_pct", (math.nan, math.nan))]
        if average else None,
    }


def _num(x):
    """JSON-friendly number: None for NaN, rounded to 4 decimals otherwise."""
    return None if x is None or math.isnan(x) else round(float(x), 4)
