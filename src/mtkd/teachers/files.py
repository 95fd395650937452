"""FileTeacher (`kind: logits`): a teacher that ran elsewhere — a large model on another machine, a
black-box API that returns probabilities — given as one file of scores per split (docs/teachers.md).

- `.npy` float [N, C], rows in the order of the task's split, with a JSON sidecar (same name, `.json`):
  `{"label_names": [...], "kind": "logits" | "probs", "fingerprint": "<the split's fingerprint>"}`;
  the fingerprint (RUN/<task>/data/manifest.json, or `mtkd export-data`) must be the split's.
- `.csv` / `.jsonl`: the text (`text`, or `text_a` + `text_b` for sentence pairs; in JSONL `text` may be a
  list) and one column per label name; rows are matched to the split's examples by text, in any order,
  and every example must be found. `scores: logits | probs` in the config says what the columns hold.

Columns are put in the task's label order by name. Probabilities become log-probabilities (clamped at
-30, as TF-IDF's): softmax(log p / T) = p^(1/T) / sum p^(1/T), temperature in the probability domain,
which is what scaling by 1/T does to logits. Nothing is fitted: `fit` reads and checks the files,
`save` copies them into the teacher's folder (so its manifest hashes them), the logits stage reads
each split through `split_logits`.

In a config of several tasks, `{task}` in a file path stands for the task's name
(`files: {train: scores/{task}/train.npy, ...}`, the layout `mtkd export-logits` writes): each task reads
its own files, and only for the splits it has (an extra eval set belongs to one task)."""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np

from ..config import TeacherConfig
from ..errors import MtkdError
from ..io import atomic_write_json, load_npy, read_json, sha256_file
from ..logits import SPLITS, check_array
from .labels import _norm, column_order
from .provenance import sidecar, train_logits_provenance

LOG_FLOOR = -30.0
TEXT_FORMATS = (".csv", ".jsonl")


def for_task(cfg: TeacherConfig, task: str, splits) -> TeacherConfig:
    """The teacher as task `task` reads it: `{task}` in its file paths replaced by the task's name, and
    only the files of the splits the task has (`splits`). Other kinds are returned as they are."""
    if cfg.kind != "logits" or not cfg.files:
        return cfg
    import dataclasses
    return dataclasses.replace(cfg, files={s: p.replace("{task}", task) for s, p in cfg.files.items() if s in splits})


def splits_of(cfg: TeacherConfig) -> list[str]:
    """The splits the teacher has files for: train, validation, eval, then any transfer / extra eval set."""
    return [*SPLITS, *(s for s in cfg.files if s not in SPLITS)]


def source_files(cfg: TeacherConfig) -> dict[str, Path]:
    """Every file the teacher reads (scores and .npy sidecars), by its name in the teacher's folder:
    `<split><suffix>` and `<split>.json`."""
    out = {}
    for split in splits_of(cfg):
        p = Path(cfg.files[split])
        out[f"{split}{p.suffix}"] = p
        if p.suffix == ".npy":
            out[f"{split}.json"] = sidecar(p)
    return out


def source_hashes(cfg: TeacherConfig) -> dict[str, str]:
    """sha256 of every file of a logits teacher (its stage key): changed scores, new teacher."""
    out = {}
    for name, p in source_files(cfg).items():
        if not p.is_file():
            what = "sidecar" if name.endswith(".json") else f"{name.split('.')[0]} scores file"
            raise MtkdError(f"teacher {cfg.name}: {what} not found: {p}")
        out[name] = sha256_file(p)
    return out


