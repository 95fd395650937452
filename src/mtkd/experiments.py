"""The pipeline: config -> task -> teachers -> logit store -> fusion -> distil student -> evaluate
-> table (-> analyse -> report). Every box is a cached, resumable stage (see stages.py)."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import carve as _carve, fusion as _fusion, losses as _losses, recipe as _recipe, runtime, sparsity, stages
from . import teachers as _teachers, train as _train
from .config import RunConfig, dump_yaml, first_seeds, load_config, seeds_of, teacher_fields, to_dict, validate
from .errors import MtkdError
from .faults import failpoint
from .fusion import LEARNABLE, OPTIONS, make_strategy
from .io import atomic_write_bytes, atomic_write_json, atomic_write_text, load_npy, read_json, save_npy
from .logits import SPLITS, check_array, read_logits, store_fields
from .models import encode, load_classifier, load_tokenizer
from .recipe import Recipe, cached_teachers, fit_on_validation, gate_record, online_teachers, pooled_features
from .tasks import Split, TaskData, compute_metrics, load_task, table_values
from .teachers import load_teacher, make_teacher, source_hashes, train_logits_provenance
from .teachers.crossfit import OUT_OF_FOLD, check_folds, out_of_fold_logits
from .train import TrainSpec, predict, train

STAGES = ("teachers", "logits", "baseline", "single", "multi", "evaluate", "report")


@dataclasses.dataclass(frozen=True)
class Student:
    method: str             # no_kd | kd_<teacher> | multi_<strategy>
    type: str               # baseline | single | multi
    teachers: tuple[str, ...] = ()
    strategy: str | None = None


def planned_students(cfg: RunConfig) -> list[Student]:
    names = tuple(t.name for t in cfg.teachers)
    out = [Student("no_kd", "baseline")] if cfg.distill.baseline else []
    single = cfg.distill.single_teacher
    out += [Student(f"kd_{n}", "single", (n,), "average") for n in names
            if single is True or isinstance(single, list) and n in single]
    out += [Student(f"multi_{s}", "multi", names, s) for s in cfg.distill.strategies]
    return out


class Run:
    """One run directory: `Run(cfg, out).execute(until)` runs every stage up to `until`.

    Several seeds (`cfg.seeds`): `run.at_seed(S)` is the same run seen at seed S. Its students (and, with
    `reseed_teachers`, its teachers and their logits) are trained at S in `<name>@seed<S>` folders; the
    run seed's keep their plain names."""

    def __init__(self, cfg: RunConfig, out: Path, recompute: bool = False, log=print, run_seed: int | None = None,
                 donors: Sequence[Path] = ()):
        self.cfg, self.out, self.recompute, self._print = cfg, Path(out), recompute, log
        self.run_seed = cfg.seed if run_seed is None else run_seed
        self.donors = [Path(d) for d in donors]   # other runs whose stages with the same key are linked, not rebuilt

    def at_seed(self, seed: int) -> "Run":
        if seed == self.cfg.seed:
            return self
        view = Run(dataclasses.replace(self.cfg, seed=seed), self.out, self.recompute, self._print, self.run_seed,
                   self.donors)
        view.precision, view._bar = getattr(self, "precision", None), getattr(self, "_bar", None)
        return view

    def views(self) -> tuple[list["Run"], list["Run"]]:
        """(the run at every seed, the run at every seed its teachers are trained at), run seed first."""
        views = [self.at_seed(s) for s in seeds_of(self.cfg)]
        return views, views if self.cfg.reseed_teachers else views[:1]

    def _suffix(self, seed: int) -> str:
        return "" if seed == self.run_seed else f"@seed{seed}"

    def teacher_folder(self, t) -> str:
        """`<name>`, or `<name>@seed<S>` for an unpinned teacher re-trained at seed S (reseed_teachers)."""
        return t.name + ("" if t.seed is not None else self._suffix(self._teacher_seed(t)))

    def teacher_folders(self) -> list[str]:
        """Every teacher (and logits) folder name of the run, over the seeds its teachers are trained at."""
        return list(dict.fromkeys(v.teacher_folder(t) for v in self.views()[1] for t in self.cfg.teachers))

    def _logits_dir(self, task_name: str, name: str) -> Path:
        by_name = {t.name: t for t in self.cfg.teachers}
        return self.out / task_name / "logits" / self.teacher_folder(by_name[name])

    def student_dir(self, task_name: str, method: str) -> Path:
        return self.out / task_name / "students" / f"{method}{self._suffix(self.cfg.seed)}"

    # ------------------------------------------------------------------ driver
    def execute(self, until: str = "report") -> Path:
        if until not in STAGES:
            raise MtkdError(f"unknown stage '{until}'; stages: {', '.join(STAGES)}")
        upto = STAGES.index(until)
        runtime.check_tracker(self.cfg.tracking)
        self.precision = runtime.set_precision(runtime.resolve_precision(self.cfg.mixed_precision))
        with runtime.main_first():   # rank 0 first: it fills shared caches (hub downloads) the others then read
            tasks = [load_task(t) for t in self.cfg.tasks]   # bad data fails before anything is written
        for task in tasks:
            for t in self.cfg.teachers:
                if t.crossfit:
                    check_folds(t.crossfit, len(task.splits["train"]), f"task '{task.name}', teacher {t.name} crossfit")
        problem = self._prepare() if runtime.is_main() else None
        if runtime.broadcast(problem):
            raise MtkdError(problem)
        runtime.barrier()
        self._append(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} mtkd {' '.join(sys.argv[1:])} ({runtime.world()} process(es), "
                     f"mixed precision {self.precision}, tracking {self.cfg.tracking})")
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        wanted = {"baseline": 2, "single": 3, "multi": 4}
        n_seeds = len(seeds_of(self.cfg))
        n_teachers = (n_seeds if self.cfg.reseed_teachers else 1) * len(self.cfg.teachers)
        per_task = 1 + n_teachers * (1 + (upto >= 1)) + (upto >= 5) + \
            sum(upto >= wanted[s.type] for s in planned_students(self.cfg)) * n_seeds
        self._bar = tqdm(total=per_task * len(tasks), desc="pipeline", unit="stage", leave=False,
                         disable=None if runtime.is_main() else True)
        views, teacher_views = self.views()
        token = runtime.TRACKING.set(runtime.Tracking(self.cfg.tracking, self.out / "tracking", self.cfg.name)
                                     if self.cfg.tracking != "none" else None)
        try:
            self._stages(tasks, upto, wanted, views, teacher_views)
        finally:
            runtime.TRACKING.reset(token)
            self._bar.close()
        if upto >= 5 and runtime.is_main():
            self.write_master_table()
        if upto >= 6 and runtime.is_main():
            from .analysis.run import ensure_analysis
            from .report import build_report
            ensure_analysis(self.out, self.log)
            build_report(self.out)
        runtime.barrier()
        return self.out

    def _stages(self, tasks, upto, wanted, views, teacher_views):
        for task in tasks:
            self.log(f"[{task.name}] {', '.join(f'{k} {len(v)}' for k, v in task.teacher_splits().items())} examples")
            if task.transfer is not None:
                tr = task.info["transfer"]
                self.log(f"[{task.name}] transfer set: {tr['n']} unlabelled examples from "
                         f"{tr.get('file') or 'the train rows max_train_examples left unused'}; {tr['dropped_overlap']} "
                         f"text(s) sharing content with validation/eval dropped")
            self._data_stage(task)
            for v in teacher_views:
                for t in self.cfg.teachers:
                    v._teacher_stage(task, t)
            if upto >= 1:
                for v in teacher_views:
                    for t in self.cfg.teachers:
                        v._logits_stage(task, t)
                        v.flag_chance_teacher(task, t)
                for t in self.cfg.teachers:   # once per teacher and task (the run seed's teacher)
                    self.flag_in_sample_teacher(task, t)
            for v in views:
                for s in planned_students(self.cfg):
                    if upto >= wanted[s.type]:
                        v._student_stage(task, s)
            if upto >= 5:
                self._evaluate_stage(task)
                self._bar.update(1)

    def _prepare(self) -> str | None:
        """Rank 0: the run directory, its config.yaml and run.json; None, or what is wrong."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            probe = self.out / ".mtkd-write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            return f"output directory {self.out} is not writable: {e.strerror}"
        new = dump_yaml(self.cfg, self.out)
        path = self.out / "config.yaml"
        if path.is_file() and path.read_text(encoding="utf-8") != new and not self.recompute:
            # a hand-written config.yaml that resolves to the same run is fine, and so are other `seeds`
            # (adding seeds to a run trains the new ones; every seed's students have their own folders)
            # and so are the settings that change how a run executes, not what it computes (threads, tracking, ray)
            free = {"seeds": None, "threads": None, "tracking": None, "ray": None}
            diff = stages._first_difference({**to_dict(load_config(path)), **free}, {**to_dict(self.cfg), **free})
            if diff:
                return f"{self.out} holds a run of another config ({diff}); use another --out or pass --recompute"
        atomic_write_text(path, new)
        atomic_write_json(self.out / "run.json", {"versions": stages.versions(), "seed": self.cfg.seed,
                                                  "seeds": seeds_of(self.cfg)})
        return None

    def log(self, line: str) -> None:
        """Rank 0 prints `line` (around the progress bars) and appends it to RUN/log.txt."""
        if not runtime.is_main():
            return
        with tqdm.external_write_mode():
            self._print(line)
        self._append(line)

    def warn(self, line: str) -> None:
        """One line on stderr and in RUN/log.txt."""
        if runtime.is_main():
            with tqdm.external_write_mode():
                print(f"mtkd: warning: {line}", file=sys.stderr)
            self._append(f"warning: {line}")

    def _append(self, line: str) -> None:
        if runtime.is_main() and self.out.is_dir():
            with open(self.out / "log.txt", "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def _runtime_key(self) -> dict:
        """What changes a training's outcome besides its config: several processes (each update sees N
        batches) and mixed precision. Empty for one process in full precision, so such caches stay valid."""
        key = {"processes": runtime.world()} if runtime.world() > 1 else {}
        precision = getattr(self, "precision", None) or runtime.precision()
        return {**key, "mixed_precision": precision} if precision != "no" else key

    def stage(self, folder: Path, key: dict, build, collective: bool = True, recorded: dict | None = None):
        with runtime.tracking_as(str(Path(folder).relative_to(self.out))):
            manifest = stages.run(folder, key, build, recompute=self.recompute, log=self.log, collective=collective,
                                  donors=[d / Path(folder).relative_to(self.out) for d in self.donors],
                                  recorded=recorded)
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.update(1)
        return manifest

    # ------------------------------------------------------------------ stages
    def _data_stage(self, task: TaskData):
        key = {"task": task.name, "label_names": task.label_names, "metric": task.metric, "pos_label": task.pos_label,
               "fingerprints": task.all_fingerprints(),
               "grouping": {k: task.info["validation"][k] for k in ("group_by", "group_column")}}

        def build(tmp, work):
            splits = task.teacher_splits()   # transfer: label -1
            for name, s in splits.items():
                lines = (json.dumps({"text": list(t), "label": int(y)}, ensure_ascii=False) for t, y in zip(s.texts, s.labels))
                atomic_write_text(tmp / f"{name}.jsonl", "\n".join(lines) + "\n")
            return {"label_names": list(task.label_names), "metric": task.metric, "pos_label": task.pos_label,
                    "splits": {k: {"n": len(v), "fingerprint": key["fingerprints"][k]} for k, v in splits.items()},
                    "carve": task.info}   # how the splits were made: dropped rows, groups, validation overlap with train
        self.stage(self.out / task.name / "data", key, build, collective=False)

    def _teacher_seed(self, t) -> int:
        if t.seed is not None:
            return t.seed
        return self.cfg.seed if self.cfg.reseed_teachers else self.run_seed

    @staticmethod
    def _as_task_reads(task: TaskData, t):
        """A logits-file teacher's `{task}` paths filled in, and only the files of this task's splits."""
        from .teachers.files import for_task
        return for_task(t, task.name, task.teacher_splits())

    def _teacher_key(self, task: TaskData, t) -> dict:
        t = self._as_task_reads(task, t)
        # the effective seed, once: a teacher pinned to the seed it would get anyway has the same key,
        # so a seed sweep that pins its teachers reuses them (and keys of unpinned teachers are unchanged).
        # Only the fields the teacher's kind reads (config.teacher_fields): an HF-only change keeps TF-IDF teachers.
        fps = task.fingerprints()
        key = {"teacher": teacher_fields(t), "seed": self._teacher_seed(t), "label_names": task.label_names,
               "fingerprints": {"train": fps["train"], "validation": fps["validation"]},
               stages.ALGORITHM: stages.algorithm(_teachers, _carve, *((_train,) if t.kind in ("hf", "cnn") else ()))}
        if t.kind in ("hf", "cnn"):   # the kinds trained with train.py's batches
            key["length_grouping"] = self.cfg.length_grouping
            key.update(self._runtime_key())
        if t.kind == "logits":   # a teacher read from files: new scores, new teacher
            key["files_sha256"] = source_hashes(t)
        if t.crossfit and task.splits["train"].groups is not None:   # folds keep each content group whole
            key["train_groups"] = hashlib.sha256(task.splits["train"].groups.tobytes()).hexdigest()
        return key

    def _teacher_stage(self, task: TaskData, t):
        t = self._as_task_reads(task, t)
        seed = self._teacher_seed(t)

        def make():
            return make_teacher(t, task.label_names, seed, self.cfg.eval_batch_size, self.cfg.length_grouping)

        def build(tmp, work):
            train_split, val = task.splits["train"], task.splits["validation"]
            make().fit(train_split, val, work).save(tmp / "model")
            if t.crossfit:   # train logits out-of-fold: each fold labelled by a copy fitted on the others
                oof = out_of_fold_logits(make, train_split, val, t.crossfit, seed, task.num_labels,
                                         work / "crossfit", t.name, groups=train_split.groups)
                save_npy(tmp / OUT_OF_FOLD, oof)
            return {"teacher": t.name, "seed": seed, "crossfit": t.crossfit}
        return self.stage(self._teacher_dir(task, t), self._teacher_key(task, t), build)

    def _teacher_dir(self, task: TaskData, t) -> Path:
        return self.out / task.name / "teachers" / self.teacher_folder(t)

    def _logits_key(self, task: TaskData, t) -> dict:
        teacher_manifest = read_json(self._teacher_dir(task, t) / "manifest.json")
        return {"teacher": self._teacher_key(task, t), "teacher_outputs": teacher_manifest["outputs"],
                "label_names": task.label_names, "fingerprints": task.all_fingerprints()}

    def _logits_stage(self, task: TaskData, t):
        t = self._as_task_reads(task, t)
        tdir = self._teacher_dir(task, t)

        def build(tmp, work):
            teacher = load_teacher(t, task.label_names, self._teacher_seed(t), tdir / "model", self.cfg.eval_batch_size)
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
                    "seed": self._teacher_seed(t), "train_out_of_fold": t.crossfit}
        return self.stage(self._logits_dir(task.name, t.name), self._logits_key(task, t), build)

    def flag_chance_teacher(self, task: TaskData, t) -> None:
        """One warning line when a teacher's official metric on validation is no better than always
        predicting one class (a diverged fine-tuning: its soft labels would only add noise)."""
        val = task.splits["validation"]
        score = compute_metrics(val.labels, self.teacher_logits(task, [t.name], "validation")[0].argmax(1),
                                task.num_labels, task.pos_label)[task.metric]
        chance, label = chance_level(val.labels, task.num_labels, task.metric, task.pos_label)
        if score <= chance + CHANCE_MARGIN:
            self.warn(f"teacher {self.teacher_folder(t)} on {task.name} is at chance on validation ({task.metric} "
                      f"{score:.2f}; always predicting '{task.label_names[label]}' gives {chance:.2f}): it probably "
                      f"did not learn (diverged?); check its lr, epochs and data")

    def flag_in_sample_teacher(self, task: TaskData, t) -> None:
        """One warning line when a teacher's train logits are in-sample (it labels rows it was fitted on, so
        its soft labels on train are over-confident; `crossfit: k` makes them out-of-fold) or of unknown
        provenance (a checkpoint or score files made elsewhere); one more when its validation metric is far
        above its eval metric (VALIDATION_GAP): it may have been trained on the validation rows."""
        where = train_logits_provenance(self._as_task_reads(task, t))
        if where == "in-sample":
            self.warn(f"teacher {t.name} on {task.name}: its train logits are in-sample (it labels the rows it was "
                      f"fitted on); set crossfit: k for out-of-fold soft labels")
        elif where == "unknown":
            self.warn(f"teacher {t.name} on {task.name}: its train logits come from a model trained elsewhere; if it "
                      f"saw this train split (or the validation carved from it) its soft labels and validation "
                      f"scores are in-sample")
        val, ev = task.splits["validation"], task.splits["eval"]
        score = {split: compute_metrics(sp.labels, self.teacher_logits(task, [t.name], split)[0].argmax(1),
                                        task.num_labels, task.pos_label)[task.metric] for split, sp in
                 (("validation", val), ("eval", ev))}
        gap = score["validation"] - score["eval"]
        if gap > validation_gap_threshold(score["eval"], len(val), len(ev)):
            self.warn(f"teacher {t.name} on {task.name}: validation {task.metric} {score['validation']:.2f} is "
                      f"{gap:.2f} points above eval ({score['eval']:.2f}): it may have been trained on the "
                      f"validation rows (a checkpoint fine-tuned on the whole train split?)")

    def teacher_logits(self, task: TaskData, names, split: str) -> np.ndarray:
        """[K, N, C] verified cached logits of teachers `names` on `split` (transfer and extra sets too)."""
        fps, n_split = task.all_fingerprints(), len(task.teacher_splits()[split])
        return np.stack([read_logits(self._logits_dir(task.name, n), split, task.label_names, fps[split], n_split)
                         for n in names])

    def _student_stage(self, task: TaskData, s: Student):
        cfg, st, d = self.cfg, self.cfg.student, self.cfg.distill
        student = dataclasses.asdict(st)
        if s.strategy not in LEARNABLE:   # the gate's settings do not touch other students
            student = {k: v for k, v in student.items() if not k.startswith("gate_")}
        if not st.sparsity:               # dense: the sparsity settings do not touch it (older caches stay valid)
            student = {k: v for k, v in student.items() if not k.startswith("sparsity")}
        key = {"student": student, "method": s.method, "seed": cfg.seed, "label_names": task.label_names,
               "fingerprints": task.fingerprints(), "length_grouping": cfg.length_grouping, **self._runtime_key(),
               stages.ALGORITHM: stages.algorithm(_fusion, _losses, _recipe, _train, _carve)}
        transfer = self.uses_transfer(task, s)
        read = {f"{split}.npy" for split in (*SPLITS, *(["transfer"] if transfer else []))}   # teacher files it reads
        if s.type != "baseline":   # the metric picks the `weighted` teacher scores
            key.update(temperature=d.temperature, alpha=d.alpha, strategy=s.strategy, mode=d.mode, metric=task.metric,
                       pos_label=task.pos_label,
                       teachers={n: {f: h for f, h in read_json(self._logits_dir(task.name, n) / "manifest.json")
                                     ["outputs"].items() if f in read} for n in s.teachers})
            # new settings enter the key only when they act, so caches of runs without them stay valid
            key.update({f: getattr(d, f) for f in OPTIONS.get(s.strategy, {})})
            if d.calibrate:
                key["calibrate"] = True
            if d.temperature == "auto":
                key["temperature_grid"] = d.temperature_grid
        elif task.num_labels == 2 and task.pos_label != 1:   # its metrics.json's binary F1 scores that class
            key["pos_label"] = task.pos_label
        fps = task.all_fingerprints()
        if transfer:   # trained on train + the transfer set (KD only there)
            key["transfer"] = fps["transfer"]
        if task.extra:   # its logits on the extra eval sets are written at the end of its stage
            key["extra_eval"] = {k: fps[k] for k in task.extra}

        def build(tmp, work):
            return self._train_student(task, s, tmp, work)
        # the teachers' order is an input (the gate's k-th output weighs the k-th teacher), which the key's
        # canonical form (sorted dict keys) loses: checked against the order the manifest records
        return self.stage(self.student_dir(task.name, s.method), key, build, recorded={"teachers": list(s.teachers)})

    def uses_transfer(self, task: TaskData, s: Student) -> bool:
        """A KD student learns from the task's transfer set too (distill.use_transfer); no-KD never does, nor
        does any student at alpha = 0 (its loss is CE alone: unlabelled rows would only dilute its batches)."""
        d = self.cfg.distill
        return s.type != "baseline" and d.use_transfer and d.alpha > 0 and task.transfer is not None

    def training_set(self, task: TaskData, s: Student) -> Split:
        """What student `s` trains on: train, then (uses_transfer) the transfer set with labels -1, on which
        the recipe's loss is the KD term alone."""
        train = task.splits["train"]
        if not self.uses_transfer(task, s):
            return train
        return Split([*train.texts, *task.transfer.texts], np.concatenate([train.labels, task.transfer.labels]))

    def _train_student(self, task: TaskData, s: Student, tmp: Path, work: Path) -> dict:
        """Distil one student with recipe.Recipe; with `temperature: auto` one per grid value, the
        validation-best kept. Writes its validation/eval logits, metrics (and gate.json for a gate)."""
        cfg, st, d = self.cfg, self.cfg.student, self.cfg.distill
        tok = load_tokenizer(st.model, st.trust_remote_code)
        train_set = self.training_set(task, s)
        data = encode(tok, train_set.texts, st.max_length)
        labels = torch.as_tensor(train_set.labels)
        scored = {"validation": task.splits["validation"], "eval": task.splits["eval"], **task.extra}
        encoded = {split: encode(tok, sp.texts, st.max_length) for split, sp in scored.items()}
        info, teachers, fitted = {}, None, None
        if self.uses_transfer(task, s):
            info["transfer"] = len(task.transfer)
        if s.type != "baseline":
            val = task.splits["validation"]
            fitted = fit_on_validation(self.teacher_logits(task, s.teachers, "validation"), val.labels,
                                       task.metric, task.num_labels, task.pos_label)
            info["teacher_validation_scores"] = dict(zip(s.teachers, fitted.scores.tolist()))
            info["teacher_calibration_temperatures"] = dict(zip(s.teachers, fitted.temperatures.tolist()))
            teachers = self._target_source(task, s.teachers, train_set, self.uses_transfer(task, s))
        grid = d.temperature_grid if d.temperature == "auto" and s.type != "baseline" else [d.temperature]
        best = None
        for T in grid:
            model = load_classifier(st.model, task.num_labels, st.layers, cfg.seed, st.trust_remote_code, st.pooling)
            strategy = None
            if s.type != "baseline":
                torch.manual_seed(cfg.seed + 1)   # the gate's initialisation
                strategy = make_strategy(s.strategy, len(s.teachers), model.config.hidden_size, st.gate_hidden,
                                         dataclasses.asdict(d), st.gate_entropy, math.ceil(st.epochs))
            recipe = Recipe(labels, teachers, strategy, temperature=T if s.type != "baseline" else 1.0,
                            alpha=d.alpha if s.type != "baseline" else 0.0, fitted=fitted, calibrate=d.calibrate,
                            names=s.teachers)
            spec = TrainSpec(st.epochs, st.lr, st.batch_size, st.weight_decay, st.warmup_ratio, cfg.seed,
                             cfg.length_grouping, st.gate_lr, st.max_grad_norm, st.grad_accum)
            pruner = sparsity.from_config(model, st)   # None for a dense student
            model = train(model, data, spec, recipe, work / f"T{T:g}" if len(grid) > 1 else work, recipe.gate,
                          recipe.wants_features, desc=f"{task.name} {s.method}" + (f" T={T:g}" if len(grid) > 1 else ""),
                          on_step=pruner and pruner.on_step, evaluate=self._validation_metric(task, encoded["validation"]))
            pruned = pruner.finish() if pruner else None   # masks folded in: the pruned student is evaluated and saved
            val_logits = predict(model, encoded["validation"], cfg.eval_batch_size)
            score = compute_metrics(task.splits["validation"].labels, val_logits.argmax(1), task.num_labels,
                                    task.pos_label)[task.metric]
            if len(grid) > 1:
                info.setdefault("temperature_grid_validation", {})[f"{T:g}"] = score
            if best is None or score > best[0]:
                best = (score, T, model, recipe, pruned)
        _, T, model, recipe, pruned = best
        if pruned is not None:   # the chosen grid point's sparsity, not the last one's
            info["sparsity"] = pruned
        if s.type != "baseline":
            info["temperature"] = T
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
            record = gate_record(recipe.gate, s.teachers, feats, self.teacher_logits(task, s.teachers, "eval"))
            atomic_write_json(tmp / "gate.json", record)
            info["gate"] = record["train"]
        if st.save_model:   # with the task's label names, for mtkd predict / export and transformers
            model.config.id2label = dict(enumerate(task.label_names))
            model.config.label2id = {n: i for i, n in enumerate(task.label_names)}
            model.save_pretrained(tmp / "model", safe_serialization=True)
            tok.save_pretrained(tmp / "model")
        atomic_write_json(tmp / "metrics.json", metrics)
        self.log(f"    {s.method + self._suffix(cfg.seed):24s} eval {task.metric} {metrics['eval'][task.metric]:.2f}"
                 + (f" (T={T:g} of {', '.join(f'{t:g}' for t in grid)})" if len(grid) > 1 else ""))
        return {"method": s.method, "type": s.type, "teachers": list(s.teachers), "strategy": s.strategy,
                "seed": cfg.seed, "metrics": metrics, **info}

    def _validation_metric(self, task: TaskData, data):
        """model -> {metric: value on validation} (`data`: validation encoded): what a tracked run logs per epoch."""
        val = task.splits["validation"]

        def evaluate(model):
            return {task.metric: compute_metrics(val.labels, predict(model, data, self.cfg.eval_batch_size).argmax(1),
                                                 task.num_labels, task.pos_label)[task.metric]}
        return evaluate

    def _target_source(self, task: TaskData, names, train_set: Split, transfer: bool):
        """idx -> teacher logits [K, B, C] of the student's `train_set` (train, then the transfer set when
        `transfer`): cached (a lookup by example index) or online (teachers run now)."""
        if self.cfg.distill.mode == "cached":
            logits = self.teacher_logits(task, names, "train")
            if transfer:
                logits = np.concatenate([logits, self.teacher_logits(task, names, "transfer")], axis=1)
            return cached_teachers(logits)
        by_name = {t.name: t for t in self.cfg.teachers}
        return online_teachers([load_teacher(by_name[n], task.label_names, self._teacher_seed(by_name[n]),
                                             self._teacher_dir(task, by_name[n]) / "model", self.cfg.eval_batch_size)
                                for n in names], train_set.texts)

    def _evaluate_stage(self, task: TaskData):
        """RUN/<task>/eval (docs/run_dir.md): every model's eval and validation logits at each of its seeds,
        metrics as the mean over seeds, the teachers' train logits (out of fold with crossfit) and the labels
        of every split. Derived from cached stages only, so it is rebuilt whenever they change (a new seed)."""
        tdir = self.out / task.name
        views, teacher_views = self.views()
        # model -> {seed: its stage folder}, the run seed first; a student is listed once its run seed is trained
        teachers = {t.name: {v._teacher_seed(t): tdir / "logits" / v.teacher_folder(t) for v in teacher_views}
                    for t in self.cfg.teachers}
        students = {}
        for s in planned_students(self.cfg):
            found = {v.cfg.seed: v.student_dir(task.name, s.method) for v in views}
            if (found[self.cfg.seed] / "manifest.json").is_file():
                students[s] = {seed: d for seed, d in found.items() if (d / "manifest.json").is_file()}
        folders = [d for per in (*teachers.values(), *students.values()) for d in per.values()]
        inputs = {f"{d.parent.name}/{d.name}": read_json(d / "manifest.json")["outputs"] for d in folders}
        key = {"task": task.name, "metric": task.metric, "pos_label": task.pos_label, "fingerprints": task.fingerprints(), "inputs": inputs,
               "temperature": self.cfg.distill.temperature, "alpha": self.cfg.distill.alpha, "format": 2}
        if task.extra:   # a task without extra eval sets keeps its key
            key["extra_eval"] = {k: task.all_fingerprints()[k] for k in task.extra}

        def build(tmp, work):
            y = {split: sp.labels for split, sp in {**task.splits, **task.extra}.items()}
            for split in y:
                save_npy(tmp / f"labels_{split}.npy", y[split])
            fps = task.all_fingerprints()

            def teacher_split(folder, split):
                return read_logits(folder, split, task.label_names, fps[split], len(y[split]))

            def student_split(folder, split):
                return check_array(load_npy(folder / f"logits_{split}.npy"), str(folder), len(y[split]), task.num_labels)

            def entry(method, type_, per_seed: dict, read) -> dict:
                """The manifest entry of one model; writes <folder>.eval.npy / .validation.npy per seed."""
                files, val_files, seed_metrics = {}, {}, {}
                for seed, folder in per_seed.items():
                    files[str(seed)], val_files[str(seed)] = f"{folder.name}.eval.npy", f"{folder.name}.validation.npy"
                    seed_metrics[str(seed)] = {}
                    for split, name in (("eval", files[str(seed)]), ("validation", val_files[str(seed)])):
                        arr = read(folder, split)
                        save_npy(tmp / name, arr)
                        seed_metrics[str(seed)][split] = compute_metrics(y[split], arr.argmax(1), task.num_labels,
                                                                         task.pos_label)
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
                    metrics[k] = compute_metrics(y[k], arr.argmax(1), task.num_labels, task.pos_label)
                return {"extra_files": files, "extra_metrics": metrics}

            models, train_files = [], {}
            provenance = {t.name: train_logits_provenance(self._as_task_reads(task, t)) for t in self.cfg.teachers}
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
            self._write_predictions(tmp / "predictions.csv", task, models, tmp)
            return {"task": task.name, "label_names": list(task.label_names), "metric": task.metric, "pos_label": task.pos_label,
                    "metric_columns": task.metric_columns, "temperature": self._reported_temperature(models),
                    "alpha": self.cfg.distill.alpha, "seeds": seeds_of(self.cfg),
                    "reseed_teachers": self.cfg.reseed_teachers, "models": models, "teachers": list(teachers),
                    "validation_files": {m["method"]: m["validation_file"] for m in models if m["type"] == "teacher"},
                    "train_files": train_files, "labels_eval": "labels_eval.npy",
                    "labels_validation": "labels_validation.npy", "labels_train": "labels_train.npy",
                    "n_train": len(task.splits["train"]),
                    **({"transfer": task.info["transfer"]} if task.transfer is not None else {}),
                    "extra_eval": {k: {"labels": f"labels_{k}.npy", "size": len(v)} for k, v in task.extra.items()}}
        # rebuilt rather than refused when stale: it holds nothing that is not in the stages it reads
        return stages.run(tdir / "eval", key, build, recompute=True, log=self.log, collective=False)

    def _reported_temperature(self, models: list[dict]) -> float:
        """The distillation T (with `temperature: auto`, the one chosen most often, the smaller on ties)."""
        if self.cfg.distill.temperature != "auto":
            return self.cfg.distill.temperature
        chosen = [m["temperature"] for m in models if m.get("temperature") is not None]
        return min(set(chosen), key=lambda t: (-chosen.count(t), t)) if chosen else 1.0

    @staticmethod
    def _write_predictions(path: Path, task: TaskData, models: list[dict], folder: Path):
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

    # ------------------------------------------------------------------ table
    def write_master_table(self) -> Path:
        """results/master_results.csv/.md of this run (`write_master_table`)."""
        return write_master_table(self.out, [t.name for t in self.cfg.tasks], seeds_of(self.cfg))


