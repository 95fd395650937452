"""The task's splits carved from what its source gave: eval from train when there is no eval file or split
(`eval_fraction`), the seeded stratified samples `max_eval_examples` and `max_train_examples` (the train rows
left unused are the pool of `transfer_from_train`), then validation from train -- every carve group-aware and
label-stratified (carve.py: content groups stay on one side). Seeded by SPLIT_SEED, not the run seed."""
from __future__ import annotations

import numpy as np

from ..carve import carve, content_groups, overlap_share, stratified_sample
from ..config import TaskConfig
from ..errors import MtkdError
from .data import Split

SPLIT_SEED = 1234   # carves and samples do not move with the run seed


def carve_splits(cfg: TaskConfig, train_split: Split, train_groups, eval_split: Split | None, containment: bool,
                 info: dict) -> tuple[dict[str, Split], list[tuple[str, ...]]]:
    """({train, validation, eval}, the train texts max_train_examples left unused); how each carve went is
    recorded in `info` (eval, validation)."""
    if eval_split is None:   # eval carved from the training file (eval_fraction)
        train_split, eval_split, kept, info["eval"] = carve_split(train_split, train_groups, cfg.eval_fraction, cfg,
                                                                  containment, SPLIT_SEED + 1, "eval")
        train_groups = None if train_groups is None else [train_groups[i] for i in kept]
    if cfg.max_eval_examples and len(eval_split) > cfg.max_eval_examples:
        eval_split = eval_split.subset(stratified_sample(eval_split.labels, cfg.max_eval_examples, SPLIT_SEED))
    unused = []   # train rows max_train_examples did not keep: the pool of transfer_from_train
    if cfg.max_train_examples and len(train_split) > cfg.max_train_examples:
        keep = stratified_sample(train_split.labels, cfg.max_train_examples, SPLIT_SEED)
        unused = [train_split.texts[i] for i in np.setdiff1d(np.arange(len(train_split)), keep)]
        train_split = train_split.subset(keep)
        train_groups = None if train_groups is None else [train_groups[i] for i in keep]
    train_split, val_split, _, info["validation"] = carve_split(train_split, train_groups, cfg.validation_fraction,
                                                                cfg, containment, SPLIT_SEED, "validation")
    return {"train": train_split, "validation": val_split, "eval": eval_split}, unused


def carve_split(split: Split, user_groups, fraction: float, cfg: TaskConfig, containment: bool, seed: int, name: str):
    """(rest, carved, kept indices, stats): `fraction` of `split` carved out, whole content groups only
    (carve.py); `group_by: none` keeps only the user's `group_column` groups."""
    n_out = int(round(len(split) * fraction))
    if len(split) - n_out < 1 or n_out < 1:
        raise MtkdError(f"task '{cfg.name}': {len(split)} training examples are too few to carve a {name} split")
    texts = split.texts if cfg.group_by != "none" else [()] * len(split)
    groups, train_only = content_groups(texts, containment, user_groups)
    kept, out = carve(split.labels, n_out, groups, train_only, seed)
    if len(out) == 0:
        raise MtkdError(f"task '{cfg.name}': no group of examples fits in a {name} split of {n_out}; "
                        f"set group_by: exact or none, or check group_column")
    rest, carved = split.subset(kept), split.subset(out)
    rest.groups = groups[kept]
    stats = {"n": len(out), "wanted": n_out, "groups": int(len(np.unique(groups))), "train_only": int(train_only.sum()),
             "group_by": cfg.group_by, "group_column": cfg.group_column,
             "overlap_with_train": overlap_share(carved.texts, rest.texts)}
    return rest, carved, kept, stats
