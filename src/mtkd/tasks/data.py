"""A loaded task: its splits (texts, labels, content groups), their fingerprints, and its metrics -- what
every stage reads. Built by load.py; data flows one way: config -> tasks (the config never reads this)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

METRIC_SHORT = {"accuracy": "acc", "f1": "f1", "matthews": "mcc"}


@dataclass
class Split:
    texts: list[tuple[str, ...]]       # one tuple per example: (sentence,) or (sentence_a, sentence_b)
    labels: np.ndarray                 # int64 [N]
    groups: np.ndarray | None = None   # int64 [N]: content groups (train split; see carve.py), for crossfit folds

    def __len__(self):
        return len(self.texts)

    def subset(self, idx) -> "Split":
        idx = np.asarray(idx, dtype=np.int64)
        return Split([self.texts[i] for i in idx], self.labels[idx], None if self.groups is None else self.groups[idx])

    def fingerprint(self, label_names) -> str:
        """sha256 of the texts and labels in order, and of the label names."""
        h = hashlib.sha256(json.dumps(list(label_names)).encode())
        for text, label in zip(self.texts, self.labels.tolist()):
            h.update(json.dumps([list(text), label], ensure_ascii=False).encode())
        return h.hexdigest()


@dataclass
class TaskData:
    name: str
    label_names: tuple[str, ...]
    metric: str
    splits: dict[str, Split]           # train, validation, eval
    pos_label: int = 1                 # binary F1 scores this class
    info: dict = field(default_factory=dict)   # how the splits were made (recorded by the data stage)
    transfer: Split | None = None      # unlabelled text (labels -1) the teachers label for KD only
    extra: dict[str, Split] = field(default_factory=dict)   # extra labelled eval sets, by name

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def metric_columns(self) -> list[str]:
        cols = [f"{self.name}_{METRIC_SHORT[self.metric]}"]
        return cols + ([f"{self.name}_acc"] if self.metric != "accuracy" else [])

    def fingerprints(self) -> dict[str, str]:
        """Per split, computed once (the splits are never mutated after loading)."""
        if getattr(self, "_fingerprints", None) is None:
            self._fingerprints = {k: s.fingerprint(self.label_names) for k, s in self.splits.items()}
        return dict(self._fingerprints)

    def teacher_splits(self) -> dict[str, Split]:
        """Every split the teachers label: train, validation, eval, then transfer and the extra eval sets
        when the task has them."""
        return {**self.splits, **({"transfer": self.transfer} if self.transfer is not None else {}), **self.extra}

    def all_fingerprints(self) -> dict[str, str]:
        """fingerprints() and those of the transfer and extra eval sets (keys only a task with them has)."""
        if getattr(self, "_more", None) is None:
            self._more = {k: s.fingerprint(self.label_names) for k, s in self.teacher_splits().items()
                          if k not in self.splits}
        return {**self.fingerprints(), **self._more}


def compute_metrics(labels, preds, num_labels: int, pos_label: int = 1) -> dict[str, float]:
    """accuracy, F1 (binary: of class `pos_label`, the task's `TaskData.pos_label`; multi-class: macro)
    and Matthews correlation, in %."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    f1 = (dict(average="binary", pos_label=pos_label, labels=[0, 1]) if num_labels == 2 else dict(average="macro"))
    return {
        "accuracy": 100 * float(accuracy_score(labels, preds)),
        "f1": 100 * float(f1_score(labels, preds, zero_division=0, **f1)),
        "matthews": 100 * float(matthews_corrcoef(labels, preds)),
    }


def table_values(task: TaskData, metrics: dict) -> dict[str, float]:
    """The master-table columns of this task for one model's metrics."""
    out = {f"{task.name}_{METRIC_SHORT[task.metric]}": metrics[task.metric]}
    if task.metric != "accuracy":
        out[f"{task.name}_acc"] = metrics["accuracy"]
    return out
