"""The pipeline: config -> task -> teachers -> logit store -> fusion -> distil student -> evaluate
-> table (-> analyse -> report). Every box is a cached, resumable stage (see stages.py)."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import torch

from . import stages
from .config import RunConfig, dump_yaml, load_config, to_dict
from .errors import MtkdError
from .faults import failpoint
from .fusion import LEARNABLE, FusionContext, fit_temperature, make_strategy
from .io import atomic_write_json, atomic_write_text, load_npy, read_json, save_npy
from .logits import SPLITS, check_array, read_logits, store_fields
from .losses import kd_loss
from .models import encode, load_classifier, load_tokenizer
from .tasks import TaskData, compute_metrics, load_task, table_values
from .teachers import load_teacher, make_teacher
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
    if cfg.distill.single_teacher:
        out += [Student(f"kd_{n}", "single", (n,), "average") for n in names]
    out += [Student(f"multi_{s}", "multi", names, s) for s in cfg.distill.strategies]
    return out


class Run:
    """One run directory: `Run(cfg, out).execute(until)` runs every stage up to `until`."""

    def __init__(self, cfg: RunConfig, out: Path, recompute: bool = False, log=print):
        self.cfg, self.out, self.recompute, self.log = cfg, Path(out), recompute, log

    # ------------------------------------------------------------------ driver
    def execute(self, until: str = "report") -> Path:
        if until not in STAGES:
            raise MtkdError(f"unknown stage '{until}'; stages: {', '.join(STAGES)}")
        upto = STAGES.index(until)
        from accelerate import PartialState
        if PartialState().num_processes > 1:
            raise MtkdError("multi-process runs (accelerate launch --num_processes > 1) are not supported yet; "
                            "run one process (it uses the GPU when there is one)")
        tasks = [load_task(t) for t in self.cfg.tasks]   # bad data fails before anything is written
        self._prepare()
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        wanted = {"baseline": 2, "single": 3, "multi": 4}
        for task in tasks:
            self.log(f"[{task.name}] {', '.join(f'{k} {len(v)}' for k, v in task.splits.items())} examples")
            self._data_stage(task)
            for t in self.cfg.teachers:
                self._teacher_stage(task, t)
            if upto >= 1:
                for t in self.cfg.teachers:
                    self._logits_stage(task, t)
            for s in planned_students(self.cfg):
                if upto >= wanted[s.type]:
                    self._student_stage(task, s)
            if upto >= 5:
                self._evaluate_stage(task)
        if upto >= 5:
            self.write_master_table()
        if upto >= 6:
            from .report import build_report
            build_report(self.out)
        return self.out

    def _prepare(self):
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            probe = self.out / ".mtkd-write-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise MtkdError(f"output directory {self.out} is not writable: {e.strerror}") from None
        new = dump_yaml(self.cfg)
        path = self.out / "config.yaml"
        if path.is_file() and path.read_text(encoding="utf-8") != new and not self.recompute:
            diff = stages._first_difference(to_dict(load_config(path)), to_dict(self.cfg))
            if diff:   # a hand-written config.yaml that resolves to the same run is fine
                raise MtkdError(f"{self.out} holds a run of another config ({diff}); use another --out or pass --recompute")
        atomic_write_text(path, new)
        atomic_write_json(self.out / "run.json", {"versions": stages.versions(), "seed": self.cfg.seed})

    def stage(self, folder: Path, key: dict, build):
        return stages.run(folder, key, build, recompute=self.recompute, log=self.log)

    # ------------------------------------------------------------------ stages
    def _data_stage(self, task: TaskData):
        key = {"task": task.name, "label_names": task.label_names, "metric": task.metric,
               "fingerprints": task.fingerprints()}

        def build(tmp, work):
            for name, s in task.splits.items():
                lines = (json.dumps({"text": list(t), "label": int(y)}, ensure_ascii=False) for t, y in zip(s.texts, s.labels))
                atomic_write_text(tmp / f"{name}.jsonl", "\n".join(lines) + "\n")
            return {"label_names": list(task.label_names), "metric": task.metric,
                    "splits": {k: {"n": len(v), "fingerprint": key["fingerprints"][k]} for k, v in task.splits.items()}}
        self.stage(self.out / task.name / "data", key, build)

    def _teacher_seed(self, t) -> int:
        return t.seed if t.seed is not None else self.cfg.seed

    def _teacher_key(self, task: TaskData, t) -> dict:
        # the effective seed, once: a teacher pinned to the seed it would get anyway has the same key,
        # so a seed sweep that pins its teachers reuses them (and keys of unpinned teachers are unchanged)
        fps = task.fingerprints()
        key = {"teacher": dataclasses.asdict(dataclasses.replace(t, seed=None)), "seed": self._teacher_seed(t),
               "label_names": task.label_names,
               "fingerprints": {"train": fps["train"], "validation": fps["validation"]}}
        if t.kind == "hf":
            key["length_grouping"] = self.cfg.length_grouping
        return key

    def _teacher_stage(self, task: TaskData, t):
        def build(tmp, work):
            teacher = make_teacher(t, task.label_names, self._teacher_seed(t), self.cfg.eval_batch_size,
                                   self.cfg.length_grouping)
            teacher.fit(task.splits["train"], task.splits["validation"], work)
            teacher.save(tmp / "model")
            return {"teacher": t.name}
        return self.stage(self.out / task.name / "teachers" / t.name, self._teacher_key(task, t), build)

    def _logits_key(self, task: TaskData, t) -> dict:
        teacher_manifest = read_json(self.out / task.name / "teachers" / t.name / "manifest.json")
        return {"teacher": self._teacher_key(task, t), "teacher_outputs": teacher_manifest["outputs"],
                "label_names": task.label_names, "fingerprints": task.fingerprints()}

    def _logits_stage(self, task: TaskData, t):
        tdir = self.out / task.name / "teachers" / t.name

        def build(tmp, work):
            teacher = load_teacher(t, task.label_names, self.cfg.seed, tdir / "model", self.cfg.eval_batch_size)
            arrays = {}
            for split in SPLITS:
                s = task.splits[split]
                arrays[split] = check_array(teacher.logits(s.texts), f"teacher {t.name} on {split}", len(s), task.num_labels)
                save_npy(tmp / f"{split}.npy", arrays[split])
                failpoint("logits:split_written")
            return store_fields(t.name, task.label_names, arrays, task.fingerprints())
        return self.stage(self.out / task.name / "logits" / t.name, self._logits_key(task, t), build)

    def teacher_logits(self, task: TaskData, names, split: str) -> np.ndarray:
        """[K, N, C] verified cached logits of teachers `names` on `split`."""
        fps = task.fingerprints()
        return np.stack([read_logits(self.out / task.name / "logits" / n, split, task.label_names, fps[split],
                                     len(task.splits[split])) for n in names])

    def _student_stage(self, task: TaskData, s: Student):
        cfg, st, d = self.cfg, self.cfg.student, self.cfg.distill
        student = dataclasses.asdict(st)
        if s.strategy not in LEARNABLE:   # the gate's settings do not touch other students
            student = {k: v for k, v in student.items() if not k.startswith("gate_")}
        key = {"student": student, "method": s.method, "seed": cfg.seed, "label_names": task.label_names,
               "fingerprints": task.fingerprints(), "length_grouping": cfg.length_grouping}
        if s.type != "baseline":   # the metric picks the `weighted` teacher scores
            key.update(temperature=d.temperature, alpha=d.alpha, strategy=s.strategy, mode=d.mode, metric=task.metric,
                       teachers={n: read_json(self.out / task.name / "logits" / n / "manifest.json")["outputs"]
                                 for n in s.teachers})

        def build(tmp, work):
            return self._train_student(task, s, tmp, work)
        return self.stage(self.out / task.name / "students" / s.method, key, build)

    def _train_student(self, task: TaskData, s: Student, tmp: Path, work: Path) -> dict:
        cfg, st, d = self.cfg, self.cfg.student, self.cfg.distill
        tok = load_tokenizer(st.model, st.trust_remote_code)
        model = load_classifier(st.model, task.num_labels, st.layers, cfg.seed, st.trust_remote_code, st.pooling)
        train_split = task.splits["train"]
        data = encode(tok, train_split.texts, st.max_length)
        labels = torch.as_tensor(train_split.labels)
        extra, want_features, info = None, False, {}
        if s.type == "baseline":
            def loss_fn(logits, feats, idx):
                return kd_loss(logits, None, labels[idx].to(logits.device), 1.0, 0.0)
        else:
            val = self.teacher_logits(task, s.teachers, "validation")
            scores = [compute_metrics(task.splits["validation"].labels, v.argmax(1), task.num_labels)[task.metric]
                      for v in val]
            info["teacher_validation_scores"] = dict(zip(s.teachers, scores))
            scores_t = torch.tensor(scores, dtype=torch.float32)
            taus = [fit_temperature(v, task.splits["validation"].labels) for v in val]
            info["teacher_calibration_temperatures"] = dict(zip(s.teachers, taus))
            taus_t = torch.tensor(taus, dtype=torch.float32)
            source = self._target_source(task, s.teachers)
            torch.manual_seed(cfg.seed + 1)
            fuse = make_strategy(s.strategy, len(s.teachers), model.config.hidden_size, st.gate_hidden)
            if s.strategy in LEARNABLE:
                extra, want_features = fuse, True

            def loss_fn(logits, feats, idx):
                dev = logits.device
                target = fuse(source(idx).to(dev), FusionContext(d.temperature, scores_t.to(dev), feats, taus_t.to(dev)))
                return kd_loss(logits, target, labels[idx].to(dev), d.temperature, d.alpha)
        spec = TrainSpec(st.epochs, st.lr, st.batch_size, st.weight_decay, st.warmup_ratio, cfg.seed,
                         cfg.length_grouping, st.gate_lr)
        model = train(model, data, spec, loss_fn, work, extra, want_features,
                      desc=f"{task.name} {s.method}")
        metrics = {}
        for split in ("validation", "eval"):
            sp = task.splits[split]
            logits = predict(model, encode(tok, sp.texts, st.max_length), cfg.eval_batch_size)
            save_npy(tmp / f"logits_{split}.npy", logits)
            metrics[split] = compute_metrics(sp.labels, logits.argmax(1), task.num_labels)
        if st.save_model:
            model.save_pretrained(tmp / "model", safe_serialization=True)
            tok.save_pretrained(tmp / "model")
        atomic_write_json(tmp / "metrics.json", metrics)
        self.log(f"    {s.method:24s} eval {task.metric} {metrics['eval'][task.metric]:.2f}")
        return {"method": s.method, "type": s.type, "teachers": list(s.teachers), "strategy": s.strategy,
                "metrics": metrics, **info}

    def _target_source(self, task: TaskData, names):
        """idx -> teacher logits [K, B, C]: cached (a lookup by example index) or online (teachers run now)."""
        if self.cfg.distill.mode == "cached":
            cached = torch.from_numpy(self.teacher_logits(task, names, "train"))
            return lambda idx: cached[:, idx]
        by_name = {t.name: t for t in self.cfg.teachers}
        teachers = [load_teacher(by_name[n], task.label_names, self.cfg.seed,
                                 self.out / task.name / "teachers" / n / "model", self.cfg.eval_batch_size) for n in names]
        texts = task.splits["train"].texts

        def online(idx):
            batch = [texts[i] for i in idx.tolist()]
            return torch.stack([torch.from_numpy(t.logits(batch)) for t in teachers])
        return online

    def _evaluate_stage(self, task: TaskData):
        tdir = self.out / task.name
        teachers = [t.name for t in self.cfg.teachers]
        students = [s for s in planned_students(self.cfg) if (tdir / "students" / s.method / "manifest.json").is_file()]
        inputs = {f"logits/{n}": read_json(tdir / "logits" / n / "manifest.json")["outputs"] for n in teachers}
        inputs.update({f"students/{s.method}": read_json(tdir / "students" / s.method / "manifest.json")["outputs"]
                       for s in students})
        key = {"task": task.name, "metric": task.metric, "fingerprints": task.fingerprints(), "inputs": inputs,
               "temperature": self.cfg.distill.temperature, "alpha": self.cfg.distill.alpha}

        def build(tmp, work):
            y_eval, y_val = task.splits["eval"].labels, task.splits["validation"].labels
            save_npy(tmp / "labels_eval.npy", y_eval)
            save_npy(tmp / "labels_validation.npy", y_val)
            models, val_files = [], {}
            ev, va = self.teacher_logits(task, teachers, "eval"), self.teacher_logits(task, teachers, "validation")
            for n, e, v in zip(teachers, ev, va):
                save_npy(tmp / f"{n}.eval.npy", e)
                save_npy(tmp / f"{n}.validation.npy", v)
                val_files[n] = f"{n}.validation.npy"
                models.append({"method": n, "type": "teacher", "file": f"{n}.eval.npy",
                               "metrics": compute_metrics(y_eval, e.argmax(1), task.num_labels)})
            for s in students:
                sdir = tdir / "students" / s.method
                _, problem = stages.check(sdir, read_json(sdir / "manifest.json")["key"])  # file hashes
                if problem:
                    raise MtkdError(f"{problem}; pass --recompute to rebuild it")
                e = check_array(load_npy(sdir / "logits_eval.npy"), str(sdir), len(y_eval), task.num_labels)
                save_npy(tmp / f"{s.method}.eval.npy", e)
                entry = {"method": s.method, "type": s.type, "file": f"{s.method}.eval.npy",
                         "metrics": compute_metrics(y_eval, e.argmax(1), task.num_labels)}
                if s.type != "baseline":
                    entry.update(teachers=list(s.teachers), strategy=s.strategy)
                models.append(entry)
            self._write_predictions(tmp / "predictions.csv", task, models, tmp)
            return {"task": task.name, "label_names": list(task.label_names), "metric": task.metric,
                    "metric_columns": task.metric_columns, "temperature": self.cfg.distill.temperature,
                    "alpha": self.cfg.distill.alpha, "models": models, "teachers": teachers,
                    "validation_files": val_files, "labels_eval": "labels_eval.npy",
                    "labels_validation": "labels_validation.npy"}
        return self.stage(tdir / "eval", key, build)

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
        rows: dict[str, dict] = {}
        columns, official = [], []
        for tcfg in self.cfg.tasks:
            mpath = self.out / tcfg.name / "eval" / "manifest.json"
            if not mpath.is_file():
                continue
            m = read_json(mpath)
            from .tasks import METRIC_SHORT
            columns += m["metric_columns"]
            official.append(f"{m['task']}_{METRIC_SHORT[m['metric']]}")
            fake = TaskData(m["task"], tuple(m["label_names"]), m["metric"], {})
            for model in m["models"]:
                row = rows.setdefault(model["method"], {"method": model["method"], "type": model["type"]})
                row.update(table_values(fake, model["metrics"]))
        order = {"teacher": 0, "baseline": 1, "single": 2, "multi": 3}
        table = sorted(rows.values(), key=lambda r: order[r["type"]])  # stable: config order inside a type
        for r in table:
            vals = [r[c] for c in official if c in r]
            r["AVG"] = sum(vals) / len(vals) if len(vals) == len(official) and vals else None
        header = ["method", "type", *columns, "AVG"]
        fmt = lambda v: "" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)
        from .report.tables import Table
        t = Table(header, [[fmt(r.get(c)) for c in header] for r in table])
        res = self.out / "results"
        atomic_write_text(res / "master_results.csv", t.to_csv())
        atomic_write_text(res / "master_results.md", t.to_markdown())
        return res / "master_results.csv"


def run_config(config_path, out=None, overrides=(), until="report", recompute=False, log=print) -> Path:
    cfg = load_config(config_path, overrides)
    if out is None:
        p = Path(config_path)
        out = p if p.is_dir() else (p.parent if p.name == "config.yaml" and (p.parent / "run.json").exists()
                                    else Path("runs") / cfg.name)
    return Run(cfg, Path(out), recompute, log).execute(until)