def write_master_table(out: Path, task_names: list[str], seeds: list[int]) -> Path:
    """OUT/results/master_results.csv/.md from every task's eval manifest: one row per model; per task its
    `<task>_<metric>` columns (official first; the mean over seeds), then `<task>_ece`, the expected
    calibration error of its eval predictions in % (analysis.calibration.ece: 15 equal-width bins of the max
    softmax probability; mean over seeds; lower is better); AVG = the mean of the official metrics only.
    A run of several seeds adds `<column>_sd` columns to the CSV (sample sd over seeds; empty for a model
    of one seed, e.g. teachers trained once; AVG_sd: the sd of each seed's AVG) and shows "mean ± sd" in
    the Markdown. Where a task has a
    transfer set, the CSV's last column `transfer` names the tasks (`;`-joined) whose transfer set the
    model learned from (empty: none)."""
    from .analysis.load import transfer_lines
    from .tables import Table
    from .tasks import METRIC_SHORT
    rows: dict[str, dict] = {}
    columns, official, notes, has_transfer = [], [], [], False
    for name in task_names:
        folder = Path(out) / name / "eval"
        if not (folder / "manifest.json").is_file():
            continue
        m = read_json(folder / "manifest.json")
        ece_column = f"{m['task']}_ece"
        columns += [*m["metric_columns"], ece_column]
        official.append(f"{m['task']}_{METRIC_SHORT[m['metric']]}")
        fake = TaskData(m["task"], tuple(m["label_names"]), m["metric"], {})
        notes += transfer_lines(m)
        has_transfer = has_transfer or bool(m.get("transfer"))
        labels = load_npy(folder / m["labels_eval"])
        for model in m["models"]:
            row = rows.setdefault(model["method"], {"method": model["method"], "type": model["type"], "transfer": []})
            if model.get("transfer"):
                row["transfer"].append(m["task"])
            files = model.get("seed_files") or {"run": model["file"]}
            eces = {s: eval_ece(load_npy(folder / f), labels) for s, f in files.items()}
            row.update(table_values(fake, model["metrics"]), **{ece_column: float(np.mean(list(eces.values())))})
            per_seed = [{**table_values(fake, sm["eval"]), ece_column: eces[s]}
                        for s, sm in model.get("seed_metrics", {}).items() if s in eces]
            if len(per_seed) > 1:
                row.update({f"{c}_sd": float(np.std([p[c] for p in per_seed], ddof=1)) for c in per_seed[0]})
            for s, sm in model.get("seed_metrics", {}).items():   # for AVG's sd: every seed's official metrics
                row.setdefault("per_seed", {}).setdefault(s, {}).update(table_values(fake, sm["eval"]))
    order = {"teacher": 0, "baseline": 1, "single": 2, "multi": 3}
    table = sorted(rows.values(), key=lambda r: order[r["type"]])  # stable: config order inside a type
    for r in table:
        vals = [r[c] for c in official if c in r]
        r["AVG"] = sum(vals) / len(vals) if len(vals) == len(official) and vals else None
        avgs = [np.mean([d[c] for c in official]) for d in r.pop("per_seed", {}).values() if all(c in d for c in official)]
        if r["AVG"] is not None and len(avgs) > 1:   # the sd over seeds of each seed's mean over tasks
            r["AVG_sd"] = float(np.std(avgs, ddof=1))
    with_sd = len(seeds) > 1
    fmt = lambda v: "" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)   # noqa: E731
    for r in table:
        r["transfer"] = ";".join(r["transfer"])
    csv_header = ["method", "type", *(x for c in [*columns, "AVG"] for x in ((c, f"{c}_sd") if with_sd else (c,))),
                  *(["transfer"] if has_transfer else [])]
    md_header = ["method", "type", *columns, "AVG"]

    def md_cell(r, c):
        sd = r.get(f"{c}_sd")
        return fmt(r.get(c)) if sd is None else f"{fmt(r.get(c))} ± {fmt(sd)}"
    res = Path(out) / "results"
    atomic_write_text(res / "master_results.csv", Table(csv_header, [[fmt(r.get(c)) for c in csv_header] for r in table]).to_csv())
    md = Table(md_header, [[md_cell(r, c) for c in md_header] for r in table]).to_markdown()
    md += ("\nMetrics on eval in %. `<task>_ece`: expected calibration error of the eval predictions (%, 15 bins; "
           "lower is better). AVG: the mean of the official metrics (the first column of each task) only.\n")
    if with_sd:
        md += (f"\nMean ± sample sd over seeds {', '.join(map(str, seeds))}; a cell without ± is a model "
               f"trained at one seed (teachers, unless reseed_teachers).\n")
    atomic_write_text(res / "master_results.md", md + "".join(f"\n{n}\n" for n in notes))
    return res / "master_results.csv"


