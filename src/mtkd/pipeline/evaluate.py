"""Stage `RUN/<task>/eval` (docs/run_dir.md): every model's eval and validation logits at each of its seeds,
metrics as the mean over seeds, the teachers' train logits (out of fold with crossfit) and the labels of
every split -- what the table, the analysis and the report read (they never read the other stages).

Reads: every teacher's logit store and every finished student folder (a student is listed once its run
seed is trained), each checked against its manifest.
Keyed on: the task, metric, positive class, fingerprints, T and alpha, and the output hashes of every
folder it reads (so it is rebuilt whenever one changes: a new seed, a retrained student).
Writes: `labels_<split>.npy`, `<folder>.eval.npy` / `.validation.npy` per model and seed, `<teacher>.train.npy`,
`<method>.<set>.npy` per extra eval set, `<method>.gate.json`, `predictions.csv`; records per model its
metrics (mean over seeds and per seed), files, teachers, strategy, temperature, transfer and train-logit
provenance."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from .. import stages
from ..config import seeds_of
from ..errors import MtkdError
from ..io import atomic_write_bytes, atomic_write_text, load_npy, read_json, save_npy
from ..logits import check_array, read_logits
from ..tasks import TaskData, compute_metrics
from ..teachers import train_logits_provenance
from .context import RunContext
from .plan import planned_students
from .teachers import for_task


def inputs(run: RunContext, task: TaskData) -> tuple[dict, dict]:
    """(teacher -> {seed: its logits folder}, student -> {seed: its folder}), the run seed first; a student is
    listed once its run seed is trained, with the seeds trained so far."""
    tdir = run.out / task.name
    views, teacher_views = run.views()
    teachers = {t.name: {v.teacher_seed(t): tdir / "logits" / v.teacher_folder(t) for v in teacher_views}
                for t in run.cfg.teachers}
    students = {}
    for s in planned_students(run.cfg):
        found = {v.cfg.seed: v.student_dir(task.name, s.method) for v in views}
        if (found[run.cfg.seed] / "manifest.json").is_file():
            students[s] = {seed: d for seed, d in found.items() if (d / "manifest.json").is_file()}
    return teachers, students


def key(run: RunContext, task: TaskData, teachers: dict, students: dict) -> dict:
    folders = [d for per in (*teachers.values(), *students.values()) for d in per.values()]
    read = {f"{d.parent.name}/{d.name}": read_json(d / "manifest.json")["outputs"] for d in folders}
    out = {"task": task.name, "metric": task.metric, "pos_label": task.pos_label, "fingerprints": task.fingerprints(),
           "inputs": read, "temperature": run.cfg.distill.temperature, "alpha": run.cfg.distill.alpha, "format": 2}
    if task.extra:   # a task without extra eval sets keeps its key
        out["extra_eval"] = {k: task.all_fingerprints()[k] for k in task.extra}
    return out


def stage(run: RunContext, task: TaskData) -> dict:
    teachers, students = inputs(run, task)
    # rebuilt rather than refused when stale: it holds nothing that is not in the stages it reads
    return stages.run(run.out / task.name / "eval", key(run, task, teachers, students),
                      lambda tmp, work: build(run, task, teachers, students, tmp), recompute=True, log=run.log,
                      collective=False)


def build(run: RunContext, task: TaskData, teachers: dict, students: dict, tmp: Path) -> dict:
    y = {split: sp.labels for split, sp in {**task.splits, **task.extra}.items()}
    for split in y:
        save_npy(tmp / f"labels_{split}.npy", y[split])
    fps = task.all_fingerprints()

    def teacher_split(folder, split):
        return read_logits(folder, split, task.label_names, fps[split], len(y[split]))

    def student_split(folder, split):
        return check_array(load_npy(folder / f"logits_{split}.npy"), str(folder), len(y[split]), task.num_labels)

    def scores(arr, split):
        return compute_metrics(y[split], arr.argmax(1), task.num_labels, task.pos_label)

    def entry(method, type_, per_seed: dict, read) -> dict:
        """The manifest entry of one model; writes <folder>.eval.npy / .validation.npy per seed."""
        files, val_files, seed_metrics = {}, {}, {}
        for seed, folder in per_seed.items():
            files[str(seed)], val_files[str(seed)] = f"{folder.name}.eval.npy", f"{folder.name}.validation.npy"
            seed_metrics[str(seed)] = {}
            for split, name in (("eval", files[str(seed)]), ("validation", val_files[str(seed)])):
                arr = read(folder, split)
                save_npy(tmp / name, arr)
                seed_metrics[str(seed)][split] = scores(arr, split)
        run_seed = str(next(iter(per_seed)))
        return {"method": method, "type": type_, "file": files[run_seed], "validation_file": val_files[run_seed],
                "metrics": mean_metrics([m["eval"] for m in seed_metrics.values()]),
                "validation_metrics": mean_metrics([m["validation"] for m in seed_metrics.values()]),
                "seeds": list(per_seed), "seed_files": files, "seed_validation_files": val_files,
                "seed_metrics": seed_metrics, **extra_entry(method, next(iter(per_seed.values())), read)}

    def extra_entry(method, folder, read) -> dict:
        """The run seed's logits and metrics on each extra eval set: <method>.<set>.npy (docs/run_dir.md)."""
        if not task.extra:
            return {}
        files = {k: f"{method}.{k}.npy" for k in task.extra}
        metrics = {}
        for k, name in files.items():
            arr = read(folder, k)
            save_npy(tmp / name, arr)
            metrics[k] = scores(arr, k)
        return {"extra_files": files, "extra_metrics": metrics}

    models, train_files = [], {}
    provenance = {t.name: train_logits_provenance(for_task(task, t)) for t in run.cfg.teachers}
    for n, per in teachers.items():
        models.append({**entry(n, "teacher", per, teacher_split), "train_logits": provenance.get(n, "unknown")})
        train_files[n] = f"{n}.train.npy"   # the run seed's teacher: what its students were distilled from
        save_npy(tmp / train_files[n], teacher_split(next(iter(per.values())), "train"))
    for s, per in students.items():
        for folder in per.values():
            _, problem = stages.check(folder, read_json(folder / "manifest.json")["key"])  # file hashes
            if problem:
                raise MtkdError(f"{problem}; pass --recompute to rebuild it")
        e = entry(s.method, s.type, per, student_split)
        if s.type != "baseline":
            run_manifest = read_json(next(iter(per.values())) / "manifest.json")
            e.update(teachers=list(s.teachers), strategy=s.strategy, temperature=run_manifest.get("temperature"))
            if run_manifest.get("transfer"):   # distilled on train + this many transfer examples
                e["transfer"] = run_manifest["transfer"]
        gate = next(iter(per.values())) / "gate.json"   # a learned gate's record (run seed)
        if gate.is_file():
            atomic_write_bytes(tmp / f"{s.method}.gate.json", gate.read_bytes())
            e["gate_file"] = f"{s.method}.gate.json"
        models.append(e)
    write_predictions(tmp / "predictions.csv", task, models, tmp)
    return {"task": task.name, "label_names": list(task.label_names), "metric": task.metric, "pos_label": task.pos_label,
            "metric_columns": task.metric_columns, "temperature": reported_temperature(run, models),
            "alpha": run.cfg.distill.alpha, "seeds": seeds_of(run.cfg),
            "reseed_teachers": run.cfg.reseed_teachers, "models": models, "teachers": list(teachers),
            "validation_files": {m["method"]: m["validation_file"] for m in models if m["type"] == "teacher"},
            "train_files": train_files, "labels_eval": "labels_eval.npy",
            "labels_validation": "labels_validation.npy", "labels_train": "labels_train.npy",
            "n_train": len(task.splits["train"]),
            **({"transfer": task.info["transfer"]} if task.transfer is not None else {}),
            "extra_eval": {k: {"labels": f"labels_{k}.npy", "size": len(v)} for k, v in task.extra.items()}}


