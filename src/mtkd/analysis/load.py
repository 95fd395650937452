"""Read a run directory's evaluate-stage output (RUN/<task>/eval/) into plain arrays.

Only the documented format of docs/run_dir.md is used: the eval manifest, the label
arrays and the logits of every model (eval at each seed, validation; teachers' train logits; the
run seed's logits on each extra eval set the manifest lists under "extra_eval").
Fields added with several seeds per run are optional: a run written before them loads as one
seed, with validation metrics computed from validation logits where those exist (else NaN) and
no train logits. Every problem a user can cause (missing run, no evaluated task, unknown split,
a file the manifest names but that is absent or of the wrong shape) is raised as a one-line
`MtkdError`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from mtkd.errors import MtkdError
from mtkd.io import load_npy
from mtkd.tasks import compute_metrics

SPLITS = ("validation", "eval")
MODEL_TYPES = ("teacher", "baseline", "single", "multi")


@dataclass
class Model:
    method: str
    type: str                      # teacher | baseline | single | multi
    logits: np.ndarray             # float [N_eval, C], the run seed
    metric: float                  # official metric on eval in %, mean over seeds (NaN if the manifest lacks it)
    teachers: list[str] = field(default_factory=list)
    strategy: str | None = None
    seeds: list[int] = field(default_factory=list)                          # run seed first
    seed_logits: dict[int, np.ndarray] = field(default_factory=dict)        # seed -> eval logits, run seed first
    val_metric: float = float("nan")   # official metric on validation in %, mean over seeds: what selects a "best"
    val_logits: np.ndarray | None = None                                    # float [N_val, C], the run seed
    extra_logits: dict[str, np.ndarray] = field(default_factory=dict)      # extra eval set -> float [N_set, C], run seed

    def seed_preds(self) -> np.ndarray:
        """Predicted eval classes at every seed, int [S, N_eval] (run seed first)."""
        return np.stack([lg.argmax(axis=1) for lg in self.seed_logits.values()])


@dataclass
class TaskEval:
    name: str
    label_names: list[str]
    metric: str
    temperature: float
    labels: np.ndarray             # int [N_eval]
    models: list[Model]            # in manifest order
    teacher_names: list[str]
    split: str                     # the split of `split_labels` / `split_logits`
    split_labels: np.ndarray       # int [N_split]
    split_logits: dict[str, np.ndarray]   # teacher -> float [N_split, C]
    manifest_path: Path
    val_labels: np.ndarray | None = None          # int [N_val]
    train_labels: np.ndarray | None = None        # int [N_train], when the run wrote teacher train logits
    train_logits: dict[str, np.ndarray] = field(default_factory=dict)   # teacher -> float [N_train, C]
    pos_label: int = 1                            # binary F1's positive class (eval manifest; 1 in older runs)
    extra_labels: dict[str, np.ndarray] = field(default_factory=dict)   # extra eval set -> int [N_set], manifest order

    def of_type(self, *types: str) -> list[Model]:
        return [m for m in self.models if m.type in types]

    @property
    def teachers(self) -> list[Model]:
        return self.of_type("teacher")

    @property
    def students(self) -> list[Model]:
        """Every non-teacher model: the baseline and the single- and multi-teacher students."""
        return self.of_type("baseline", "single", "multi")


def eval_manifests(run_dir: Path) -> list[Path]:
    """RUN/<task>/eval/manifest.json of every evaluated task, in the config's task order
    (tasks not named in the config follow, sorted)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MtkdError(f"run directory not found: {run_dir}")
    found = {p.parent.parent.name: p for p in run_dir.glob("*/eval/manifest.json")}
    order = [t for t in config_task_names(run_dir) if t in found]
    order += sorted(t for t in found if t not in order)
    return [found[t] for t in order]


def read_config(run_dir: Path) -> dict:
    """RUN/config.yaml as a plain dict ({} if absent or unreadable)."""
    path = Path(run_dir) / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def transfer_lines(manifest: dict) -> list[str]:
    """The line that says which students of a task learned from its transfer set (none: no line)."""
    tr = manifest.get("transfer")
    if not tr:
        return []
    used = [m["method"] for m in manifest["models"] if m.get("transfer")]
    where = f"the file {Path(tr['file']).name}" if tr.get("file") else "the train rows max_train_examples left unused"
    if not used:
        return [f"{manifest['task']}: a transfer set of {tr['n']} unlabelled examples ({where}) exists, "
                f"but no student used it (distill.use_transfer: false, or alpha 0)."]
    return [f"{manifest['task']}: {', '.join(used)} learned from the labelled train split plus a transfer set of "
            f"{tr['n']} unlabelled examples ({where}; KD term only, labels never used); the other students (no_kd "
            f"always) saw only the labelled train split."]


def config_task_names(run_dir: Path) -> list[str]:
    tasks = read_config(run_dir).get("tasks") or []
    names = [t if isinstance(t, str) else (t or {}).get("name") for t in tasks if isinstance(t, (str, dict))]
    return [str(n) for n in names if n]


def load_run(run_dir: Path, split: str = "validation") -> list[TaskEval]:
    if split not in SPLITS:
        raise MtkdError(f"unknown split '{split}': choose one of {', '.join(SPLITS)}")
    manifests = eval_manifests(run_dir)
    if not manifests:
        raise MtkdError(f"no evaluated task in {run_dir}: no <task>/eval/manifest.json found (run the evaluate stage first)")
    return [load_task(p, split) for p in manifests]


