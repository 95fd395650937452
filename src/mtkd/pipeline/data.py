"""Stage `RUN/<task>/data`: the task's splits as the run sees them.

Reads: the loaded task (tasks.load_task: train, validation, eval, and the transfer and extra eval sets).
Keyed on: the label names, metric, positive class, every split's fingerprint and how validation was grouped.
Writes: `<split>.jsonl` (text and label; -1 on the transfer set) per split; records each split's size and
fingerprint and how the splits were carved (dropped rows, groups, validation's overlap with train)."""
from __future__ import annotations

import json

from ..io import atomic_write_text
from ..tasks import TaskData
from .context import RunContext


def key(task: TaskData) -> dict:
    return {"task": task.name, "label_names": task.label_names, "metric": task.metric, "pos_label": task.pos_label,
            "fingerprints": task.all_fingerprints(),
            "grouping": {k: task.info["validation"][k] for k in ("group_by", "group_column")}}


def build(task: TaskData, tmp) -> dict:
    splits = task.teacher_splits()   # transfer: label -1
    for name, s in splits.items():
        lines = (json.dumps({"text": list(t), "label": int(y)}, ensure_ascii=False) for t, y in zip(s.texts, s.labels))
        atomic_write_text(tmp / f"{name}.jsonl", "\n".join(lines) + "\n")
    fingerprints = task.all_fingerprints()
    return {"label_names": list(task.label_names), "metric": task.metric, "pos_label": task.pos_label,
            "splits": {k: {"n": len(v), "fingerprint": fingerprints[k]} for k, v in splits.items()},
            "carve": task.info}   # how the splits were made: dropped rows, groups, validation overlap with train


def stage(run: RunContext, task: TaskData) -> dict:
    return run.stage(run.out / task.name / "data", key(task), lambda tmp, work: build(task, tmp), collective=False)
