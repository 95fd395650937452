"""Where a task's rows come from -- a new source goes here: the built-in demo, a local folder in GLUE's TSV
layout, Hugging Face `datasets` (GLUE shortcuts, any hub dataset, a local dataset folder) or a user file
(readers.py: CSV, TSV, JSONL, JSON, Parquet). `read_source` gives the label names (when declared), the train
rows and the eval rows (None: eval is carved from train) as strings, read as written; `to_split` maps them
to label indices. The registry knows each GLUE task's columns, label names, official metric and files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import demo_data
from ..config import TaskConfig
from ..errors import MtkdError
from ..readers import read_table
from .data import Split


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


def resolve_source(cfg: TaskConfig) -> str:
    """The task's source with `auto` resolved: builtin for demo, else glue_dir / file / hf by what is set."""
    if cfg.source != "auto":
        return cfg.source
    if cfg.glue_dir:
        return "glue_dir"
    if cfg.train_file:
        return "file"
    return "hf" if cfg.dataset or cfg.name != "demo" else "builtin"


def spec_for(cfg: TaskConfig, source: str) -> TaskSpec | None:
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
class Rows:
    """One split as read: text cells, label cells as strings ('' = no label), optional group cells."""
    texts: list[tuple[str, ...]]
    labels: list[str]
    groups: list | None
    where: str
    dropped: int = 0                   # rows the reader could not parse (named in its warning line)


def read_source(cfg: TaskConfig, source: str, spec: TaskSpec | None) -> tuple[list[str] | None, bool, Rows, Rows | None]:
    """(label names or None to infer them, whether they are declared, train rows, eval rows or None)."""
    if source == "builtin":
        label_names = list(spec.label_names)
        tr_t, tr_y = demo_data.generate(cfg.demo_size, seed=0, split="train")
        ev_t, ev_y = demo_data.generate(max(200, cfg.demo_size // 4), seed=0, split="eval")
        train = Rows([(t,) for t in tr_t], [label_names[y] for y in tr_y], None, "demo train")
        evals = Rows([(t,) for t in ev_t], [label_names[y] for y in ev_y], None, "demo eval")
        return label_names, True, train, evals
    if source == "glue_dir":
        if not cfg.glue_dir:
            raise MtkdError(f"task '{cfg.name}': source glue_dir needs glue_dir (a folder with {spec.glue_folder}/)")
        folder = Path(cfg.glue_dir) / spec.glue_folder
        train, evals = (_read_glue(folder / f, spec, cfg) for f in ("train.tsv", spec.eval_tsv))
        return list(cfg.label_names or spec.label_names), True, train, evals
    if source == "hf":
        return _load_hf(cfg, spec)
    return _load_files(cfg, spec)


def to_split(raw: Rows, label_names: list[str]) -> Split:
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


def rows_from(columns: dict[str, list], text_columns, label_column, group_column, where: str, dropped: int = 0) -> Rows:
    """Cells -> Rows: texts must be strings (kept byte for byte); labels become strings (an integer
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
    return Rows(texts, labels, None if group_column is None else list(columns[group_column]), where, dropped)


def _read_glue(path: Path, spec: TaskSpec, cfg: TaskConfig) -> Rows:
    if not path.is_file():
        raise MtkdError(f"task '{spec.name}': GLUE file not found: {path}")
    extra = [cfg.group_column] if cfg.group_column else []
    names = list(spec.tsv_header) if spec.tsv_header else None
    table = read_table(path, [*spec.tsv_text, spec.tsv_label, *extra], header=names is None, names=names)
    return rows_from(table.columns, list(spec.tsv_text), spec.tsv_label, cfg.group_column, str(path), len(table.dropped))


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


def label_column(cfg: TaskConfig) -> str:
    """The task's label column name in its files (GLUE's for a GLUE folder)."""
    spec = REGISTRY.get(cfg.name)
    return spec.tsv_label if spec is not None and resolve_source(cfg) == "glue_dir" else cfg.label_column


def _load_files(cfg: TaskConfig, spec: TaskSpec | None):
    where = f"task '{cfg.name}'"
    if not cfg.train_file or not (cfg.eval_file or cfg.eval_fraction):
        raise MtkdError(f"{where}: source file needs train_file, and eval_file or eval_fraction")
    columns = text_columns(cfg)

    def read(path, group_column):   # groups matter where carves happen: the training file
        table = read_table(path, [*columns, cfg.label_column, *([group_column] if group_column else [])],
                           cfg.header, cfg.columns)
        return rows_from(table.columns, columns, cfg.label_column, group_column, str(path), len(table.dropped))
    names = cfg.label_names or (list(spec.label_names) if spec else None)
    return names, names is not None, read(cfg.train_file, cfg.group_column), read(cfg.eval_file, None) if cfg.eval_file else None


def _load_hf(cfg: TaskConfig, spec: TaskSpec | None):
    """A Hugging Face dataset: GLUE by task name (`sst2` -> glue/sst2, its columns and dev split), any hub
    dataset (`dataset: ag_news`), or a local folder (saved with `save_to_disk`, or data files)."""
    import datasets

    from ..models import quiet_hub
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
        return rows_from(cols, columns, label, cfg.group_column, f"{shown} [{split}]")
    names = cfg.label_names or class_names
    return (list(names) if names else None, names is not None, raw(cfg.train_split),
            raw(eval_split) if eval_split else None)
