"""Worst slices: where each model is weakest, and how every student does where a teacher is weakest
("beat the teachers at their worst").

A slice is a subset of a task's labelled examples, of one of three kinds:
  class             the examples of one gold class (accuracy there = the class's recall)
  agreement region  all agree / partial disagree / full disagree of the teachers' argmax predictions
                    (agreement.regions), on each split from that split's teacher predictions (run seed);
                    only with two teachers or more
  extra set         one extra labelled eval set of the task (the eval manifest's "extra_eval")
Every slice is scored by accuracy (%) on its examples — F1 and Matthews are degenerate on the examples
of one class — so slices of every kind are on one scale.

worst slice of a kind  the non-empty slice with the lowest accuracy on VALIDATION (the run seed's
                       validation logits; ties: the first class, the first region of REGIONS), reported
                       on EVAL: accuracy on the same slice of eval, the mean over the model's seeds.
                       Extra sets have no validation split: the worst is the set with the lowest accuracy
                       on the sets themselves (run seed; ties: manifest order), selected_on says so.
                       A model without validation logits has no worst class or region.
a teacher's worst      of its worst slices of each kind, the one with the lowest selection score
                       (validation accuracy for a class or region, the set's accuracy for an extra set;
                       ties: the kind order above).
student at the slice   a student's accuracy on the teacher's slice minus the teacher's (pp), with a paired
                       bootstrap 95% interval over the slice's examples (stats.bootstrap_metrics: the same
                       resamples for both, each model's accuracy averaged over its seeds).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from mtkd.analysis import agreement, gap, stats
from mtkd.tables import Table, cell

CLASS, REGION, EXTRA = "class", "agreement region", "extra set"
KINDS = (CLASS, REGION, EXTRA)
NO_VALIDATION = "extra set (no validation)"


@dataclass
class Slice:
    kind: str
    name: str                   # class label, region name or extra set name
    selected_on: str            # gap.SELECTED_ON (validation) or NO_VALIDATION
    score: float                # accuracy (%) where it was selected: validation, or the extra set itself
    labels: np.ndarray          # gold labels of the examples it is reported on (the eval slice, or the set)
    where: np.ndarray | None    # bool [N_eval] for a class or region; None for an extra set (all its examples)

    def preds(self, model) -> np.ndarray | None:
        """The model's predicted classes on the reported examples, int [S, n] (None: no logits on the set)."""
        if self.kind == EXTRA:
            logits = model.extra_logits.get(self.name)
            return None if logits is None else logits.argmax(axis=1)[None, :]
        return model.seed_preds()[:, self.where]

    def accuracy(self, model) -> float:
        """Accuracy (%) of `model` on the reported examples, mean over its seeds (NaN: empty or no logits)."""
        p = self.preds(model)
        return np.nan if p is None or not len(self.labels) else 100.0 * float((p == self.labels).mean())


def groups(task, kind: str, split: str) -> list[tuple[str, np.ndarray]]:
    """(slice name, bool mask over the split's examples) of every class or agreement region of `split`
    (validation or eval); [] when the split's labels, or (regions) two teachers' logits, are missing."""
    labels = task.val_labels if split == "validation" else task.labels
    if labels is None:
        return []
    if kind == CLASS:
        return [(name, labels == c) for c, name in enumerate(task.label_names)]
    logits = [m.val_logits if split == "validation" else m.logits for m in task.teachers]
    if len(logits) < 2 or any(lg is None for lg in logits):
        return []
    region = agreement.regions(np.stack([lg.argmax(axis=1) for lg in logits]))
    return [(name, region == r) for r, name in enumerate(agreement.REGIONS)]


