"""`mtkd predict`: a trained student of a run labels new text.

The student is `RUN/<task>/students/<method>/model/` (saved by default, `student.save_model`), with
its tokenizer and `id2label`: the weights of the run seed (`students/<method>/`; the master table
reports the mean over the run's seeds). The default student is the analysis's selected student
(analysis/gap.py `selection`, read from the evaluate stage's manifest): the single- or
multi-teacher student with the highest official metric on validation, mean over the run's seeds,
first in config order on ties; `no_kd` and the teachers are never the default. It runs at the mixed
precision it was trained and evaluated at (the `mixed_precision` of its stage key, runtime.py).
Input: a CSV/TSV/JSONL/JSON/Parquet file with the task's text column(s) (read like task files,
readers.py); output: the text column(s), `pred` (the predicted label), `prob` (its probability) and
`prob_<label>` for every class."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import RunConfig, load_config, seeds_of
from .errors import MtkdError
from .io import atomic_write_text, read_json


@dataclass
class Student:
    """One saved student of a run: where it is and what its task needs."""
    run: Path
    task: str
    method: str
    folder: Path                       # RUN/<task>/students/<method>
    label_names: tuple[str, ...]
    text_columns: list[str]
    max_length: int
    batch_size: int
    seed: int = 0                      # the seed of these weights (students/<method>/: the run seed)
    seeds: tuple[int, ...] = ()        # the run's seeds: the master table reports the mean over them
    precision: str = "no"              # the mixed precision it was trained and evaluated at
    selected: bool = False             # the analysis's selected student (no --model)

    @property
    def model_dir(self) -> Path:
        return self.folder / "model"

    def load(self):
        """(model on this process's device, tokenizer)."""
        from .models import load_saved_classifier, load_tokenizer
        model = load_saved_classifier(self.model_dir)
        return model, load_tokenizer(str(self.model_dir))

    def logits(self, texts: list[tuple[str, ...]], model=None, tok=None, precision: str | None = None) -> np.ndarray:
        """float32 [N, C], at the student's precision unless `precision` says otherwise."""
        from .models import encode
        from .train import predict
        if model is None:
            model, tok = self.load()
        with at_precision(precision or self.precision):
            return predict(model, encode(tok, texts, self.max_length), self.batch_size)

    def shipped(self) -> str:
        """One line: which student, whose weights, at which precision."""
        how = "the analysis's selected student" if self.selected else "named with --model"
        mean = (f"; the master table reports the mean over seeds {', '.join(map(str, self.seeds))}"
                if len(self.seeds) > 1 else "")
        return (f"{self.task}/{self.method} ({how}): the weights of seed {self.seed} (the run seed){mean}; "
                f"mixed precision {self.precision}")


@contextlib.contextmanager
def at_precision(value: str):
    """The block runs at mixed precision `value`; the process's previous one is restored after it."""
    from .runtime import precision, set_precision
    before = precision()
    set_precision(value)
    try:
        yield
    finally:
        set_precision(before)


def find_student(run_dir, method: str | None = None, task: str | None = None) -> Student:
    """The student `method` of `task` (default: the run's only task) in a finished run; `method`
    None = the analysis's selected student (selected_student)."""
    from .pipeline.plan import planned_students
    from .tasks import text_columns
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise MtkdError(f"{run} is not a run directory (no config.yaml)")
    cfg = load_config(run / "config.yaml")
    tcfg = _task(cfg, task)
    data = run / tcfg.name / "data" / "manifest.json"
    if not data.is_file():
        raise MtkdError(f"{run}: task '{tcfg.name}' has no data stage yet; run the pipeline first")
    meta = read_json(data)
    planned = [s.method for s in planned_students(cfg)]
    selected = method is None
    if selected:
        method = selected_student(run, tcfg.name)
    elif method not in planned:
        raise MtkdError(f"{run}: no student '{method}' in this run; students: {', '.join(planned)}")
    folder = run / tcfg.name / "students" / method
    if not (folder / "manifest.json").is_file():
        raise MtkdError(f"{run}: student '{method}' of task '{tcfg.name}' is not trained yet; run the pipeline first")
    if not (folder / "model" / "config.json").is_file():
        raise MtkdError(f"{run}: student '{method}' has no saved weights (trained with student.save_model=false); "
                        f"retrain it with student.save_model=true")
    key = read_json(folder / "manifest.json").get("key") or {}
    return Student(run, tcfg.name, method, folder, tuple(meta["label_names"]), text_columns(tcfg),
                   cfg.student.max_length, cfg.eval_batch_size, int(key.get("seed", cfg.seed)), tuple(seeds_of(cfg)),
                   key.get("mixed_precision", "no"), selected)


def selected_student(run: Path, task: str) -> str:
    """The analysis's selected student of `task`: its own selection code (analysis/gap.py `selection`,
    "student") on the evaluate stage's manifest, i.e. the single- or multi-teacher student with the
    highest validation official metric, mean over the run's seeds, first in config order on ties."""
    from .analysis.gap import SELECTED_ON, selection
    from .analysis.load import load_task
    manifest = run / task / "eval" / "manifest.json"
    if not manifest.is_file():
        raise MtkdError(f"{run}: task '{task}' is not evaluated yet ({manifest.relative_to(run)}), and its "
                        f"{SELECTED_ON} metrics select the default student; run the pipeline to the end or name one "
                        f"with --model")
    chosen = selection(load_task(manifest, "eval"))["student"]
    if chosen is None:
        raise MtkdError(f"{run}: task '{task}' has no single- or multi-teacher student with a {SELECTED_ON} metric "
                        f"to select; name a student with --model")
    return chosen.method


def _task(cfg: RunConfig, name: str | None):
    names = [t.name for t in cfg.tasks]
    if name is None:
        if len(names) > 1:
            raise MtkdError(f"the run has several tasks ({', '.join(names)}); name one with --task")
        return cfg.tasks[0]
    if name not in names:
        raise MtkdError(f"no task '{name}' in the run; tasks: {', '.join(names)}")
    return cfg.tasks[names.index(name)]


def read_inputs(path, columns: list[str]) -> list[tuple[str, ...]]:
    """The text column(s) of an input file, exactly as written."""
    from .readers import read_table
    table = read_table(path, columns)
    for c in columns:
        for i, v in enumerate(table.columns[c], 1):
            if not isinstance(v, str):
                raise MtkdError(f"{path}: example {i}: column '{c}' must hold text, got {type(v).__name__}")
    return list(zip(*(table.columns[c] for c in columns)))


def predict_file(student: Student, input_path, output_path=None) -> tuple[str, int]:
    """Writes the predictions (CSV, or JSONL when `output_path` ends in .jsonl; stdout when None), after
    one line saying which student and weights label them (on stderr when the predictions go to stdout).
    Returns (the text written, the number of examples)."""
    texts = read_inputs(input_path, student.text_columns)
    print(f"predicting with {student.shipped()}", file=sys.stdout if output_path is not None else sys.stderr)
    probs = torch.softmax(torch.from_numpy(student.logits(texts)), -1).numpy()
    names = student.label_names
    rows = []
    for text, p in zip(texts, probs):
        k = int(p.argmax())
        rows.append({**dict(zip(student.text_columns, text)), "pred": names[k], "prob": float(p[k]),
                     **{f"prob_{n}": float(p[j]) for j, n in enumerate(names)}})
    if output_path is not None and Path(output_path).suffix.lower() == ".jsonl":
        out = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=[*student.text_columns, "pred", "prob", *(f"prob_{n}" for n in names)],
                           lineterminator="\n")
        w.writeheader()
        w.writerows({k: (f"{v:.6f}" if isinstance(v, float) and math.isfinite(v) else v) for k, v in r.items()} for r in rows)
        out = buf.getvalue()
    if output_path is None:
        sys.stdout.write(out)
    else:
        atomic_write_text(Path(output_path), out)
    return out, len(rows)
