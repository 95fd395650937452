"""Task registry and loaders. A task knows its text columns, label names (in GLUE's order) and
official metric; loading gives three splits: `train`, `validation` (carved deterministically
from train, for everything fitted besides the student) and `eval` (GLUE dev: reported, never
fitted on). Sources: the built-in demo, Hugging Face `datasets` (`glue/<task>`), a local
folder in GLUE's TSV layout, or a user CSV/TSV/JSONL file."""
from __future__ import annotations

import csv
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from . import demo_data
from .config import TaskConfig
from .errors import MtkdError

SPLIT_SEED = 1234   # the validation carve does not move with the run seed


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

    def __len__(self):
        return len(self.texts)

    def subset(self, idx) -> "Split":
        return Split([self.texts[i] for i in idx], self.labels[np.asarray(idx, dtype=np.int64)])

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


def compute_metrics(labels, preds, num_labels: int) -> dict[str, float]:
    """accuracy, F1 (binary: of class 1; multi-class: macro) and Matthews correlation, in %."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    avg = "binary" if num_labels == 2 else "macro"
    return {
        "accuracy": 100 * float(accuracy_score(labels, preds)),
        "f1": 100 * float(f1_score(labels, preds, average=avg, zero_division=0)),
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
    return "builtin" if cfg.name == "demo" else "glue_dir" if cfg.glue_dir else "file" if cfg.train_file else "hf"


def load_task(cfg: TaskConfig) -> TaskData:
    spec = REGISTRY.get(cfg.name)
    source = resolve_source(cfg)
    if source in ("builtin", "hf", "glue_dir") and spec is None:
        import difflib
        close = difflib.get_close_matches(cfg.name, list(REGISTRY), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise MtkdError(f"unknown task '{cfg.name}'{hint}; known: {', '.join(REGISTRY)}, or set source: file")
    if source == "glue_dir" and spec.glue_folder is None or source == "hf" and spec.hf_config is None:
        raise MtkdError(f"task '{cfg.name}' has no GLUE data (source {source}); use source builtin or file")
    if source == "builtin":
        if cfg.name != "demo":
            raise MtkdError(f"task '{cfg.name}': only 'demo' is built in; use source glue_dir, hf or file")
        train_texts, train_labels = demo_data.generate(cfg.demo_size, seed=0, split="train")
        eval_texts, eval_labels = demo_data.generate(max(200, cfg.demo_size // 4), seed=0, split="eval")
        label_names = spec.label_names
        train = Split([(t,) for t in train_texts], np.asarray(train_labels, dtype=np.int64))
        evals = Split([(t,) for t in eval_texts], np.asarray(eval_labels, dtype=np.int64))
    elif source == "glue_dir":
        if not cfg.glue_dir:
            raise MtkdError(f"task '{cfg.name}': source glue_dir needs glue_dir (a folder with {spec.glue_folder}/)")
        label_names = spec.label_names
        folder = Path(cfg.glue_dir) / spec.glue_folder
        train = _read_glue_tsv(folder / "train.tsv", spec)
        evals = _read_glue_tsv(folder / spec.eval_tsv, spec)
    elif source == "hf":
        label_names, train, evals = _load_hf(spec)
    else:
        label_names, train, evals = _load_files(cfg, spec)
    metric = cfg.metric or (spec.metric if spec else "accuracy")
    if cfg.max_eval_examples and len(evals) > cfg.max_eval_examples:
        evals = evals.subset(range(cfg.max_eval_examples))
    rng = np.random.default_rng(SPLIT_SEED)
    order = rng.permutation(len(train))
    if cfg.max_train_examples:
        order = order[: cfg.max_train_examples]
    n_val = int(round(len(order) * cfg.validation_fraction))
    if len(order) - n_val < 1 or n_val < 1:
        raise MtkdError(f"task '{cfg.name}': {len(order)} training examples are too few to carve a validation split")
    if len(evals) == 0:
        raise MtkdError(f"task '{cfg.name}': the eval split has zero examples")
    splits = {"train": train.subset(np.sort(order[n_val:])), "validation": train.subset(np.sort(order[:n_val])),
              "eval": evals}
    for name, s in splits.items():
        bad = s.labels[(s.labels < 0) | (s.labels >= len(label_names))]
        if len(bad):
            raise MtkdError(f"task '{cfg.name}': {name} split has label {bad[0]} outside 0..{len(label_names) - 1}")
    return TaskData(cfg.name, tuple(label_names), metric, splits)


def _label_index(value: str, label_names, where: str) -> int:
    value = value.strip()
    if value in label_names:
        return label_names.index(value)
    if value.lstrip("-").isdigit() and 0 <= int(value) < len(label_names):
        return int(value)
    if value == "" or value == "-1":
        raise MtkdError(f"{where}: no label (an unlabelled split such as GLUE test cannot be used for eval)")
    raise MtkdError(f"{where}: unknown label '{value}'; expected one of {', '.join(label_names)} or 0..{len(label_names) - 1}")


def _read_glue_tsv(path: Path, spec: TaskSpec) -> Split:
    if not path.is_file():
        raise MtkdError(f"task '{spec.name}': GLUE file not found: {path}")
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8-sig", newline="") as f:   # utf-8-sig: MRPC's header has a BOM
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = list(spec.tsv_header) if spec.tsv_header else (rows.pop(0) if rows else [])
    missing = [c for c in (*spec.tsv_text, spec.tsv_label) if c not in header]
    if missing:
        raise MtkdError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header) or 'none'}")
    cols = [header.index(c) for c in spec.tsv_text]
    lab = header.index(spec.tsv_label)
    texts, labels, skipped = [], [], 0
    for i, row in enumerate(rows, start=2 if not spec.tsv_header else 1):
        if len(row) != len(header):   # GLUE's QQP/MNLI have a few broken rows; HF's loader skips them too
            skipped += 1
            continue
        texts.append(tuple(row[c] for c in cols))
        labels.append(_label_index(row[lab], list(spec.label_names), f"{path}:{i}"))
    if not texts:
        raise MtkdError(f"{path}: no examples" + (f" ({skipped} malformed row(s) skipped)" if skipped else ""))
    if skipped:
        print(f"mtkd: warning: {path}: skipped {skipped} malformed row(s)", file=sys.stderr)
    return Split(texts, np.asarray(labels, dtype=np.int64))


def _load_hf(spec: TaskSpec):
    try:
        import datasets

        from .models import quiet_hub
        quiet_hub()
        ds = datasets.load_dataset("glue", spec.hf_config)
    except Exception as e:  # offline, hub down, bad config
        raise MtkdError(f"task '{spec.name}': could not load glue/{spec.hf_config} from the Hugging Face hub "
                        f"({type(e).__name__}); offline, set glue_dir to a local GLUE folder") from None
    names = tuple(ds["train"].features["label"].names)

    def split(d):
        texts = list(zip(*[d[c] for c in spec.hf_text]))
        return Split(texts, np.asarray(d["label"], dtype=np.int64))
    return names, split(ds["train"]), split(ds[spec.hf_eval_split])


def _read_table(path: Path, columns, label_column, where):
    if not path.is_file():
        raise MtkdError(f"{where}: data file not found: {path}")
    if path.stat().st_size == 0:
        raise MtkdError(f"{where}: data file is empty: {path}")
    rows = []
    try:
        if path.suffix in (".jsonl", ".json"):
            with open(path, encoding="utf-8") as f:
                for i, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError:
                            raise MtkdError(f"{path}:{i}: not valid JSON") from None
                        if not isinstance(row, dict):
                            raise MtkdError(f"{path}:{i}: each line must be a JSON object")
                        rows.append(row)
        else:
            with open(path, encoding="utf-8-sig", newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    except UnicodeDecodeError:
        raise MtkdError(f"{path}: not a UTF-8 text file") from None
    if not rows:
        raise MtkdError(f"{where}: no examples in {path}")
    for c in (*columns, label_column):
        if c not in rows[0]:
            raise MtkdError(f"{path}: missing column '{c}'; found {', '.join(map(str, rows[0]))}")
    return rows


def _load_files(cfg: TaskConfig, spec: TaskSpec | None):
    where = f"task '{cfg.name}'"
    if not cfg.train_file or not cfg.eval_file:
        raise MtkdError(f"{where}: source file needs train_file and eval_file")
    columns = cfg.text_columns or (list(spec.tsv_text) if spec else ["text"])
    if not 1 <= len(columns) <= 2:
        raise MtkdError(f"{where}: text_columns must name one or two columns, got {columns}")
    train_rows = _read_table(Path(cfg.train_file), columns, cfg.label_column, where)
    eval_rows = _read_table(Path(cfg.eval_file), columns, cfg.label_column, where)
    label_names = cfg.label_names or (list(spec.label_names) if spec else
                                      sorted({str(r[cfg.label_column]) for r in train_rows}))
    if len(label_names) < 2:
        raise MtkdError(f"{where}: need at least 2 classes, found {label_names}")

    def split(rows, path):
        texts, labels = [], []
        for i, r in enumerate(rows, 1):
            vals = [r.get(c) for c in columns]
            if any(v is None or not isinstance(v, str) for v in vals):
                raise MtkdError(f"{path}: example {i}: text column(s) {', '.join(columns)} must be strings")
            texts.append(tuple(vals))
            raw = r.get(cfg.label_column)
            labels.append(_label_index("" if raw is None else str(raw), list(label_names), f"{path}: example {i}"))
        return Split(texts, np.asarray(labels, dtype=np.int64))
    return tuple(label_names), split(train_rows, cfg.train_file), split(eval_rows, cfg.eval_file)
