"""`load_task(cfg)`: a task's settings walked once through its source (sources.py), its labels and metric,
the carves (carving.py) and the transfer and extra eval sets (transfer.py), into a TaskData (data.py):
`train`, `validation` (carved from train: for everything fitted besides the student) and `eval` (GLUE dev,
an eval file or split, or carved from train: reported, never fitted on)."""
from __future__ import annotations

from ..config import TaskConfig
from ..errors import MtkdError
from .carving import carve_splits
from .data import TaskData
from .sources import TaskSpec, read_source, resolve_source, spec_for, to_split
from .transfer import extra_eval_set, transfer_set


def load_task(cfg: TaskConfig) -> TaskData:
    source = resolve_source(cfg)
    spec = spec_for(cfg, source)
    where = f"task '{cfg.name}'"
    label_names, declared, train, evals = read_source(cfg, source, spec)
    if not label_names:   # inferred from the training labels: numeric order for integers, else sorted
        seen = sorted({y for y in train.labels if y != ""})
        label_names = sorted(seen, key=int) if all(y.lstrip("-").isdigit() for y in seen) else seen
    if len(label_names) < 2:
        raise MtkdError(f"{where}: need at least 2 classes, found {label_names}")
    metric = cfg.metric or (spec.metric if spec else "accuracy")
    pos_label = _pos_label(cfg, spec, label_names, declared, metric)
    train_split = to_split(train, label_names)
    containment = cfg.group_by == "auto" and train_split.texts and len(train_split.texts[0]) == 1
    info: dict = {"source": source, "dropped_rows": {"train": train.dropped, "eval": evals.dropped if evals else 0}}
    splits, unused = carve_splits(cfg, train_split, train.groups, None if evals is None else to_split(evals, label_names),
                                  containment, info)
    extra = {e.name: extra_eval_set(cfg, e, label_names) for e in cfg.extra_eval or []}
    transfer = None
    if cfg.transfer_file or cfg.transfer_from_train:   # nothing any scored split holds may be distilled
        held_out = [*splits["validation"].texts, *splits["eval"].texts, *(t for x in extra.values() for t in x.texts)]
        transfer, info["transfer"] = transfer_set(cfg, unused, held_out, splits["train"].texts, bool(containment))
    if extra:
        info["extra_eval"] = {k: {"n": len(v), "file": e.file} for (k, v), e in zip(extra.items(), cfg.extra_eval)}
    return TaskData(cfg.name, tuple(label_names), metric, splits, pos_label, info, transfer, extra)


def _pos_label(cfg: TaskConfig, spec: TaskSpec | None, names: list[str], declared: bool, metric: str) -> int:
    """The class binary F1 scores: `pos_label`, else GLUE's (class 1), else the second of label_names as
    given (or as the dataset declares them). Inferred names are refused when F1 is the official metric."""
    if cfg.pos_label is not None:
        if len(names) != 2:
            raise MtkdError(f"task '{cfg.name}': pos_label applies to binary tasks; this one has {len(names)} classes "
                            f"(multi-class F1 is macro-averaged)")
        if cfg.pos_label not in names:
            raise MtkdError(f"task '{cfg.name}': pos_label '{cfg.pos_label}' is not a label; labels: {', '.join(names)}")
        return names.index(cfg.pos_label)
    if len(names) == 2 and metric == "f1" and not declared and names != ["0", "1"]:
        raise MtkdError(f"task '{cfg.name}': binary F1 needs its positive class: set pos_label "
                        f"(one of {', '.join(names)}) or label_names in order (the second is positive)")
    return 1
