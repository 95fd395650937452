"""Task registry and loaders. A task knows its text columns, label names (in GLUE's order), official
metric and positive class; loading gives three splits: `train`, `validation` (carved from train,
group-aware: see carve.py; for everything fitted besides the student) and `eval` (GLUE dev, an eval
file or split, or carved from train with `eval_fraction`: reported, never fitted on). Sources: the
built-in demo, Hugging Face `datasets` (GLUE shortcuts, any hub dataset, a local dataset folder), a
local folder in GLUE's TSV layout, or a user file (readers.py: CSV, TSV, JSONL, JSON, Parquet).
Data flows one way: config -> tasks (this module reads TaskConfig, the config never reads it)."""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from . import demo_data
from .carve import carve, content_groups, held_out_content, overlap_share, stratified_sample
from .config import ExtraEvalConfig, TaskConfig
from .errors import MtkdError
from .readers import read_table

SPLIT_SEED = 1234   # carves and samples do not move with the run seed


@dataclass(frozen=True)
class TaskSpec:
    name: str
    label_names: tuple[str, ...]
    metric: str                        # official metric: accuracy | f1 | matthews
    glue_folder: str | None = None
    tsv_text: tuple[str, ...] = ()     # text columns in GLUE's TSV files
    tsv_label: str = "label"
    eval_tsv: str = "dev.tsv"
    tsv_header: tuple[str, ...] | None = None   # for header-less TSVs (CoLA)
    hf_config: str | None = None
    hf_text: tuple[str, ...] = ()
    hf_eval_split: str = "validation"


REGISTRY = {s.name: s for s in [
    TaskSpec("demo", ("negative", "positive"), "accuracy"),
    TaskSpec("sst2", ("negative", "positive"), "accuracy", "SST-2", ("sentence",), "label",
             hf_config="sst2", hf_text=("sentence",)),
    TaskSpec("mnli", ("entailment", "neutral", "contradiction"), "accuracy", "MNLI", ("sentence1", "sentence2"),
             "gold_label", "dev_matched.tsv", hf_config="mnli", hf_text=("premise", "hypothesis"),
             hf_eval_split="validation_matched"),
    TaskSpec("qqp", ("not_duplicate", "duplicate"), "f1", "QQP", ("question1", "question2"), "is_duplicate",
             hf_config="qqp", hf_text=("question1", "question2")),
    TaskSpec("mrpc", ("not_equivalent", "equivalent"), "f1", "MRPC", ("#1 String", "#2 String"), "Quality",
             hf_config="mrpc", hf_text=("sentence1", "sentence2")),
    TaskSpec("qnli", ("entailment", "not_entailment"), "accuracy", "QNLI", ("question", "sentence"), "label",
             hf_config="qnli", hf_text=("question", "sentence")),
    TaskSpec("rte", ("entailment", "not_entailment"), "accuracy", "RTE", ("sentence1", "sentence2"), "label",
             hf_config="rte", hf_text=("sentence1", "sentence2")),
    TaskSpec("cola", ("unacceptable", "acceptable"), "matthews", "CoLA", ("sentence",), "label",
             tsv_header=("source", "label", "original_label", "sentence"), hf_config="cola", hf_text=("sentence",)),
]}
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



# ---------------------------------------------------------------- loading

def resolve_source(cfg: TaskConfig) -> str:
    """The task's source with `auto` resolved: builtin for demo, else glue_dir / file / hf by what is set."""
    if cfg.source != "auto":
        return cfg.source
    if cfg.glue_dir:
        return "glue_dir"
    if cfg.train_file:
        return "file"
    return "hf" if cfg.dataset or cfg.name != "demo" else "builtin"


