"""What the run warns about once the teachers' logits are stored (one line each, on stderr and in
RUN/log.txt; nothing is refused): a teacher at chance on validation (a diverged fine-tuning), train logits
that are in-sample or of unknown provenance, and a validation metric far above eval (trained on validation?)."""
from __future__ import annotations

import math

import numpy as np

from ..tasks import TaskData, compute_metrics
from ..teachers import train_logits_provenance
from .context import RunContext
from .logits import teacher_logits
from .teachers import for_task

CHANCE_MARGIN = 1.0   # points: a teacher within this of the best constant prediction is flagged


def flag_teachers(run: RunContext, task: TaskData) -> None:
    """Every warning about the teachers of `task`: at chance (each seed's teacher), provenance and the
    validation gap (the run seed's)."""
    for view in run.views()[1]:
        for t in run.cfg.teachers:
            flag_chance_teacher(view, task, t)
    for t in run.cfg.teachers:   # once per teacher and task (the run seed's teacher)
        flag_in_sample_teacher(run, task, t)


def flag_chance_teacher(run: RunContext, task: TaskData, t) -> None:
    """One warning line when a teacher's official metric on validation is no better than always
    predicting one class (a diverged fine-tuning: its soft labels would only add noise)."""
    val = task.splits["validation"]
    score = compute_metrics(val.labels, teacher_logits(run, task, [t.name], "validation")[0].argmax(1),
                            task.num_labels, task.pos_label)[task.metric]
    chance, label = chance_level(val.labels, task.num_labels, task.metric, task.pos_label)
    if score <= chance + CHANCE_MARGIN:
        run.warn(f"teacher {run.teacher_folder(t)} on {task.name} is at chance on validation ({task.metric} "
                 f"{score:.2f}; always predicting '{task.label_names[label]}' gives {chance:.2f}): it probably "
                 f"did not learn (diverged?); check its lr, epochs and data")


def flag_in_sample_teacher(run: RunContext, task: TaskData, t) -> None:
    """One warning line when a teacher's train logits are in-sample (it labels rows it was fitted on, so
    its soft labels on train are over-confident; `crossfit: k` makes them out-of-fold) or of unknown
    provenance (a checkpoint or score files made elsewhere); one more when its validation metric is far
    above its eval metric (validation_gap_threshold): it may have been trained on the validation rows."""
    where = train_logits_provenance(for_task(task, t))
    if where == "in-sample":
        run.warn(f"teacher {t.name} on {task.name}: its train logits are in-sample (it labels the rows it was "
                 f"fitted on); set crossfit: k for out-of-fold soft labels")
    elif where == "unknown":
        run.warn(f"teacher {t.name} on {task.name}: its train logits come from a model trained elsewhere; if it "
                 f"saw this train split (or the validation carved from it) its soft labels and validation "
                 f"scores are in-sample")
    val, ev = task.splits["validation"], task.splits["eval"]
    score = {split: compute_metrics(sp.labels, teacher_logits(run, task, [t.name], split)[0].argmax(1),
                                    task.num_labels, task.pos_label)[task.metric] for split, sp in
             (("validation", val), ("eval", ev))}
    gap = score["validation"] - score["eval"]
    if gap > validation_gap_threshold(score["eval"], len(val), len(ev)):
        run.warn(f"teacher {t.name} on {task.name}: validation {task.metric} {score['validation']:.2f} is "
                 f"{gap:.2f} points above eval ({score['eval']:.2f}): it may have been trained on the "
                 f"validation rows (a checkpoint fine-tuned on the whole train split?)")


def validation_gap_threshold(eval_score: float, n_validation: int, n_eval: int) -> float:
    """Points by which a teacher's validation metric may exceed its eval metric before it is flagged:
    max(5, 3 standard errors of the difference of two independent proportions at the eval score). A teacher
    that saw the validation rows typically scores near-perfectly there; an honest one differs from eval only
    by sampling noise (about 1 se) and a mild shift between the carve and the eval split."""
    p = min(max(eval_score / 100.0, 0.01), 0.99)
    se = 100.0 * math.sqrt(p * (1 - p) * (1 / max(n_validation, 1) + 1 / max(n_eval, 1)))
    return max(5.0, 3.0 * se)


def chance_level(labels: np.ndarray, num_labels: int, metric: str, pos_label: int = 1) -> tuple[float, int]:
    """(the best `metric` a constant prediction gets on `labels`, that class): accuracy of the majority
    class, F1 of always predicting the positive class, Matthews 0."""
    scores = [compute_metrics(labels, np.full(len(labels), c), num_labels, pos_label)[metric] for c in range(num_labels)]
    return max(scores), int(np.argmax(scores))
