"""Stage `RUN/<task>/students/<method>[@seed<S>]`: one student (plan.Student: no_kd, kd_<teacher> or
multi_<strategy>) distilled with recipe.Recipe -- the one place where distillation happens; this module
only chooses what goes in and keeps what comes out.

Reads: the train split (and, for a KD student with `use_transfer`, the transfer set: KD term only), the
teachers' stored logits (cached mode; online mode runs the teacher models), validation (teacher weights and
calibration, the auto temperature, the per-epoch metric) and the splits it is scored on.
Keyed on: the student config (gate fields only for a learned gate, sparsity fields only when sparse), the
method, seed, label names, fingerprints, length grouping, runtime and the algorithm versions of fusion,
losses, recipe, train and carve; a KD student also on T, alpha, strategy, mode, the task's metric and
positive class, the hash of every teacher file it reads, its strategy's options, calibrate and the
temperature grid; the transfer and extra eval sets when it uses them. The teachers' order is recorded.
Writes: `logits_<split>.npy` (validation, eval, every extra eval set), `metrics.json`, `gate.json` (learned
gate), `model/` (save_model); records its metrics, teachers, chosen temperature (and the validation score
of each grid value), the teachers' validation scores and temperatures, sparsity and the transfer size."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from .. import carve as _carve, fusion as _fusion, losses as _losses, recipe as _recipe, sparsity, stages
from .. import train as _train
from ..fusion import make_strategy
from ..io import atomic_write_json, read_json, save_npy
from ..models import encode, load_classifier, load_tokenizer
from ..recipe import Recipe, cached_teachers, fit_on_validation, gate_record, online_teachers, pooled_features
from ..registry import LEARNABLE, OPTIONS, SPLITS
from ..tasks import Split, TaskData, compute_metrics
from ..teachers import load_teacher
from ..train import TrainSpec, predict, train
from .context import RunContext
from .logits import teacher_logits
from .plan import Student


def key(run: RunContext, task: TaskData, s: Student) -> dict:
    cfg, st, d = run.cfg, run.cfg.student, run.cfg.distill
    student = dataclasses.asdict(st)
    if s.strategy not in LEARNABLE:   # the gate's settings do not touch other students
        student = {k: v for k, v in student.items() if not k.startswith("gate_")}
    if not st.sparsity:               # dense: the sparsity settings do not touch it (older caches stay valid)
        student = {k: v for k, v in student.items() if not k.startswith("sparsity")}
    out = {"student": student, "method": s.method, "seed": cfg.seed, "label_names": task.label_names,
           "fingerprints": task.fingerprints(), "length_grouping": cfg.length_grouping, **run.runtime_key(),
           stages.ALGORITHM: stages.algorithm(_fusion, _losses, _recipe, _train, _carve)}
    transfer = uses_transfer(run, task, s)
    read = {f"{split}.npy" for split in (*SPLITS, *(["transfer"] if transfer else []))}   # teacher files it reads
    if s.type != "baseline":   # the metric picks the `weighted` teacher scores
        out.update(temperature=d.temperature, alpha=d.alpha, strategy=s.strategy, mode=d.mode, metric=task.metric,
                   pos_label=task.pos_label,
                   teachers={n: {f: h for f, h in read_json(run.logits_dir(task.name, n) / "manifest.json")
                                 ["outputs"].items() if f in read} for n in s.teachers})
        # new settings enter the key only when they act, so caches of runs without them stay valid
        out.update({f: getattr(d, f) for f in OPTIONS.get(s.strategy, {})})
        if d.calibrate:
            out["calibrate"] = True
        if d.temperature == "auto":
            out["temperature_grid"] = d.temperature_grid
    elif task.num_labels == 2 and task.pos_label != 1:   # its metrics.json's binary F1 scores that class
        out["pos_label"] = task.pos_label
    fps = task.all_fingerprints()
    if transfer:   # trained on train + the transfer set (KD only there)
        out["transfer"] = fps["transfer"]
    if task.extra:   # its logits on the extra eval sets are written at the end of its stage
        out["extra_eval"] = {k: fps[k] for k in task.extra}
    return out


def stage(run: RunContext, task: TaskData, s: Student) -> dict:
    # the teachers' order is an input (the gate's k-th output weighs the k-th teacher), which the key's
    # canonical form (sorted dict keys) loses: checked against the order the manifest records
    return run.stage(run.student_dir(task.name, s.method), key(run, task, s),
                     lambda tmp, work: build(run, task, s, tmp, work), recorded={"teachers": list(s.teachers)})


def uses_transfer(run: RunContext, task: TaskData, s: Student) -> bool:
    """A KD student learns from the task's transfer set too (distill.use_transfer); no-KD never does, nor
    does any student at alpha = 0 (its loss is CE alone: unlabelled rows would only dilute its batches)."""
    d = run.cfg.distill
    return s.type != "baseline" and d.use_transfer and d.alpha > 0 and task.transfer is not None


def training_set(run: RunContext, task: TaskData, s: Student) -> Split:
    """What student `s` trains on: train, then (uses_transfer) the transfer set with labels -1, on which
    the recipe's loss is the KD term alone."""
    train_split = task.splits["train"]
    if not uses_transfer(run, task, s):
        return train_split
    return Split([*train_split.texts, *task.transfer.texts],
                 np.concatenate([train_split.labels, task.transfer.labels]))