def load_task(manifest_path: Path, split: str = "validation") -> TaskEval:
    folder = manifest_path.parent
    try:
        man = json.loads(manifest_path.read_text(encoding="utf-8"))
        n_classes = len(man["label_names"])
        labels = _labels(folder, man["labels_eval"], n_classes)
        val_labels = _labels(folder, man["labels_validation"], n_classes) if man.get("labels_validation") else None
        run_seed = (man.get("seeds") or [read_config(folder.parent.parent).get("seed", 0)])[0]
        extra_labels = {s: _labels(folder, e["labels"], n_classes).astype(np.int64)
                        for s, e in (man.get("extra_eval") or {}).items()}
        for s, e in (man.get("extra_eval") or {}).items():
            if e.get("size", len(extra_labels[s])) != len(extra_labels[s]):
                raise MtkdError(f"{folder / e['labels']}: {len(extra_labels[s])} labels, the manifest says {e['size']}")
        models = [_model(folder, man, m, labels, val_labels, run_seed, extra_labels) for m in man["models"]]
        teacher_names = [m.method for m in models if m.type == "teacher"]
        if split == "eval":
            split_labels = labels
            split_logits = {m.method: m.logits for m in models if m.type == "teacher"}
        else:
            split_labels = _labels(folder, man["labels_validation"], n_classes)
            split_logits = {t: _logits(folder, man["validation_files"][t], len(split_labels), n_classes, t)
                            for t in teacher_names}
        train_labels, train_logits = None, {}
        if man.get("labels_train") and man.get("train_files"):
            train_labels = _labels(folder, man["labels_train"], n_classes).astype(np.int64)
            train_logits = {t: _logits(folder, f, len(train_labels), n_classes, t)
                            for t, f in man["train_files"].items() if t in teacher_names}
        return TaskEval(str(man.get("task", folder.parent.name)), list(man["label_names"]), man["metric"],
                        float(man.get("temperature", 1.0)), labels.astype(np.int64), models,
                        teacher_names, split, split_labels.astype(np.int64), split_logits, manifest_path,
                        None if val_labels is None else val_labels.astype(np.int64), train_labels, train_logits,
                        int(man.get("pos_label", 1)), extra_labels)
    except (KeyError, TypeError) as e:
        raise MtkdError(f"{manifest_path}: malformed eval manifest (missing or bad field {e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MtkdError(f"{manifest_path}: not a valid JSON file") from None


def _model(folder: Path, man: dict, m: dict, labels, val_labels, run_seed: int, extra_labels: dict) -> Model:
    n_classes, metric = len(man["label_names"]), man["metric"]
    if m["type"] not in MODEL_TYPES:
        raise MtkdError(f"{folder / 'manifest.json'}: model '{m['method']}' has unknown type '{m['type']}'")
    seed_files = {int(s): f for s, f in (m.get("seed_files") or {}).items()} or {int(run_seed): m["file"]}
    seeds = [int(s) for s in m.get("seeds") or seed_files]
    seed_logits = {s: _logits(folder, seed_files[s], len(labels), n_classes, m["method"]) for s in seeds}
    value = (m.get("metrics") or {}).get(metric)
    val_file = m.get("validation_file") or (man.get("validation_files") or {}).get(m["method"])
    val_logits = None if val_file is None or val_labels is None else \
        _logits(folder, val_file, len(val_labels), n_classes, m["method"])
    val_value = (m.get("validation_metrics") or {}).get(metric)
    if val_value is None and val_logits is not None:   # older runs: teachers' validation logits only
        val_value = compute_metrics(val_labels, val_logits.argmax(1), n_classes, man.get("pos_label", 1))[metric]
    extra_files = m.get("extra_files") or {}
    unknown = [s for s in extra_files if s not in extra_labels]
    if unknown:
        raise MtkdError(f"{folder / 'manifest.json'}: model '{m['method']}' has logits on extra eval set '{unknown[0]}', "
                        f"which \"extra_eval\" does not list")
    extra = {s: _logits(folder, f, len(extra_labels[s]), n_classes, f"{m['method']} on {s}") for s, f in extra_files.items()}
    return Model(m["method"], m["type"], seed_logits[seeds[0]], float("nan") if value is None else float(value),
                 list(m.get("teachers") or []), m.get("strategy"), seeds, seed_logits,
                 float("nan") if val_value is None else float(val_value), val_logits, extra)


def _logits(folder: Path, name: str, n: int, c: int, what: str) -> np.ndarray:
    arr = _load(folder, name, 2, what)
    _check_shape(arr, n, c, folder / name)
    return arr.astype(np.float64)


def _load(folder: Path, name: str, ndim: int, what: str) -> np.ndarray:
    path = folder / name
    try:
        arr = load_npy(path)
    except (OSError, ValueError, EOFError):
        raise MtkdError(f"cannot read {path} ({what}); re-run the evaluate stage") from None
    if arr.ndim != ndim:
        raise MtkdError(f"{path}: expected a {ndim}-d array, got shape {arr.shape}")
    return arr


def _labels(folder: Path, name: str, n_classes: int) -> np.ndarray:
    labels = _load(folder, name, 1, "labels")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise MtkdError(f"{folder / name}: labels must be in 0..{n_classes - 1} (the eval split needs gold labels)")
    return labels


def _check_shape(logits: np.ndarray, n: int, c: int, path: Path) -> None:
    if logits.shape != (n, c):
        raise MtkdError(f"{path}: expected shape ({n}, {c}), got {logits.shape}")
