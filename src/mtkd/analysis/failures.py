"""Why a student is wrong: every student error falls in exactly one category.

For an example the student gets wrong (student argmax != label):
  "all teachers wrong"     every teacher's argmax is wrong (whether or not they agree)
  "transfer failure"       every teacher is right (so they agree): the knowledge was there
                           and the student did not learn it
  "error on disagreement"  otherwise: the teachers disagree and at least one is right; the
                           student followed a wrong teacher or a label no teacher chose
With one teacher only the first two categories occur. We also count the opposite event,
"fixed all-wrong": the student is right where every teacher is wrong.
"""
from __future__ import annotations

import numpy as np

CATEGORIES = ("all teachers wrong", "transfer failure", "error on disagreement")


def categorize(student_pred: np.ndarray, teacher_preds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Category index per example (-1 where the student is right), int [N]."""
    right = np.asarray(teacher_preds) == labels[None, :]          # [K, N]
    out = np.full(labels.shape, 2)
    out[~right.any(axis=0)] = 0
    out[right.all(axis=0)] = 1
    out[student_pred == labels] = -1
    return out


def failure_counts(student_pred: np.ndarray, teacher_preds: np.ndarray, labels: np.ndarray) -> dict:
    """{'errors': n, <category>: n for each category, 'fixed all-wrong': n}."""
    cat = categorize(student_pred, teacher_preds, labels)
    all_wrong = ~(np.asarray(teacher_preds) == labels[None, :]).any(axis=0)
    out = {"errors": int((cat >= 0).sum())}
    out.update({name: int((cat == i).sum()) for i, name in enumerate(CATEGORIES)})
    out["fixed all-wrong"] = int((all_wrong & (student_pred == labels)).sum())
    return out
