"""Multi-teacher advantage and gap closed, from the official metric of each model (in %).

advantage (pp)  = best multi-teacher student - best single-teacher student
verdict         = "multi-teacher better"  if advantage >=  TIE_PP
                  "single-teacher better" if advantage <= -TIE_PP
                  "tie"                   if |advantage| < TIE_PP
                  "n/a"                   if either kind of student is missing
gap closed (%)  = 100 * (student - baseline) / (best teacher - baseline)
                  NaN when the baseline or every teacher is missing, or the denominator is 0.
                  A negative value means the student is below the baseline; above 100 it beats
                  the best teacher. (If the baseline beats the best teacher the denominator is
                  negative and the sign of the ratio flips; the table shows it as computed.)
"""
from __future__ import annotations

import math

import numpy as np

TIE_PP = 0.05   # metrics are reported with 2 decimals: below 0.05 pp is indistinguishable


def best(models):
    """(method, metric) of the model with the highest official metric, or (None, NaN)."""
    scored = [m for m in models if not math.isnan(m.metric)]
    if not scored:
        return None, float("nan")
    top = max(scored, key=lambda m: m.metric)
    return top.method, top.metric


def verdict(advantage: float) -> str:
    if math.isnan(advantage):
        return "n/a"
    if advantage >= TIE_PP:
        return "multi-teacher better"
    if advantage <= -TIE_PP:
        return "single-teacher better"
    return "tie"


def gap_closed(student: float, baseline: float, teacher: float) -> float:
    denom = teacher - baseline
    if math.isnan(denom) or math.isnan(student) or denom == 0:
        return float("nan")
    return 100.0 * (student - baseline) / denom


def task_summary(task) -> dict:
    """Everything the advantage and gap-closed tables and success_metrics.json need for one task."""
    multi, multi_v = best(task.of_type("multi"))
    single, single_v = best(task.of_type("single"))
    teacher, teacher_v = best(task.teachers)
    baseline, baseline_v = best(task.of_type("baseline"))
    adv = multi_v - single_v
    student, student_v = best(task.of_type("single", "multi"))
    return {
        "metric": task.metric,
        "best_multi": {"method": multi, "value": _num(multi_v)},
        "best_single": {"method": single, "value": _num(single_v)},
        "advantage_pp": _num(adv),
        "verdict": verdict(adv),
        "best_teacher": {"method": teacher, "value": _num(teacher_v)},
        "baseline": {"method": baseline, "value": _num(baseline_v)},
        "best_student": {"method": student, "value": _num(student_v),
                         "gap_closed_pct": _num(gap_closed(student_v, baseline_v, teacher_v))},
        "gap_closed_pct": {m.method: _num(gap_closed(m.metric, baseline_v, teacher_v))
                           for m in task.of_type("single", "multi")},
    }


def success_metrics(tasks) -> dict:
    per_task = {t.name: task_summary(t) for t in tasks}
    advs = [s["advantage_pp"] for s in per_task.values() if s["advantage_pp"] is not None]
    gaps = [s["best_student"]["gap_closed_pct"] for s in per_task.values()
            if s["best_student"]["gap_closed_pct"] is not None]
    return {
        "tie_threshold_pp": TIE_PP,
        "tasks": per_task,
        "n_tasks": len(per_task),
        "n_tasks_compared": len(advs),
        "n_multi_better": sum(s["verdict"] == "multi-teacher better" for s in per_task.values()),
        "n_single_better": sum(s["verdict"] == "single-teacher better" for s in per_task.values()),
        "n_ties": sum(s["verdict"] == "tie" for s in per_task.values()),
        "average_advantage_pp": _num(float(np.mean(advs))) if advs else None,
        "average_gap_closed_by_best_student_pct": _num(float(np.mean(gaps))) if gaps else None,
    }


def _num(x: float):
    """JSON-friendly number: None for NaN, rounded to 4 decimals otherwise."""
    return None if x is None or math.isnan(x) else round(float(x), 4)