def eval_ece(logits: np.ndarray, labels: np.ndarray) -> float:
    """Expected calibration error (%) of softmax(logits) against labels (analysis.calibration.ece)."""
    from .analysis.calibration import ece
    from .analysis.confidence import softmax
    return 100.0 * ece(softmax(logits), np.asarray(labels))


CHANCE_MARGIN = 1.0   # points: a teacher within this of the best constant prediction is flagged


def validation_gap_threshold(eval_score: float, n_validation: int, n_eval: int) -> float:
    """Points by which a teacher's validation metric may exceed its eval metric before it is flagged:
    max(5, 3 standard errors of the difference of two independent proportions at the eval score). A teacher
    that saw the validation rows typically scores near-perfectly there; an honest one differs from eval only
    by sampling noise (about 1 se) and a mild shift between the carve and the eval split."""
    p = min(max(eval_score / 100.0, 0.01), 0.99)
    se = 100.0 * math.sqrt(p * (1 - p) * (1 / max(n_validation, 1) + 1 / max(n_eval, 1)))
    return max(5.0, 3.0 * se)


def chance_level(labels: np.ndarray, num_labels: int, metric: str, pos_label: int = 1) -> tuple[float, int]:
    """(the best `metric` a constant prediction gets on `labels`, that class): accuracy of the majority
    class, F1 of always predicting the positive class, Matthews 0."""
    scores = [compute_metrics(labels, np.full(len(labels), c), num_labels, pos_label)[metric] for c in range(num_labels)]
    return max(scores), int(np.argmax(scores))


def mean_metrics(per_seed: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([m[k] for m in per_seed])) for k in per_seed[0]}


def run_config(config_path, out=None, overrides=(), until="report", recompute=False, log=print,
               n_seeds: int | None = None, reuse: Sequence[Path] = ()) -> Path:
    """`n_seeds` (`mtkd run --seeds N`): train the students at N seeds, the run seed then 1, 2, 3, ...
    `reuse` (`--reuse RUN`): run folders whose finished stages with the same key are linked, not rebuilt."""
    for r in reuse:
        if not (Path(r) / "config.yaml").is_file():
            raise MtkdError(f"--reuse {r}: not a run directory (no config.yaml)")
    cfg = load_config(config_path, overrides)
    if n_seeds is not None:
        cfg = validate(dataclasses.replace(cfg, seeds=first_seeds(cfg.seed, n_seeds)))
    if out is None:
        p = Path(config_path)
        out = p if p.is_dir() else (p.parent if p.name == "config.yaml" and (p.parent / "run.json").exists()
                                    else Path("runs") / cfg.name)
    return Run(cfg, Path(out), recompute, log, donors=reuse).execute(until)