def build(run: RunContext, task: TaskData, s: Student, tmp: Path, work: Path) -> dict:
    """Distil one student with recipe.Recipe; with `temperature: auto` one per grid value, the
    validation-best kept. Writes its validation/eval logits, metrics (and gate.json for a gate)."""
    cfg, st, d = run.cfg, run.cfg.student, run.cfg.distill
    kd = s.type != "baseline"
    tok = load_tokenizer(st.model, st.trust_remote_code)
    train_set = training_set(run, task, s)
    data = encode(tok, train_set.texts, st.max_length)
    labels = torch.as_tensor(train_set.labels)
    scored = {"validation": task.splits["validation"], "eval": task.splits["eval"], **task.extra}
    encoded = {split: encode(tok, sp.texts, st.max_length) for split, sp in scored.items()}
    info, teachers, fitted = {}, None, None
    if uses_transfer(run, task, s):
        info["transfer"] = len(task.transfer)
    if kd:
        val = task.splits["validation"]
        fitted = fit_on_validation(teacher_logits(run, task, s.teachers, "validation"), val.labels,
                                   task.metric, task.num_labels, task.pos_label)
        info["teacher_validation_scores"] = dict(zip(s.teachers, fitted.scores.tolist()))
        info["teacher_calibration_temperatures"] = dict(zip(s.teachers, fitted.temperatures.tolist()))
        teachers = target_source(run, task, s.teachers, train_set, uses_transfer(run, task, s))
    grid = d.temperature_grid if d.temperature == "auto" and kd else [d.temperature]
    best = None
    for T in grid:
        model = load_classifier(st.model, task.num_labels, st.layers, cfg.seed, st.trust_remote_code, st.pooling)
        strategy = None
        if kd:
            torch.manual_seed(cfg.seed + 1)   # the gate's initialisation
            strategy = make_strategy(s.strategy, len(s.teachers), model.config.hidden_size, st.gate_hidden,
                                     dataclasses.asdict(d), st.gate_entropy, math.ceil(st.epochs))
        recipe = Recipe(labels, teachers, strategy, temperature=T if kd else 1.0,
                        alpha=d.alpha if kd else 0.0, fitted=fitted, calibrate=d.calibrate, names=s.teachers)
        spec = TrainSpec(st.epochs, st.lr, st.batch_size, st.weight_decay, st.warmup_ratio, cfg.seed,
                         cfg.length_grouping, st.gate_lr, st.max_grad_norm, st.grad_accum)
        pruner = sparsity.from_config(model, st)   # None for a dense student
        model = train(model, data, spec, recipe, work / f"T{T:g}" if len(grid) > 1 else work, recipe.gate,
                      recipe.wants_features, desc=f"{task.name} {s.method}" + (f" T={T:g}" if len(grid) > 1 else ""),
                      on_step=pruner and pruner.on_step, evaluate=validation_metric(run, task, encoded["validation"]))
        pruned = pruner.finish() if pruner else None   # masks folded in: the pruned student is evaluated and saved
        score = _score(task, "validation", predict(model, encoded["validation"], cfg.eval_batch_size))
        if len(grid) > 1:
            info.setdefault("temperature_grid_validation", {})[f"{T:g}"] = score
        if best is None or score > best[0]:
            best = (score, T, model, recipe, pruned)
    _, T, model, recipe, pruned = best
    if pruned is not None:   # the chosen grid point's sparsity, not the last one's
        info["sparsity"] = pruned
    if kd:
        info["temperature"] = T
    metrics = _write_outputs(run, task, s, model, recipe, tok, encoded, tmp, info)
    run.log(f"    {s.method + run.suffix(cfg.seed):24s} eval {task.metric} {metrics['eval'][task.metric]:.2f}"
            + (f" (T={T:g} of {', '.join(f'{t:g}' for t in grid)})" if len(grid) > 1 else ""))
    return {"method": s.method, "type": s.type, "teachers": list(s.teachers), "strategy": s.strategy,
            "seed": cfg.seed, "metrics": metrics, **info}


