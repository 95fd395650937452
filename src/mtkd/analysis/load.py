"""Read a run directory's evaluate-stage output (RUN/<task>/eval/) into plain arrays, or the same from a
published folder's evidence (evidence/<task>.json + .npz, written by analysis/evidence.py): one code path,
whose arrays come from the eval folder's .npy files (`RunArrays`) or the evidence's .npz (`EvidenceArrays`).

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

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from mtkd.errors import MtkdError
from mtkd.io import load_npy
from mtkd.tasks import compute_metrics

SPLITS = ("validation", "eval")
MODEL_TYPES = ("teacher", "baseline", "single", "multi")
EVIDENCE_DIR = "evidence"   # a published folder's evidence/<task>.json and <task>.npz (docs/run_dir.md)


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
    seed_val_logits: dict[int, np.ndarray] = field(default_factory=dict)   # seed -> validation logits, run seed first
    train_logits: str = "n/a"   # a teacher's train-logit provenance: in-sample | out-of-fold | unknown (eval manifest)

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
    gates: dict[str, dict] = field(default_factory=dict)   # student -> its learned gate's record (<method>.gate.json)
    transfer_note: list[str] = field(default_factory=list)  # transfer_lines(manifest): who saw extra data, how much

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
    (tasks not named in the config follow, sorted); a task without one that has evidence (a published
    folder) is given by its RUN/evidence/<task>.json."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MtkdError(f"run directory not found: {run_dir}")
    found = {p.stem: p for p in run_dir.glob(f"{EVIDENCE_DIR}/*.json")}
    found.update({p.parent.parent.name: p for p in run_dir.glob("*/eval/manifest.json")})
    order = [t for t in config_task_names(run_dir) if t in found]
    order += sorted(t for t in found if t not in order)
    return [found[t] for t in order]


def is_evidence(path: Path) -> bool:
    """Whether a task's manifest path (from eval_manifests) is a published task's evidence/<task>.json."""
    return Path(path).parent.name == EVIDENCE_DIR


def task_name(path: Path, man: dict) -> str:
    """The task of eval manifest `man` read from `path` (its "task"; else the name of its folder or evidence file)."""
    return str(man.get("task") or (Path(path).stem if is_evidence(path) else Path(path).parent.parent.name))


def read_eval_manifest(path: Path) -> dict:
    """A task's eval manifest: RUN/<task>/eval/manifest.json, or the one a published task's evidence holds."""
    doc = _read_json(Path(path))
    try:
        return doc["manifest"] if is_evidence(path) else doc
    except (KeyError, TypeError):
        raise MtkdError(f"{path}: malformed evidence (no \"manifest\")") from None


def input_digest(path: Path) -> str:
    """What an analysis records of a task's input: the sha256 of its eval manifest; for a published task, that of
    the eval manifest its evidence was written from (so the analysis published with the evidence stays current)."""
    path = Path(path)
    if not is_evidence(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    doc = _read_json(path)
    return str(doc.get("eval_manifest_sha256")) if isinstance(doc, dict) else ""


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise MtkdError(f"cannot read {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MtkdError(f"{path}: not a valid JSON file") from None


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
    n_train = manifest.get("n_train")
    steps = (f" — {(n_train + tr['n']) / n_train:.2f}× the examples and optimizer steps per epoch of the no-KD "
             f"student ({n_train} labelled), so their gap closed mixes distillation with extra data and extra steps"
             if n_train else "")
    return [f"{manifest['task']}: {', '.join(used)} learned from the labelled train split plus a transfer set of "
            f"{tr['n']} unlabelled examples ({where}; KD term only, labels never used){steps}; the other students "
            f"(no_kd always) saw only the labelled train split."]


def config_task_names(run_dir: Path) -> list[str]:
    tasks = read_config(run_dir).get("tasks") or []
    names = [t if isinstance(t, str) else (t or {}).get("name") for t in tasks if isinstance(t, (str, dict))]
    return [str(n) for n in names if n]


def load_run(run_dir: Path, split: str = "validation") -> list[TaskEval]:
    if split not in SPLITS:
        raise MtkdError(f"unknown split '{split}': choose one of {', '.join(SPLITS)}")
    manifests = eval_manifests(run_dir)
    if not manifests:
        raise MtkdError(f"no evaluated task in {run_dir}: no <task>/eval/manifest.json (run the evaluate stage first) "
                        f"and no {EVIDENCE_DIR}/<task>.json (a published folder's evidence) found")
    return [load_task(p, split) for p in manifests]


class RunArrays:
    """The arrays of a run's task: the .npy files of RUN/<task>/eval/ the manifest names, and each learned gate's
    record (<method>.gate.json). With `keep`, every array read is also kept, as read, in `kept` (name -> array):
    what a published task's evidence must hold (analysis/evidence.py)."""

    def __init__(self, folder: Path, keep: bool = False):
        self.folder, self.kept = Path(folder), ({} if keep else None)

    def where(self, name: str) -> str:
        return str(self.folder / name)

    def read(self, name: str, what: str) -> np.ndarray:
        try:
            arr = load_npy(self.folder / name)
        except (OSError, ValueError, EOFError):
            raise MtkdError(f"cannot read {self.folder / name} ({what}); re-run the evaluate stage") from None
        if self.kept is not None:
            self.kept[name] = arr
        return arr

    def gate(self, method: str) -> dict | None:
        path = self.folder / f"{method}.gate.json"
        return _read_json(path) if path.is_file() else None