def worst(task, model, kind: str) -> Slice | None:
    """The model's worst slice of `kind` (module docstring), or None when it has none."""
    if kind == EXTRA:
        sets = [(s, 100.0 * float((model.extra_logits[s].argmax(axis=1) == y).mean()))
                for s, y in task.extra_labels.items() if s in model.extra_logits and len(y)]
        if not sets:
            return None
        name, score = min(sets, key=lambda x: x[1])   # min keeps the first of equals
        return Slice(EXTRA, name, NO_VALIDATION, score, task.extra_labels[name], None)
    if model.val_logits is None:
        return None
    pred = model.val_logits.argmax(axis=1)
    scored = [(name, 100.0 * float((pred[mask] == task.val_labels[mask]).mean()))
              for name, mask in groups(task, kind, "validation") if mask.any()]
    if not scored:
        return None
    name, score = min(scored, key=lambda x: x[1])
    where = dict(groups(task, kind, "eval"))[name]
    return Slice(kind, name, gap.SELECTED_ON, score, task.labels[where], where)


def worst_of_teacher(task, teacher) -> tuple[list[Slice], Slice | None]:
    """The teacher's worst slice of every kind it has, and the lowest of them by selection score."""
    found = [s for s in (worst(task, teacher, k) for k in KINDS) if s is not None]
    return found, (min(found, key=lambda s: s.score) if found else None)


def worst_slices_table(tasks) -> Table:
    """One row per model (teachers and students): overall eval accuracy, then its worst class and worst
    agreement region (validation accuracy that selected it, eval accuracy), and its worst extra set when
    any task has extra eval sets."""
    extra = any(t.extra_labels for t in tasks)
    columns = ["task", "model", "type", "acc (%)", "worst class", "class val (%)", "class eval (%)",
               "worst region", "region val (%)", "region eval (%)"] + (["worst extra set", "extra set acc (%)"] if extra else [])
    rows = []
    for t in tasks:
        for m in t.models:
            row = [t.name, m.method, m.type, cell(100.0 * float((m.seed_preds() == t.labels).mean()))]
            for kind in KINDS[:2]:
                s = worst(t, m, kind)
                row += [cell(s.name), cell(s.score), cell(s.accuracy(m))] if s else [cell(None)] * 3
            if extra:
                s = worst(t, m, EXTRA)
                row += [cell(s.name), cell(s.score)] if s else [cell(None)] * 2
            rows.append(row)
    return Table(columns, rows)


TEACHER_WORST_COLUMNS = ["task", "teacher", "kind", "slice", "selected_on", "teacher's worst", "teacher selection acc (%)",
                         "examples", "teacher acc (%)", "student", "type", "student acc (%)", "diff (pp)", "ci_low", "ci_high"]


def teacher_worst_table(tasks, n_resamples: int = stats.N_RESAMPLES) -> Table:
    """Per teacher, its worst slice of each kind (the lowest of them marked "yes" in "teacher's worst"),
    and every student there: accuracy on the slice's reported examples, difference to the teacher and its
    paired bootstrap 95% interval over those examples."""
    rows = []
    for t in tasks:
        for teacher in t.teachers:
            found, lowest = worst_of_teacher(t, teacher)
            for s in found:
                preds = {m.method: p for m in (teacher, *t.students) if (p := s.preds(m)) is not None}
                boot = stats.bootstrap_metrics(s.labels, preds, "accuracy", len(t.label_names), n_resamples,
                                               seed=[stats.SEED, zlib.crc32(t.name.encode()),
                                                     zlib.crc32(f"{teacher.method}/{s.kind}".encode())]) \
                    if len(s.labels) else {}
                mine = s.accuracy(teacher)
                for m in t.students:
                    low, high = stats.percentile_ci(boot[m.method] - boot[teacher.method]) if m.method in boot \
                        else (np.nan, np.nan)
                    rows.append([t.name, teacher.method, s.kind, s.name, s.selected_on, "yes" if s is lowest else "no",
                                 cell(s.score), str(len(s.labels)), cell(mine), m.method, m.type, cell(s.accuracy(m)),
                                 cell(s.accuracy(m) - mine), cell(low), cell(high)])
    return Table(TEACHER_WORST_COLUMNS, rows)
