"""The sets a task has besides its splits: the transfer set (unlabelled text the teachers label for the
students' KD term: a file, or train rows max_train_examples left unused), cleaned of every text that carries
held-out content, and the extra eval sets (labelled files every model is also scored on)."""
from __future__ import annotations

import numpy as np

from ..carve import held_out_content
from ..config import ExtraEvalConfig, TaskConfig
from ..errors import MtkdError
from ..readers import read_table
from .carving import SPLIT_SEED
from .data import Split
from .sources import rows_from, label_column, text_columns, to_split


def transfer_set(cfg: TaskConfig, unused: list[tuple[str, ...]], held_out: list[tuple[str, ...]], train, containment: bool):
    """(transfer Split with labels -1, its record). From `transfer_file` (text columns only), or a seeded
    sample of `transfer_from_train` of the `unused` train rows. Texts that carry validation, eval or extra eval content
    (equal to one; with containment also containing one, or inside one and in no train text: see
    carve.held_out_content) are dropped first, so no held-out content is distilled."""
    where = f"task '{cfg.name}'"
    if cfg.transfer_file:
        columns = text_columns(cfg)
        table = read_table(cfg.transfer_file, columns, cfg.header, cfg.columns)
        texts = rows_from(table.columns, columns, None, None, str(cfg.transfer_file)).texts
        source = {"source": "file", "file": cfg.transfer_file, "dropped_rows": len(table.dropped)}
    else:
        texts, source = unused, {"source": "train", "unused_train_rows": len(unused)}
    leaks = held_out_content(texts, held_out, train, containment) if cfg.group_by != "none" else np.zeros(len(texts), bool)
    clean = [t for t, leak in zip(texts, leaks) if not leak]
    if cfg.transfer_from_train:
        n = cfg.transfer_from_train
        if not unused:
            raise MtkdError(f"{where}: transfer_from_train takes train rows max_train_examples left unused, and "
                            f"it left none; set max_train_examples below the train source's size")
        if n > len(clean):
            raise MtkdError(f"{where}: transfer_from_train: {n} exceeds the {len(clean)} train rows left unused by "
                            f"max_train_examples ({len(unused)} unused, {int(leaks.sum())} of them sharing content with "
                            f"validation/eval/extra eval sets)")
        clean = [clean[i] for i in np.sort(np.random.default_rng(SPLIT_SEED + 2).choice(len(clean), n, replace=False))]
    if not clean:
        raise MtkdError(f"{where}: every transfer text shares content with validation/eval/extra eval sets "
                        f"(carve.held_out_content); "
                        f"nothing is left")
    record = {**source, "n": len(clean), "dropped_overlap": int(leaks.sum())}
    return Split(clean, np.full(len(clean), -1, dtype=np.int64)), record


def extra_eval_set(cfg: TaskConfig, e: ExtraEvalConfig, label_names) -> Split:
    """An extra eval set: read as task files are, labels mapped to the task's label names (or refused)."""
    columns, task_columns = list(e.text_columns or text_columns(cfg)), text_columns(cfg)
    if len(columns) != len(task_columns):
        raise MtkdError(f"task '{cfg.name}': extra eval set '{e.name}' has {len(columns)} text column(s) "
                        f"{columns}, the task {len(task_columns)} {task_columns}")
    label = e.label_column or label_column(cfg)
    table = read_table(e.file, [*columns, label], e.header, e.columns)
    return to_split(rows_from(table.columns, columns, label, None, f"extra eval set '{e.name}' ({e.file})"), list(label_names))