def to_logits(scores: np.ndarray, kind: str, where: str) -> np.ndarray:
    """float32 logits: logits as given; probabilities checked (in [0, 1], rows summing to 1 +- 0.01)
    and turned into log-probabilities clamped at LOG_FLOOR."""
    scores = check_array(np.asarray(scores, dtype=np.float64), where).astype(np.float64)
    if kind == "logits":
        return scores.astype(np.float32)
    sums = scores.sum(1)
    bad = np.flatnonzero((scores < 0).any(1) | (scores > 1).any(1) | (np.abs(sums - 1) > 0.01))
    if len(bad):
        i = int(bad[0])
        raise MtkdError(f"{where}: not probabilities: {len(bad)} rows outside [0, 1] or not summing to 1 (row {i}: "
                        f"{np.round(scores[i], 4).tolist()}); if they are logits, say scores: logits")
    return np.maximum(np.log(np.maximum(scores, np.exp(LOG_FLOOR))), LOG_FLOOR).astype(np.float32)


def _text_key(parts) -> tuple[str, ...]:
    """Texts are matched exactly: two texts that differ only in whitespace are two examples with their own
    scores (stripping would give both the scores of whichever row came last)."""
    return tuple(str(p) for p in parts)


def _missing_hint(missing: tuple[str, ...], table: dict) -> str:
    """A hint when a missing text is in the file with other surrounding whitespace."""
    loose = {tuple(p.strip() for p in k) for k in table}
    if tuple(p.strip() for p in missing) in loose:
        return " (it is in the file with other surrounding whitespace: texts must match exactly, as export-data writes them)"
    return ""