def mean_metrics(per_seed: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([m[k] for m in per_seed])) for k in per_seed[0]}


def reported_temperature(run: RunContext, models: list[dict]) -> float:
    """The distillation T (with `temperature: auto`, the one chosen most often, the smaller on ties)."""
    if run.cfg.distill.temperature != "auto":
        return run.cfg.distill.temperature
    chosen = [m["temperature"] for m in models if m.get("temperature") is not None]
    return min(set(chosen), key=lambda t: (-chosen.count(t), t)) if chosen else 1.0


def write_predictions(path: Path, task: TaskData, models: list[dict], folder: Path):
    """Per eval example: text, gold label, and each model's predicted label and its probability."""
    ev = task.splits["eval"]
    probs = {m["method"]: torch.softmax(torch.from_numpy(load_npy(folder / m["file"])), -1).numpy() for m in models}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "text", "label", *[f"{m}_{c}" for m in probs for c in ("pred", "prob")]])
    names = task.label_names
    for i, (text, y) in enumerate(zip(ev.texts, ev.labels.tolist())):
        row = [i, " [SEP] ".join(text), names[y]]
        for p in probs.values():
            k = int(p[i].argmax())
            row += [names[k], f"{p[i, k]:.4f}"]
        w.writerow(row)
    atomic_write_text(path, buf.getvalue())