def _score(task: TaskData, split: str, logits: np.ndarray) -> float:
    """The task's official metric of `logits` on `split`."""
    return compute_metrics(task.splits[split].labels, logits.argmax(1), task.num_labels, task.pos_label)[task.metric]


def _write_outputs(run: RunContext, task: TaskData, s: Student, model, recipe, tok, encoded, tmp: Path,
                   info: dict) -> dict:
    """The chosen student's logits on every scored split, its gate record and weights; its metrics."""
    cfg = run.cfg
    metrics = {}
    for split in ("validation", "eval"):
        sp = task.splits[split]
        logits = predict(model, encoded[split], cfg.eval_batch_size)
        save_npy(tmp / f"logits_{split}.npy", logits)
        metrics[split] = compute_metrics(sp.labels, logits.argmax(1), task.num_labels, task.pos_label)
    for name in task.extra:   # the evaluate stage scores them
        save_npy(tmp / f"logits_{name}.npy", predict(model, encoded[name], cfg.eval_batch_size))
    if recipe.gate is not None:
        feats = pooled_features(model, encoded["eval"], cfg.eval_batch_size)
        record = gate_record(recipe.gate, s.teachers, feats, teacher_logits(run, task, s.teachers, "eval"))
        atomic_write_json(tmp / "gate.json", record)
        info["gate"] = record["train"]
    if cfg.student.save_model:   # with the task's label names, for mtkd predict / export and transformers
        model.config.id2label = dict(enumerate(task.label_names))
        model.config.label2id = {n: i for i, n in enumerate(task.label_names)}
        model.save_pretrained(tmp / "model", safe_serialization=True)
        tok.save_pretrained(tmp / "model")
    atomic_write_json(tmp / "metrics.json", metrics)
    return metrics


def validation_metric(run: RunContext, task: TaskData, data):
    """model -> {metric: value on validation} (`data`: validation encoded): what a tracked run logs per epoch."""
    def evaluate(model):
        return {task.metric: _score(task, "validation", predict(model, data, run.cfg.eval_batch_size))}
    return evaluate


def target_source(run: RunContext, task: TaskData, names, train_set: Split, transfer: bool):
    """idx -> teacher logits [K, B, C] of the student's `train_set` (train, then the transfer set when
    `transfer`): cached (a lookup by example index) or online (teachers run now)."""
    if run.cfg.distill.mode == "cached":
        logits = teacher_logits(run, task, names, "train")
        if transfer:
            logits = np.concatenate([logits, teacher_logits(run, task, names, "transfer")], axis=1)
        return cached_teachers(logits)
    by_name = {t.name: t for t in run.cfg.teachers}
    return online_teachers([load_teacher(by_name[n], task.label_names, run.teacher_seed(by_name[n]),
                                         run.teacher_dir(task.name, by_name[n]) / "model", run.cfg.eval_batch_size)
                            for n in names], train_set.texts)
