"""Cross-fitting (`crossfit: k` on a teacher): honest soft labels on train.

A teacher fitted on train and then asked to label train labels examples it has seen, so its train
logits are over-confident exactly where distillation reads them. With cross-fitting, train is cut
into k folds (stratified by label, seeded); fold j is labelled by a copy of the teacher (same kind,
hyper-parameters and seed) fitted on the other k - 1 folds. Validation and eval are still labelled
by the teacher fitted on all of train. Cost: k more fits (cheap for TF-IDF, k x for HF teachers).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from ..errors import MtkdError
from ..logits import check_array

OUT_OF_FOLD = "train_out_of_fold.npy"   # in the teacher's stage folder


def check_folds(k: int, n_train: int, where: str = "crossfit") -> None:
    if n_train < k:
        raise MtkdError(f"{where}: {k} folds need at least {k} training examples, the task has {n_train}")


def fold_ids(labels: np.ndarray, k: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """int [N]: the fold (0..k-1) of every example, seeded; stratified by label when every class has >= k
    examples. With `groups` (examples that share content, e.g. SST-2 phrases of one sentence) a group
    never spans two folds, so no example is labelled by a copy fitted on its near-duplicates."""
    n = len(labels)
    check_folds(k, n)
    counts = np.bincount(labels)
    stratify = counts[counts > 0].min() >= k
    if groups is not None:
        if len(np.unique(groups)) < k:
            raise MtkdError(f"crossfit: {k} folds need at least {k} groups of examples, the task has {len(np.unique(groups))}")
        splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed) if stratify else GroupKFold(k)
    else:
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed) if stratify else KFold(k, shuffle=True, random_state=seed)
    out = np.empty(n, dtype=np.int64)
    for j, (_, held) in enumerate(splitter.split(np.zeros(n), labels, groups)):
        out[held] = j
    return out


def out_of_fold_logits(make: Callable[[], object], train, validation, k: int, seed: int, num_labels: int,
                       work_dir: Path, name: str, groups: np.ndarray | None = None) -> np.ndarray:
    """float32 [N_train, C]: each fold's logits from a fresh teacher `make()` fitted on the other folds.
    Each copy checkpoints in work_dir/fold<j>, so a killed stage resumes fold by fold."""
    folds = fold_ids(train.labels, k, seed, groups)
    out = np.zeros((len(train), num_labels), dtype=np.float32)
    for j in range(k):
        held, rest = np.flatnonzero(folds == j), np.flatnonzero(folds != j)
        fold_work = Path(work_dir) / f"fold{j}"
        fold_work.mkdir(parents=True, exist_ok=True)
        copy = make().fit(train.subset(rest), validation, fold_work)
        out[held] = check_array(copy.logits([train.texts[i] for i in held]), f"teacher {name} on fold {j}",
                                len(held), num_labels)
    return out
