"""Aligning a teacher's columns to the task's label order by name. A checkpoint or a logits file
names its classes in its own order (MNLI checkpoints often put contradiction first); mtkd permutes
the columns into the task's order, or refuses in one line when the names cannot be matched."""
from __future__ import annotations

import re

from ..errors import MtkdError

GENERIC = re.compile(r"label_?\d+", re.IGNORECASE)   # LABEL_0, LABEL_1, ...: names that say nothing


def _norm(name: str) -> str:
    """Case-insensitive, and '-', '_' and ' ' alike: NOT_ENTAILMENT = not-entailment = not entailment."""
    return re.sub(r"[-_\s]+", "_", str(name).strip().lower())


def column_order(names, task_labels, where: str) -> list[int]:
    """order[j] = the column (index into `names`) holding task label j, so `logits[:, order]` is in
    the task's order. `names` must be the task's labels in some order (matched by _norm)."""
    names, task_labels = [str(n) for n in names], list(task_labels)
    if len(names) != len(task_labels):
        raise MtkdError(f"{where}: {len(names)} classes {names}, the task has {len(task_labels)} {task_labels}")
    index = {}
    for i, n in enumerate(names):
        if _norm(n) in index:
            raise MtkdError(f"{where}: class name '{n}' appears twice in {names}")
        index[_norm(n)] = i
    missing = [t for t in task_labels if _norm(t) not in index]
    if missing:
        raise MtkdError(f"{where}: class names {names} do not match the task's labels {task_labels} "
                        f"(no {', '.join(map(repr, missing))})")
    return [index[_norm(t)] for t in task_labels]


def checkpoint_order(id2label: dict, task_labels, label_order, where: str) -> list[int]:
    """The column order of a fine-tuned checkpoint used as it is. `label_order`: None = by the names in
    its id2label; "as_is" = column i is task label i; a list = the task label of each column."""
    n = len(id2label)
    names = [id2label.get(i, id2label.get(str(i))) for i in range(n)]
    if label_order == "as_is":
        if n != len(task_labels):
            raise MtkdError(f"{where}: the checkpoint has {n} classes, the task has {len(task_labels)} {list(task_labels)}")
        return list(range(n))
    if isinstance(label_order, list):
        return column_order(label_order, task_labels, f"{where} label_order")
    if all(nm is not None and GENERIC.fullmatch(str(nm)) for nm in names):
        raise MtkdError(f"{where}: the checkpoint's labels are generic ({', '.join(map(str, names))}), so their order is "
                        f"unknown; set label_order: as_is if column i is the task's label i ({list(task_labels)}), or "
                        f"label_order: [the task label of each column, in column order]")
    return column_order(names, task_labels, f"{where} (id2label)")