def _spec(cfg: TaskConfig, source: str) -> TaskSpec | None:
    """The registry entry the source needs (GLUE layouts and shortcuts), or None for a user's own data."""
    spec = REGISTRY.get(cfg.name)
    needs = source in ("builtin", "glue_dir") or source == "hf" and not cfg.dataset
    if needs and spec is None:
        import difflib
        close = difflib.get_close_matches(cfg.name, list(REGISTRY), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise MtkdError(f"unknown task '{cfg.name}'{hint}; known: {', '.join(REGISTRY)}, "
                        f"or set source: file (train_file) or source: hf (dataset)")
    if source == "glue_dir" and spec.glue_folder is None or source == "hf" and not cfg.dataset and spec.hf_config is None:
        raise MtkdError(f"task '{cfg.name}' has no GLUE data (source {source}); use source builtin or file")
    if source == "builtin" and cfg.name != "demo":
        raise MtkdError(f"task '{cfg.name}': only 'demo' is built in; use source glue_dir, hf or file")
    return spec


@dataclass
class _Raw:
    """One split as read: text cells, label cells as strings ('' = no label), optional group cells."""
    texts: list[tuple[str, ...]]
    labels: list[str]
    groups: list | None
    where: str
    dropped: int = 0                   # rows the reader could not parse (named in its warning line)


def load_task(cfg: TaskConfig) -> TaskData:
    source = resolve_source(cfg)
    spec = _spec(cfg, source)
    where = f"task '{cfg.name}'"
    if source == "builtin":
        label_names = list(spec.label_names)
        tr_t, tr_y = demo_data.generate(cfg.demo_size, seed=0, split="train")
        ev_t, ev_y = demo_data.generate(max(200, cfg.demo_size // 4), seed=0, split="eval")
        train = _Raw([(t,) for t in tr_t], [label_names[y] for y in tr_y], None, "demo train")
        evals = _Raw([(t,) for t in ev_t], [label_names[y] for y in ev_y], None, "demo eval")
        declared = True
    elif source == "glue_dir":
        if not cfg.glue_dir:
            raise MtkdError(f"{where}: source glue_dir needs glue_dir (a folder with {spec.glue_folder}/)")
        folder = Path(cfg.glue_dir) / spec.glue_folder
        label_names, declared = list(cfg.label_names or spec.label_names), True
        train, evals = (_read_glue(folder / f, spec, cfg) for f in ("train.tsv", spec.eval_tsv))
    elif source == "hf":
        label_names, declared, train, evals = _load_hf(cfg, spec)
    else:
        label_names, declared, train, evals = _load_files(cfg, spec)
    if not label_names:   # inferred from the training labels: numeric order for integers, else sorted
        seen = sorted({y for y in train.labels if y != ""})
        label_names = sorted(seen, key=int) if all(y.lstrip("-").isdigit() for y in seen) else seen
    if len(label_names) < 2:
        raise MtkdError(f"{where}: need at least 2 classes, found {label_names}")
    metric = cfg.metric or (spec.metric if spec else "accuracy")
    pos_label = _pos_label(cfg, spec, label_names, declared, metric)
    train_split = _to_split(train, label_names)
    containment = cfg.group_by == "auto" and train_split.texts and len(train_split.texts[0]) == 1
    info: dict = {"source": source, "dropped_rows": {"train": train.dropped, "eval": evals.dropped if evals else 0}}
    train_groups = train.groups
    if evals is None:   # eval carved from the training file (eval_fraction)
        train_split, eval_split, kept, info["eval"] = _carve(train_split, train_groups, cfg.eval_fraction, cfg,
                                                             containment, SPLIT_SEED + 1, "eval")
        train_groups = None if train_groups is None else [train_groups[i] for i in kept]
    else:
        eval_split = _to_split(evals, label_names)
    if cfg.max_eval_examples and len(eval_split) > cfg.max_eval_examples:
        eval_split = eval_split.subset(stratified_sample(eval_split.labels, cfg.max_eval_examples, SPLIT_SEED))
    unused = []   # train rows max_train_examples did not keep: the pool of transfer_from_train
    if cfg.max_train_examples and len(train_split) > cfg.max_train_examples:
        keep = stratified_sample(train_split.labels, cfg.max_train_examples, SPLIT_SEED)
        unused = [train_split.texts[i] for i in np.setdiff1d(np.arange(len(train_split)), keep)]
        train_split = train_split.subset(keep)
        train_groups = None if train_groups is None else [train_groups[i] for i in keep]
    train_split, val_split, _, info["validation"] = _carve(train_split, train_groups, cfg.validation_fraction, cfg,
                                                           containment, SPLIT_SEED, "validation")
    splits = {"train": train_split, "validation": val_split, "eval": eval_split}
    extra = {e.name: _extra_eval(cfg, e, label_names) for e in cfg.extra_eval or []}
    transfer = None
    if cfg.transfer_file or cfg.transfer_from_train:   # nothing any scored split holds may be distilled
        held_out = [*val_split.texts, *eval_split.texts, *(t for x in extra.values() for t in x.texts)]
        transfer, info["transfer"] = _transfer(cfg, unused, held_out, train_split.texts, bool(containment))
    if extra:
        info["extra_eval"] = {k: {"n": len(v), "file": e.file} for (k, v), e in zip(extra.items(), cfg.extra_eval)}
    return TaskData(cfg.name, tuple(label_names), metric, splits, pos_label, info, transfer, extra)


def _transfer(cfg: TaskConfig, unused: list[tuple[str, ...]], held_out: list[tuple[str, ...]], train, containment: bool):
    """(transfer Split with labels -1, its record). From `transfer_file` (text columns only), or a seeded
    sample of `transfer_from_train` of the `unused` train rows. Texts that carry validation, eval or extra eval content
    (equal to one; with containment also containing one, or inside one and in no train text: see
    carve.held_out_content) are dropped first, so no held-out content is distilled."""
    where = f"task '{cfg.name}'"
    if cfg.transfer_file:
        columns = text_columns(cfg)
        table = read_table(cfg.transfer_file, columns, cfg.header, cfg.columns)
        texts = _raw(table.columns, columns, None, None, str(cfg.transfer_file)).texts
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


def label_column(cfg: TaskConfig) -> str:
    """The task's label column name in its files (GLUE's for a GLUE folder)."""
    spec = REGISTRY.get(cfg.name)
    return spec.tsv_label if spec is not None and resolve_source(cfg) == "glue_dir" else cfg.label_column


def _extra_eval(cfg: TaskConfig, e: ExtraEvalConfig, label_names) -> Split:
    """An extra eval set: read as task files are, labels mapped to the task's label names (or refused)."""
    columns, task_columns = list(e.text_columns or text_columns(cfg)), text_columns(cfg)
    if len(columns) != len(task_columns):
        raise MtkdError(f"task '{cfg.name}': extra eval set '{e.name}' has {len(columns)} text column(s) "
                        f"{columns}, the task {len(task_columns)} {task_columns}")
    label = e.label_column or label_column(cfg)
    table = read_table(e.file, [*columns, label], e.header, e.columns)
    return _to_split(_raw(table.columns, columns, label, None, f"extra eval set '{e.name}' ({e.file})"), list(label_names))


def _carve(split: Split, user_groups, fraction: float, cfg: TaskConfig, containment: bool, seed: int, name: str):
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


def _to_split(raw: _Raw, label_names: list[str]) -> Split:
    labels = [_label_index(y, label_names, f"{raw.where}: example {i}") for i, y in enumerate(raw.labels, 1)]
    return Split(raw.texts, np.asarray(labels, dtype=np.int64))


def _label_index(value: str, label_names, where: str) -> int:
    if value in label_names:
        return label_names.index(value)
    if value.lstrip("-").isdigit() and 0 <= int(value) < len(label_names):
        return int(value)
    if value == "" or value == "-1":
        raise MtkdError(f"{where}: no label (an unlabelled split such as GLUE test cannot be used for eval)")
    shown = ", ".join(label_names[:10]) + (f", ... ({len(label_names)} labels)" if len(label_names) > 10 else "")
    raise MtkdError(f"{where}: unknown label '{value}'; expected one of {shown} or 0..{len(label_names) - 1}")


def _raw(columns: dict[str, list], text_columns, label_column, group_column, where: str, dropped: int = 0) -> _Raw:
    """Cells -> _Raw: texts must be strings (kept byte for byte); labels become strings (an integer
    label 1 -> '1'; missing, or no label_column, -> '' = no label)."""
    for c in text_columns:
        for i, v in enumerate(columns[c], 1):
            if not isinstance(v, str):
                raise MtkdError(f"{where}: example {i}: text column(s) {', '.join(text_columns)} must be strings, "
                                f"got {type(v).__name__} in '{c}'")
    labels = []
    for i, v in enumerate(columns[label_column] if label_column else [None] * len(columns[text_columns[0]]), 1):
        if isinstance(v, bool) or not isinstance(v, (str, int, type(None))):
            raise MtkdError(f"{where}: example {i}: label must be a string or an integer, got {v!r}")
        labels.append("" if v is None else str(v))
    texts = list(zip(*(columns[c] for c in text_columns)))
    return _Raw(texts, labels, None if group_column is None else list(columns[group_column]), where, dropped)


def _read_glue(path: Path, spec: TaskSpec, cfg: TaskConfig) -> _Raw:
    if not path.is_file():
        raise MtkdError(f"task '{spec.name}': GLUE file not found: {path}")
    extra = [cfg.group_column] if cfg.group_column else []
    names = list(spec.tsv_header) if spec.tsv_header else None
    table = read_table(path, [*spec.tsv_text, spec.tsv_label, *extra], header=names is None, names=names)
    return _raw(table.columns, list(spec.tsv_text), spec.tsv_label, cfg.group_column, str(path), len(table.dropped))


def text_columns(cfg: TaskConfig) -> list[str]:
    """The task's text column names: `text_columns`, else the registry's for its source, else ['text']."""
    spec, source = REGISTRY.get(cfg.name), resolve_source(cfg)
    default = ["text"]
    if spec is not None and source in ("glue_dir", "file"):
        default = list(spec.tsv_text) or default
    elif spec is not None and source == "hf" and not cfg.dataset:
        default = list(spec.hf_text)
    columns = list(cfg.text_columns or default)
    if not 1 <= len(columns) <= 2:
        raise MtkdError(f"task '{cfg.name}': text_columns must name one or two columns, got {columns}")
    return columns


def _load_files(cfg: TaskConfig, spec: TaskSpec | None):
    where = f"task '{cfg.name}'"
    if not cfg.train_file or not (cfg.eval_file or cfg.eval_fraction):
        raise MtkdError(f"{where}: source file needs train_file, and eval_file or eval_fraction")
    columns = text_columns(cfg)

    def read(path, group_column):   # groups matter where carves happen: the training file
        table = read_table(path, [*columns, cfg.label_column, *([group_column] if group_column else [])],
                           cfg.header, cfg.columns)
        return _raw(table.columns, columns, cfg.label_column, group_column, str(path), len(table.dropped))
    names = cfg.label_names or (list(spec.label_names) if spec else None)
    return names, names is not None, read(cfg.train_file, cfg.group_column), read(cfg.eval_file, None) if cfg.eval_file else None


def _load_hf(cfg: TaskConfig, spec: TaskSpec | None):
    """A Hugging Face dataset: GLUE by task name (`sst2` -> glue/sst2, its columns and dev split), any hub
    dataset (`dataset: ag_news`), or a local folder (saved with `save_to_disk`, or data files)."""
    import datasets

    from .models import quiet_hub
    quiet_hub()
    shortcut = not cfg.dataset
    name, conf = ("glue", spec.hf_config) if shortcut else (cfg.dataset, cfg.config)
    shown = f"{name}/{conf}" if conf else name
    local = Path(name).expanduser()
    try:
        if local.is_dir() and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
            ds = datasets.load_from_disk(str(local))
        else:
            ds = datasets.load_dataset(str(local) if local.is_dir() else name, conf)
    except Exception as e:  # offline, hub down, unknown name or config
        msg = str(e).splitlines()[0][:160] if str(e) else ""
        raise MtkdError(f"task '{cfg.name}': could not load {shown} "
                        f"{'from ' + str(local) if local.is_dir() else 'from the Hugging Face hub'} "
                        f"({type(e).__name__}{': ' + msg if msg and not isinstance(e, ConnectionError) else ''}); "
                        f"offline, use a local folder (dataset: PATH, saved with save_to_disk) or glue_dir") from None
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict({cfg.train_split: ds})
    available = list(ds)
    eval_split = cfg.eval_split or (spec.hf_eval_split if shortcut else
                                    None if cfg.eval_fraction else "validation" if "validation" in ds else "test")
    for split in filter(None, (cfg.train_split, eval_split)):
        if split not in ds:
            raise MtkdError(f"task '{cfg.name}': {shown} has no split '{split}'; splits: {', '.join(available)}"
                            + ("" if cfg.eval_fraction else "; or set eval_fraction to carve eval from train"))
    columns = text_columns(cfg)
    label = cfg.label_column
    feats = ds[cfg.train_split].features
    needed = [*columns, label, *([cfg.group_column] if cfg.group_column else [])]
    missing = [c for c in needed if c not in feats]
    if missing:
        raise MtkdError(f"task '{cfg.name}': {shown} has no column '{missing[0]}'; columns: {', '.join(feats)}")
    class_names = feats[label].names if isinstance(feats[label], datasets.ClassLabel) else None

    def raw(split):
        d = ds[split]
        cols = {c: list(d[c]) for c in dict.fromkeys(needed)}
        if class_names is not None:   # ClassLabel ids -> their names (-1 = unlabelled -> '')
            cols[label] = [class_names[y] if y is not None and 0 <= y < len(class_names) else "" for y in cols[label]]
        return _raw(cols, columns, label, cfg.group_column, f"{shown} [{split}]")
    names = cfg.label_names or class_names
    return (list(names) if names else None, names is not None, raw(cfg.train_split),
            raw(eval_split) if eval_split else None)
