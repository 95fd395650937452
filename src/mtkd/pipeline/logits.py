"""Stage `RUN/<task>/logits/<teacher>[@seed<S>]`: a teacher's logits on every split it labels, a logit store
(mtkd.logits: every read checks fingerprints, label order, shapes and hashes).

Reads: the teacher stage's model (or, for train with crossfit, its out-of-fold logits; a logits-file
teacher's scores per split) and every split: train, validation, eval, transfer and the extra eval sets.
Keyed on: the teacher's stage key and output hashes, the label names and every split's fingerprint.
Writes: `<split>.npy` (float32 [N, C]); records the store's fields (logits.store_fields), the seed and
whether train is out of fold.

Also here: the readers of finished stores (teacher_logits) and `mtkd verify-logits` (verify_run)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import load_config
from ..errors import MtkdError
from ..faults import failpoint
from ..io import load_npy, read_json, save_npy
from ..logits import check_array, read_logits, store_fields
from ..tasks import TaskData, load_task
from ..teachers import load_teacher
from ..teachers.crossfit import OUT_OF_FOLD
from . import teachers
from .context import RunContext


def key(run: RunContext, task: TaskData, t) -> dict:
    teacher_manifest = read_json(run.teacher_dir(task.name, t) / "manifest.json")
    return {"teacher": teachers.key(run, task, t), "teacher_outputs": teacher_manifest["outputs"],
            "label_names": task.label_names, "fingerprints": task.all_fingerprints()}


def build(run: RunContext, task: TaskData, t, tmp) -> dict:
    t = teachers.for_task(task, t)
    tdir = run.teacher_dir(task.name, t)
    teacher = load_teacher(t, task.label_names, run.teacher_seed(t), tdir / "model", run.cfg.eval_batch_size)
    arrays = {}
    for split, s in task.teacher_splits().items():   # + transfer and extra eval sets
        where = f"teacher {t.name} on {split}"
        if split == "train" and t.crossfit:   # the out-of-fold logits of the teacher stage
            where += " (out of fold)"
            logits = load_npy(tdir / OUT_OF_FOLD)
        elif hasattr(teacher, "split_logits"):   # kind logits: scores read per split (teachers/files.py)
            logits = teacher.split_logits(split, s)
        else:
            logits = teacher.logits(s.texts)
        arrays[split] = check_array(logits, where, len(s), task.num_labels)
        save_npy(tmp / f"{split}.npy", arrays[split])
        failpoint("logits:split_written")
    return {**store_fields(t.name, task.label_names, arrays, task.all_fingerprints()),
            "seed": run.teacher_seed(t), "train_out_of_fold": t.crossfit}


def stage(run: RunContext, task: TaskData, t) -> dict:
    return run.stage(run.logits_dir(task.name, t.name), key(run, task, t), lambda tmp, work: build(run, task, t, tmp))


def teacher_logits(run: RunContext, task: TaskData, names, split: str) -> np.ndarray:
    """[K, N, C] verified cached logits of teachers `names` on `split` (transfer and extra sets too)."""
    fps, n_split = task.all_fingerprints(), len(task.teacher_splits()[split])
    return np.stack([read_logits(run.logits_dir(task.name, n), split, task.label_names, fps[split], n_split)
                     for n in names])


def verify_run(run_dir: Path) -> tuple[list[str], list[str]]:
    """`mtkd verify-logits`: for every logit store of a run, manifest, hashes, shapes, NaN/inf, alignment with
    the dataset (fingerprints and labels), and each teacher's accuracy against the labels. Returns (report
    lines, problems)."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    lines, problems = [], []
    for tcfg in cfg.tasks:
        task = load_task(tcfg)
        fps = task.all_fingerprints()
        for teacher in RunContext(cfg, run_dir).teacher_folders():   # every seed's, with reseed_teachers
            folder = run_dir / task.name / "logits" / teacher
            for split, s in task.teacher_splits().items():   # + transfer and extra eval sets
                try:
                    arr = read_logits(folder, split, task.label_names, fps[split], len(s))
                except MtkdError as e:
                    problems.append(str(e))
                    continue
                acc = f"acc {100 * float((arr.argmax(1) == s.labels).mean()):6.2f}%" if (s.labels >= 0).all() else "unlabelled"
                lines.append(f"ok  {task.name:8s} {teacher:16s} {split:10s} {arr.shape[0]:>7d}x{arr.shape[1]}  {acc}")
    return lines, problems
