"""The driver: `Run(cfg, out).execute(until)` builds every stage of every task up to `until`, in order --
data, teachers, logits (then the warnings of checks.py), students (no-KD, single-, multi-teacher; at every
seed), evaluate -- then the table (table.py) and the analysis and report. Each stage is a module of this
package (its key, its build, what it records); a finished stage is found cached, so a rerun resumes."""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from .. import runtime, stages
from ..config import dump_yaml, first_seeds, load_config, seeds_of, to_dict, validate
from ..errors import MtkdError
from ..io import atomic_write_json, atomic_write_text
from ..tasks import TaskData, load_task
from ..teachers.crossfit import check_folds
from . import checks, data, evaluate, logits, students, teachers
from .context import RunContext
from .plan import STAGES, planned_students, reaches
from .table import write_master_table


class Run(RunContext):
    """One run directory (see RunContext for what every stage reads from it)."""

    def execute(self, until: str = "report") -> Path:
        if until not in STAGES:
            raise MtkdError(f"unknown stage '{until}'; stages: {', '.join(STAGES)}")
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
        self.append(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} mtkd {' '.join(sys.argv[1:])} ({runtime.world()} "
                    f"process(es), mixed precision {self.precision}, tracking {self.cfg.tracking})")
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        plans = [(task, self.plan(task, until)) for task in tasks]
        bar = tqdm(total=sum(len(calls) for _, plan in plans for calls in plan.values()), desc="pipeline",
                   unit="stage", leave=False, disable=None if runtime.is_main() else True)
        token = runtime.TRACKING.set(runtime.Tracking(self.cfg.tracking, self.out / "tracking", self.cfg.name)
                                     if self.cfg.tracking != "none" else None)
        try:
            for task, plan in plans:
                self._announce(task)
                for name, calls in plan.items():
                    for build_stage, args in calls:
                        build_stage(*args)
                        bar.update(1)
                    if name == "logits":
                        checks.flag_teachers(self, task)
        finally:
            runtime.TRACKING.reset(token)
            bar.close()
        if reaches(until, "evaluate") and runtime.is_main():
            self.write_master_table()
        if reaches(until, "report") and runtime.is_main():
            from ..analysis.run import ensure_analysis   # here, not at the top: they import matplotlib
            from ..report import build_report
            ensure_analysis(self.out, self.log)
            build_report(self.out)
        runtime.barrier()
        return self.out

    def plan(self, task: TaskData, until: str) -> dict[str, list[tuple]]:
        """The stages of `task` a run up to `until` builds, in order: {stage: [(stage function, its arguments)]}
        (each view is the run at one seed: teachers at every seed they are trained at, students at every seed)."""
        views, teacher_views = self.views()
        each_teacher = [(v, task, t) for v in teacher_views for t in self.cfg.teachers]
        plan = {"data": [(data.stage, (self, task))], "teachers": [(teachers.stage, a) for a in each_teacher]}
        if reaches(until, "logits"):
            plan["logits"] = [(logits.stage, a) for a in each_teacher]
        plan["students"] = [(students.stage, (v, task, s)) for v in views for s in planned_students(self.cfg)
                            if reaches(until, s.type)]
        if reaches(until, "evaluate"):
            plan["evaluate"] = [(evaluate.stage, (self, task))]
        return plan

    def _announce(self, task: TaskData) -> None:
        self.log(f"[{task.name}] {', '.join(f'{k} {len(v)}' for k, v in task.teacher_splits().items())} examples")
        if task.transfer is not None:
            tr = task.info["transfer"]
            self.log(f"[{task.name}] transfer set: {tr['n']} unlabelled examples from "
                     f"{tr.get('file') or 'the train rows max_train_examples left unused'}; {tr['dropped_overlap']} "
                     f"text(s) sharing content with validation/eval dropped")

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

    # ------------------------------------------------------------------ reading a finished run
    def teacher_logits(self, task: TaskData, names, split: str):
        """[K, N, C] verified cached logits of teachers `names` on `split` (logits.teacher_logits)."""
        return logits.teacher_logits(self, task, names, split)

    def write_master_table(self) -> Path:
        """results/master_results.csv/.md of this run (table.write_master_table)."""
        return write_master_table(self.out, [t.name for t in self.cfg.tasks], seeds_of(self.cfg))


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
