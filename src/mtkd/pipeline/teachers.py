"""Stage `RUN/<task>/teachers/<teacher>[@seed<S>]`: one teacher fitted on the task (mtkd.teachers does the
fitting; a new teacher kind goes there and into config.TEACHER_KINDS / TEACHER_FIELDS, not here).

Reads: the train and validation splits (with `bag: s`, a bootstrap resample of train drawn with seed s).
Keyed on: the fields the teacher's kind reads (config.teacher_fields), its effective seed, the label names,
the train and validation fingerprints, the algorithm versions of mtkd.teachers and carve (and train.py for
the kinds it trains: hf, cnn, with the length grouping, processes and mixed precision); a logits-file
teacher on its files' sha256; a cross-fitted one on the train split's content groups.
Writes: `model/` (the teacher as it saves itself) and, with `crossfit: k`, `train_out_of_fold.npy` (each
train row labelled by a copy fitted on the other folds); records the teacher, its seed and crossfit."""
from __future__ import annotations

import hashlib

from .. import carve as _carve, stages, teachers as _teachers, train as _train
from ..config import teacher_fields
from ..io import save_npy
from ..tasks import TaskData
from ..teachers import make_teacher, source_hashes
from ..teachers.crossfit import OUT_OF_FOLD, out_of_fold_logits
from ..teachers.files import for_task as _files_for_task
from .context import RunContext


def for_task(task: TaskData, t):
    """A logits-file teacher's `{task}` paths filled in, and only the files of this task's splits."""
    return _files_for_task(t, task.name, task.teacher_splits())


def key(run: RunContext, task: TaskData, t) -> dict:
    t = for_task(task, t)
    # the effective seed, once: a teacher pinned to the seed it would get anyway has the same key,
    # so a seed sweep that pins its teachers reuses them (and keys of unpinned teachers are unchanged).
    # Only the fields the teacher's kind reads (config.teacher_fields): an HF-only change keeps TF-IDF teachers.
    fps = task.fingerprints()
    out = {"teacher": teacher_fields(t), "seed": run.teacher_seed(t), "label_names": task.label_names,
           "fingerprints": {"train": fps["train"], "validation": fps["validation"]},
           stages.ALGORITHM: stages.algorithm(_teachers, _carve, *((_train,) if t.kind in ("hf", "cnn") else ()))}
    if t.kind in ("hf", "cnn"):   # the kinds trained with train.py's batches
        out["length_grouping"] = run.cfg.length_grouping
        out.update(run.runtime_key())
    if t.kind == "logits":   # a teacher read from files: new scores, new teacher
        out["files_sha256"] = source_hashes(t)
    if t.crossfit and task.splits["train"].groups is not None:   # folds keep each content group whole
        out["train_groups"] = hashlib.sha256(task.splits["train"].groups.tobytes()).hexdigest()
    return out


def build(run: RunContext, task: TaskData, t, tmp, work) -> dict:
    t = for_task(task, t)
    seed = run.teacher_seed(t)

    def make():
        return make_teacher(t, task.label_names, seed, run.cfg.eval_batch_size, run.cfg.length_grouping)
    train_split, val = task.splits["train"], task.splits["validation"]
    fit_on = train_split if t.bag is None else train_split.subset(_carve.bootstrap(len(train_split), t.bag))
    make().fit(fit_on, val, work).save(tmp / "model")
    if t.crossfit:   # train logits out-of-fold: each fold labelled by a copy fitted on the others
        oof = out_of_fold_logits(make, train_split, val, t.crossfit, seed, task.num_labels,
                                 work / "crossfit", t.name, groups=train_split.groups)
        save_npy(tmp / OUT_OF_FOLD, oof)
    return {"teacher": t.name, "seed": seed, "crossfit": t.crossfit, **({"bag": t.bag} if t.bag is not None else {})}


def stage(run: RunContext, task: TaskData, t) -> dict:
    return run.stage(run.teacher_dir(task.name, t), key(run, task, t),
                     lambda tmp, work: build(run, task, t, tmp, work))
