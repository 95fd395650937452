"""The best student against what it replaces: the best teacher and the teachers' ensemble.

Per task, three models each selected on validation and compared on eval: the best student (every student,
single- or multi-teacher or none), the best teacher, and the teacher ensemble the headroom table selects
(analysis/headroom.py: logit average, probability average, validation-weighted or majority vote, the one best on
validation). The differences student − teacher and student − ensemble come with a paired bootstrap 95% CI over
eval examples (stats.bootstrap_metrics: the same resamples for all three; the student's seeds pooled, the
teachers' run-seed predictions). "At or above" a reference means the CI does not lie below 0.
"""
from __future__ import annotations

import math
import zlib

import numpy as np

from . import gap, headroom, stats

COLUMNS = ["task", "metric", "best student", "student (%)", "best teacher", "teacher (%)", "student − teacher (pp)",
           "ci_low", "ci_high", "ensemble", "ensemble (%)", "student − ensemble (pp)", "ens ci_low", "ens ci_high",
           "reading"]


def reading(d_teacher: tuple[float, float, float], d_ens: tuple[float, float, float] | None) -> str:
    def side(d, what):
        diff, lo, hi = d
        if math.isnan(lo):
            return f"{what}: n/a"
        return f"{'above' if lo > 0 else 'below' if hi < 0 else 'level with'} {what}"
    return side(d_teacher, "the best teacher") + ("" if d_ens is None else "; " + side(d_ens, "the ensemble"))


def task_row(t, room: dict | None, n_resamples: int = stats.N_RESAMPLES) -> dict | None:
    """One row (COLUMNS as keys) of a TaskEval; None without a student or a teacher selected on validation.
    `room`: headroom.from_task(t) (its headline ensemble), or None (fewer than two teachers)."""
    student, teacher = gap.best(t.students), gap.best(t.teachers)
    if student is None or teacher is None:
        return None
    n_classes = len(t.label_names)
    preds = {"student": student.seed_preds(), "teacher": teacher.logits.argmax(-1)[None, :]}
    ens_name = None
    if room is not None:
        ens_name = room["headline"]["model"]
        members = [m for m in t.teachers if m.val_logits is not None]
        val_scores = [headroom.score(t.val_labels, m.val_logits.argmax(-1), t.metric, n_classes, t.pos_label)
                      for m in members]
        z = np.stack([np.asarray(m.logits, dtype=np.float64) for m in members])
        preds["ensemble"] = headroom.ensemble_preds(z, np.array(val_scores))[ens_name][None, :]
    boot = stats.bootstrap_metrics(t.labels, preds, t.metric, n_classes, n_resamples,
                                   seed=[stats.SEED, zlib.crc32(f"{t.name}/versus".encode())], pos_label=t.pos_label)
    value = {k: float(np.mean([headroom.score(t.labels, p, t.metric, n_classes, t.pos_label) for p in v]))
             for k, v in preds.items()}

    def diff(ref):
        return (value["student"] - value[ref], *stats.percentile_ci(boot["student"] - boot[ref]))

    d_t = diff("teacher")
    d_e = diff("ensemble") if ens_name else None
    nan3 = (math.nan, math.nan, math.nan)
    return dict(zip(COLUMNS, [t.name, t.metric, student.method, value["student"], teacher.method, value["teacher"],
                              *d_t, ens_name, value.get("ensemble", math.nan), *(d_e or nan3), reading(d_t, d_e)]))