class EvidenceArrays:
    """The arrays of a published task: the members of evidence/<task>.npz, named as the files of RUN/<task>/eval/
    (without .npy), checked against the sha256 that evidence/<task>.json records; the gates' records are in the
    JSON."""

    def __init__(self, json_path: Path, doc: dict):
        self.path, self.json_path, self.gates = json_path.with_name(doc["arrays"]), json_path, doc.get("gates") or {}
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise MtkdError(f"cannot read {self.path}: {e.strerror or e} (the arrays of {json_path})") from None
        if hashlib.sha256(data).hexdigest() != doc["arrays_sha256"]:
            raise MtkdError(f"{self.path} is not the file {json_path.name} was written with (sha256 differs); "
                            f"publish the run again")
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                self.arrays = {n: z[n] for n in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise MtkdError(f"cannot read {self.path}: {e}") from None

    def where(self, name: str) -> str:
        return f"{self.path}:{name}"

    def read(self, name: str, what: str) -> np.ndarray:
        try:
            return self.arrays[name.removesuffix(".npy")]
        except KeyError:
            raise MtkdError(f"{self.path} has no array {name} ({what}) that {self.json_path.name} names; "
                            f"publish the run again") from None

    def gate(self, method: str) -> dict | None:
        return self.gates.get(method)


def load_task(manifest_path: Path, split: str = "validation") -> TaskEval:
    """A task from its eval manifest (RUN/<task>/eval/manifest.json, the arrays beside it) or from a published
    task's evidence (RUN/evidence/<task>.json: the eval manifest it holds, the arrays in <task>.npz)."""
    manifest_path = Path(manifest_path)
    doc = _read_json(manifest_path)
    try:
        if is_evidence(manifest_path):
            return read_task(manifest_path, doc["manifest"], EvidenceArrays(manifest_path, doc), split)
        return read_task(manifest_path, doc, RunArrays(manifest_path.parent), split)
    except (KeyError, TypeError) as e:
        raise MtkdError(f"{manifest_path}: malformed {'evidence' if is_evidence(manifest_path) else 'eval manifest'} "
                        f"(missing or bad field {e})") from None


def read_task(manifest_path: Path, man: dict, arrays, split: str = "validation") -> TaskEval:
    """The task of eval manifest `man`, its arrays read from `arrays` (RunArrays or EvidenceArrays)."""
    try:
        n_classes = len(man["label_names"])
        labels = _labels(arrays, man["labels_eval"], n_classes)
        val_labels = _labels(arrays, man["labels_validation"], n_classes) if man.get("labels_validation") else None
        root = manifest_path.parent.parent if is_evidence(manifest_path) else manifest_path.parent.parent.parent
        run_seed = (man.get("seeds") or [read_config(root).get("seed", 0)])[0]
        extra_labels = {s: _labels(arrays, e["labels"], n_classes).astype(np.int64)
                        for s, e in (man.get("extra_eval") or {}).items()}
        for s, e in (man.get("extra_eval") or {}).items():
            if e.get("size", len(extra_labels[s])) != len(extra_labels[s]):
                raise MtkdError(f"{arrays.where(e['labels'])}: {len(extra_labels[s])} labels, "
                                f"the manifest says {e['size']}")
        models = [_model(arrays, manifest_path, man, m, labels, val_labels, run_seed, extra_labels)
                  for m in man["models"]]
        teacher_names = [m.method for m in models if m.type == "teacher"]
        if split == "eval":
            split_labels = labels
            split_logits = {m.method: m.logits for m in models if m.type == "teacher"}
        else:
            split_labels = _labels(arrays, man["labels_validation"], n_classes)
            split_logits = {t: _logits(arrays, man["validation_files"][t], len(split_labels), n_classes, t)
                            for t in teacher_names}
        train_labels, train_logits = None, {}
        if man.get("labels_train") and man.get("train_files"):
            train_labels = _labels(arrays, man["labels_train"], n_classes).astype(np.int64)
            train_logits = {t: _logits(arrays, f, len(train_labels), n_classes, t)
                            for t, f in man["train_files"].items() if t in teacher_names}
        gates = {m.method: g for m in models if m.type != "teacher" and (g := arrays.gate(m.method)) is not None}
        return TaskEval(task_name(manifest_path, man), list(man["label_names"]), man["metric"],
                        float(man.get("temperature", 1.0)), labels.astype(np.int64), models,
                        teacher_names, split, split_labels.astype(np.int64), split_logits, manifest_path,
                        None if val_labels is None else val_labels.astype(np.int64), train_labels, train_logits,
                        int(man.get("pos_label", 1)), extra_labels, gates, transfer_lines(man))
    except (KeyError, TypeError) as e:
        raise MtkdError(f"{manifest_path}: malformed eval manifest (missing or bad field {e})") from None


def _model(arrays, manifest_path: Path, man: dict, m: dict, labels, val_labels, run_seed: int,
           extra_labels: dict) -> Model:
    n_classes, metric = len(man["label_names"]), man["metric"]
    if m["type"] not in MODEL_TYPES:
        raise MtkdError(f"{manifest_path}: model '{m['method']}' has unknown type '{m['type']}'")
    seed_files = {int(s): f for s, f in (m.get("seed_files") or {}).items()} or {int(run_seed): m["file"]}
    seeds = [int(s) for s in m.get("seeds") or seed_files]
    seed_logits = {s: _logits(arrays, seed_files[s], len(labels), n_classes, m["method"]) for s in seeds}
    value = (m.get("metrics") or {}).get(metric)
    val_file = m.get("validation_file") or (man.get("validation_files") or {}).get(m["method"])
    val_files = {**{int(s): f for s, f in (m.get("seed_validation_files") or {}).items()}, seeds[0]: val_file}
    seed_val_logits = {} if val_labels is None else \
        {s: _logits(arrays, val_files[s], len(val_labels), n_classes, m["method"]) for s in seeds if val_files.get(s)}
    val_logits = seed_val_logits.get(seeds[0])
    val_value = (m.get("validation_metrics") or {}).get(metric)
    if val_value is None and val_logits is not None:   # older runs: teachers' validation logits only
        val_value = compute_metrics(val_labels, val_logits.argmax(1), n_classes, man.get("pos_label", 1))[metric]
    extra_files = m.get("extra_files") or {}
    unknown = [s for s in extra_files if s not in extra_labels]
    if unknown:
        raise MtkdError(f"{manifest_path}: model '{m['method']}' has logits on extra eval set '{unknown[0]}', "
                        f"which \"extra_eval\" does not list")
    extra = {s: _logits(arrays, f, len(extra_labels[s]), n_classes, f"{m['method']} on {s}")
             for s, f in extra_files.items()}
    return Model(m["method"], m["type"], seed_logits[seeds[0]], float("nan") if value is None else float(value),
                 list(m.get("teachers") or []), m.get("strategy"), seeds, seed_logits,
                 float("nan") if val_value is None else float(val_value), val_logits, extra, seed_val_logits,
                 str(m.get("train_logits", "n/a")))


def _logits(arrays, name: str, n: int, c: int, what: str) -> np.ndarray:
    arr = _load(arrays, name, 2, what)
    if arr.shape != (n, c):
        raise MtkdError(f"{arrays.where(name)}: expected shape ({n}, {c}), got {arr.shape}")
    return arr.astype(np.float64)


def _load(arrays, name: str, ndim: int, what: str) -> np.ndarray:
    arr = arrays.read(name, what)
    if arr.ndim != ndim:
        raise MtkdError(f"{arrays.where(name)}: expected a {ndim}-d array, got shape {arr.shape}")
    return arr


def _labels(arrays, name: str, n_classes: int) -> np.ndarray:
    labels = _load(arrays, name, 1, "labels")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise MtkdError(f"{arrays.where(name)}: labels must be in 0..{n_classes - 1} "
                        f"(the eval split needs gold labels)")
    return labels