def read_text_scores(path: Path, label_names, where: str) -> dict:
    """{text tuple: scores row in the task's label order}, from CSV or JSONL (label columns by name)."""
    try:
        if path.suffix == ".csv":
            with open(path, encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
        raise MtkdError(f"{where}: unreadable {path.suffix[1:].upper()} file ({type(e).__name__}: {str(e)[:100]})") from None
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise MtkdError(f"{where}: no rows of columns (text and one column per label)")
    norm = {_norm(c): c for c in rows[0]}
    cols = [norm[_norm(n)] for n in label_names if _norm(n) in norm]
    if len(cols) != len(label_names):
        missing = [n for n in label_names if _norm(n) not in norm]
        raise MtkdError(f"{where}: no column for label(s) {', '.join(map(repr, missing))}; columns: {list(rows[0])}")
    text_cols = ["text"] if "text" in norm else ["text_a", "text_b"]
    if not all(c in norm for c in text_cols):
        raise MtkdError(f"{where}: no text column (text, or text_a and text_b for sentence pairs); columns: {list(rows[0])}")
    table: dict[tuple, np.ndarray] = {}
    for i, r in enumerate(rows):
        try:
            text = r[norm["text"]] if text_cols == ["text"] else [r[norm["text_a"]], r[norm["text_b"]]]
            key = _text_key(text if isinstance(text, list) else [text])
            row = np.array([float(r[c]) for c in cols])
        except (KeyError, TypeError, ValueError):
            raise MtkdError(f"{where}: row {i + 1} lacks a column or has a score that is not a number: "
                            f"{str(r)[:120]}") from None
        if key in table and not np.allclose(table[key], row, atol=1e-4):
            raise MtkdError(f"{where}: the text {' | '.join(key)[:60]!r} appears twice with different scores")
        table[key] = row
    return table


class FileTeacher:
    def __init__(self, cfg: TeacherConfig, label_names, seed: int = 0):
        self.cfg, self.label_names = cfg, tuple(label_names)
        self.files = {s: Path(cfg.files[s]) for s in splits_of(cfg)} if cfg.files else {}   # read from (after load: copies)
        self.sources = dict(self.files)   # the user's files, named in messages

    def _where(self, split: str) -> str:
        return f"teacher {self.cfg.name}: {split} file {self.sources[split]}"

    def split_logits(self, split: str, data) -> np.ndarray:
        """float32 [len(data), C] in the task's label order for the split `data` (a tasks.Split)."""
        if split not in self.files:   # config.validate asks for every split; a teacher.json of another config may lack it
            raise MtkdError(f"teacher {self.cfg.name}: no scores file for the {split} split; give files.{split}")
        path, where = self.files[split], self._where(split)
        if not path.is_file():
            raise MtkdError(f"{where} not found")
        if path.suffix == ".npy":
            return self._from_npy(split, path, data, where)
        if path.suffix not in TEXT_FORMATS:
            raise MtkdError(f"{where}: unknown format '{path.suffix}' (use .npy with a .json sidecar, .csv or .jsonl)")
        if self.cfg.scores is None:
            raise MtkdError(f"teacher {self.cfg.name}: say scores: logits or scores: probs for its {path.suffix} files")
        table = read_text_scores(path, self.label_names, where)
        keys = [_text_key(t) for t in data.texts]
        missing = [k for k in keys if k not in table]
        if missing:
            raise MtkdError(f"{where}: {len(missing)} of {len(keys)} {split} examples not found by text "
                            f"(first: {' | '.join(missing[0])[:80]!r}){_missing_hint(missing[0], table)}; export them "
                            f"with mtkd export-data")
        return to_logits(np.stack([table[k] for k in keys]) if keys else np.zeros((0, len(self.label_names))),
                         self.cfg.scores, where)

    def _from_npy(self, split, path, data, where) -> np.ndarray:
        side = sidecar(path)
        if not side.is_file():
            raise MtkdError(f"{where}: no sidecar {side.name} (label_names, kind, fingerprint) next to it")
        try:
            meta = read_json(side)
            names, kind, fingerprint = meta["label_names"], meta["kind"], meta["fingerprint"]
        except (ValueError, KeyError, TypeError):
            raise MtkdError(f"{side}: sidecar must be JSON with label_names, kind (logits or probs) and fingerprint") from None
        if kind not in ("logits", "probs"):
            raise MtkdError(f"{side}: kind must be logits or probs, got {kind!r}")
        expected = data.fingerprint(self.label_names)
        if fingerprint != expected:
            raise MtkdError(f"{where}: scores of another dataset (fingerprint {str(fingerprint)[:12]}, the task's {split} "
                            f"split is {expected[:12]}; see RUN/<task>/data/manifest.json or mtkd export-data)")
        try:
            arr = load_npy(path)
        except (ValueError, EOFError, OSError) as e:
            raise MtkdError(f"{where}: not a valid .npy array ({e})") from None
        arr = check_array(arr, where, len(data), len(names))
        order = column_order(names, self.label_names, f"{side} label_names")
        return to_logits(arr[:, order], kind, where)

    def logits(self, texts) -> np.ndarray:
        """By text, from the CSV/JSONL files (a .npy file is matched to a whole split, not to texts)."""
        if any(p.suffix == ".npy" for p in self.files.values()):
            raise MtkdError(f"teacher {self.cfg.name}: a .npy scores file is read per split, not per text")
        tables = [read_text_scores(p, self.label_names, self._where(s)) for s, p in self.files.items()]
        out = []
        for t in texts:
            row = next((tb[_text_key(t)] for tb in tables if _text_key(t) in tb), None)
            if row is None:
                raise MtkdError(f"teacher {self.cfg.name}: no scores for the text {' | '.join(t)[:80]!r}")
            out.append(row)
        return to_logits(np.stack(out) if out else np.zeros((0, len(self.label_names))), self.cfg.scores, self.cfg.name)

    def fit(self, train, validation, work_dir: Path) -> "FileTeacher":
        """Nothing to fit: the train and validation files are read and checked now, so a bad file fails
        in the teacher stage."""
        self.split_logits("train", train)
        self.split_logits("validation", validation)
        return self

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, p in source_files(self.cfg).items():
            shutil.copyfile(p, folder / name)
        atomic_write_json(folder / "teacher.json", {"files": {s: f"{s}{p.suffix}" for s, p in self.files.items()},
                                                    "scores": self.cfg.scores, "label_names": list(self.label_names)})

    def load(self, folder: Path) -> "FileTeacher":
        names = read_json(folder / "teacher.json")["files"]
        self.files = {s: folder / f for s, f in names.items()}
        return self


# ---------------------------------------------------------------- the other direction: files for a teacher elsewhere

def _text_columns(texts) -> list[str]:
    return ["text"] if not texts or len(texts[0]) == 1 else ["text_a", "text_b"]


def export_data(config_path, out: Path, fmt: str = "csv") -> list[Path]:
    """What a teacher elsewhere must score: per task, `<split>.csv|jsonl` (the text columns a logits
    teacher is matched by) and `fingerprints.json` (label names and each split's fingerprint, for .npy
    sidecars). Loads the data as a run of `config_path` would.

    Only `train` carries the gold `label` column: a teacher trains on train's labels, as the local
    teachers do (hf, cnn and tfidf fit on train alone; validation is never fitted on by a teacher).
    Validation, eval, the transfer set and the extra eval sets are written without it: those files go
    to an outside scorer, and validation's labels select and weight the teachers (fusion weights,
    calibration, teacher scores) while eval's are the reported numbers, so neither may be seen by what
    they judge."""
    from ..config import load_config
    from ..io import atomic_write_text
    from ..tasks import load_task
    if fmt not in ("csv", "jsonl"):
        raise MtkdError(f"--format must be csv or jsonl, got '{fmt}'")
    written = []
    for tcfg in load_config(config_path).tasks:
        task = load_task(tcfg)
        folder = Path(out) / task.name
        for split, s in task.teacher_splits().items():   # + transfer (no label) and extra eval sets
            labelled = split == "train"   # the only gold labels that leave mtkd (see above)
            cols = _text_columns(s.texts)
            rows = [{**dict(zip(cols, t)), **({"label": task.label_names[y]} if labelled else {})}
                    for t, y in zip(s.texts, s.labels.tolist())]
            cols += ["label"] if labelled else []
            if fmt == "jsonl":
                text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            else:
                buf = io.StringIO()
                w = csv.DictWriter(buf, cols, lineterminator="\n")
                w.writeheader()
                w.writerows(rows)
                text = buf.getvalue()
            atomic_write_text(folder / f"{split}.{fmt}", text)
            written.append(folder / f"{split}.{fmt}")
        atomic_write_json(folder / "fingerprints.json", {"task": task.name, "label_names": list(task.label_names),
                                                         "fingerprints": task.all_fingerprints(),
                                                         "examples": {k: len(v) for k, v in task.teacher_splits().items()}})
        written.append(folder / "fingerprints.json")
    return written


def export_logits(run_dir: Path, teacher: str, out: Path) -> list[Path]:
    """A teacher's verified logits from a run, as the files of a `kind: logits` teacher: per task,
    `<split>.npy` + `<split>.json` (label_names, kind logits, the split's fingerprint)."""
    from ..config import load_config
    from ..io import save_npy
    from ..logits import read_logits
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    if teacher not in [t.name for t in cfg.teachers]:
        raise MtkdError(f"{run_dir} has no teacher '{teacher}'; its teachers: {', '.join(t.name for t in cfg.teachers)}")
    tcfg_teacher = next(t for t in cfg.teachers if t.name == teacher)
    written = []
    for tcfg in cfg.tasks:
        provenance = train_logits_provenance(for_task(tcfg_teacher, tcfg.name, ("train",)))
        data = run_dir / tcfg.name / "data" / "manifest.json"
        if not data.is_file():
            raise MtkdError(f"{run_dir}: task {tcfg.name} has no data stage yet; run extract-logits first")
        m = read_json(data)
        for split in m["splits"]:   # train, validation, eval (+ transfer and extra eval sets)
            fp, n = m["splits"][split]["fingerprint"], m["splits"][split]["n"]
            arr = read_logits(run_dir / tcfg.name / "logits" / teacher, split, m["label_names"], fp, n)
            folder = Path(out) / tcfg.name
            save_npy(folder / f"{split}.npy", arr)
            meta = {"label_names": m["label_names"], "kind": "logits", "fingerprint": fp, "teacher": teacher,
                    "source": str(run_dir)}
            if split == "train":   # whose rows they are: the run it came from knows (read back by exported_provenance)
                meta["train_logits"] = provenance
            atomic_write_json(folder / f"{split}.json", meta)
            written += [folder / f"{split}.npy", folder / f"{split}.json"]
    return written
