"""Read a run directory's evaluate-stage output (RUN/<task>/eval/) into plain arrays.

Only the documented format of docs/run_dir.md is used: the eval manifest, the label
arrays and one logits array per model. Every problem a user can cause (missing run,
no evaluated task, unknown split, a file the manifest names but that is absent or of
the wrong shape) is raised as a one-line `MtkdError`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from mtkd.errors import MtkdError
from mtkd.io import load_npy

SPLITS = ("validation", "eval")
MODEL_TYPES = ("teacher", "baseline", "single", "multi")


@dataclass
class Model:
    method: str
    type: str                      # teacher | baseline | single | multi
    logits: np.ndarray             # float [N_eval, C]
    metric: float                  # official metric in % (NaN if the manifest lacks it)
    teachers: list[str] = field(default_factory=list)
    strategy: str | None = None


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
        models = []
        for m in man["models"]:
            if m["type"] not in MODEL_TYPES:
                raise MtkdError(f"{manifest_path}: model '{m['method']}' has unknown type '{m['type']}'")
            logits = _load(folder, m["file"], 2, m["method"])
            _check_shape(logits, len(labels), n_classes, folder / m["file"])
            metric = m.get("metrics", {}).get(man["metric"])
            models.append(Model(m["method"], m["type"], logits.astype(np.float64),
                                float("nan") if metric is None else float(metric),
                                list(m.get("teachers") or []), m.get("strategy")))
        teacher_names = [m.method for m in models if m.type == "teacher"]
        if split == "eval":
            split_labels = labels
            split_logits = {m.method: m.logits for m in models if m.type == "teacher"}
        else:
            split_labels = _labels(folder, man["labels_validation"], n_classes)
            split_logits = {}
            for t in teacher_names:
                arr = _load(folder, man["validation_files"][t], 2, t)
                _check_shape(arr, len(split_labels), n_classes, folder / man["validation_files"][t])
                split_logits[t] = arr.astype(np.float64)
        return TaskEval(str(man.get("task", folder.parent.name)), list(man["label_names"]), man["metric"],
                        float(man.get("temperature", 1.0)), labels.astype(np.int64), models,
                        teacher_names, split, split_labels.astype(np.int64), split_logits, manifest_path)
    except (KeyError, TypeError) as e:
        raise MtkdError(f"{manifest_path}: malformed eval manifest (missing or bad field {e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MtkdError(f"{manifest_path}: not a valid JSON file") from None


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
