"""Running a sweep: the base run's teachers and logits first, their stage folders linked into every point
(hard links, so those stages are found cached), then each point's students (one after the other, or as Ray
tasks), and what every point gave (Result: per method the mean over the point's seeds)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import runtime
from ..analysis.gap import gap_closed
from ..config import RunConfig, seeds_of
from ..io import read_json
from ..pipeline.evaluate import mean_metrics
from ..pipeline.plan import Student, planned_students
from ..pipeline.run import Run
from ..stages import link_folder
from ..tasks import TaskData, table_values
from .on_ray import OnRay, execute_on_ray
from .plan import SWEEP_DIR, Point, Sweep


def link_cached_stages(run_dir: Path, point_dir: Path, base: RunConfig) -> None:
    """Make the base run's finished data, teacher and logits stage folders appear in `point_dir`."""
    folders = Run(base, run_dir).teacher_folders()   # every seed's, with reseed_teachers
    for task in base.tasks:
        rels = ["data", *(f"teachers/{f}" for f in folders), *(f"logits/{f}" for f in folders)]
        for rel in rels:
            src, dst = run_dir / task.name / rel, point_dir / task.name / rel
            if not (src / "manifest.json").is_file():
                continue
            if (dst / "manifest.json").is_file() and \
                    read_json(dst / "manifest.json")["outputs"] == read_json(src / "manifest.json")["outputs"]:
                continue   # already the base run's (a base rebuilt with --recompute is linked anew)
            link_folder(src, dst)   # appears whole, manifest included, or not at all


def donor_runs(run_dir: Path, sweep: "Sweep") -> list[Path]:
    """Where a point may find a student already trained with its exact key (stages.run links it instead of
    training it again): the base run, this sweep's other points, and every point of the base run's other
    sweeps (a T sweep and a T x alpha grid share points)."""
    mine = [sweep.folder / p.folder for p in sweep.points]
    others = sorted(p for p in (run_dir / SWEEP_DIR).glob("*/*") if (p / "config.yaml").is_file() and p not in mine)
    return [run_dir, *mine, *others]


@dataclass
class Result:
    point: Point
    method: str
    type: str
    trained_in: str             # point | base run
    columns: dict[str, float]   # master-table columns of every task (<task>_<metric>)
    official: dict[str, float]  # task -> official metric on eval (%): what is reported
    avg: float                  # mean of the official metrics over tasks
    val_official: dict[str, float]   # task -> official metric on validation (%): what selects a "best"
    val_avg: float
    preds: dict[str, np.ndarray] = field(default_factory=dict)   # task -> predicted eval labels (the point's run seed)
    gap: dict[str, float] = field(default_factory=dict)   # task -> gap closed (%) on eval (KD students)

    def score(self, task: str | None = None, on: str = "eval") -> float:
        """The official metric of `task` (None: AVG over tasks) on eval or on validation."""
        if on == "validation":
            return self.val_official[task] if task else self.val_avg
        return self.official[task] if task else self.avg


def execute(sweep: Sweep, recompute=False, log=print, ray: OnRay | None = None) -> tuple[list[TaskData], list[Result]]:
    """Train (or find cached) the base run's teachers and logits, then every point's students: one point
    after the other, or all at once as Ray tasks (`ray`). Either way a point is an ordinary run directory
    whose finished stages are cached, so a sweep killed midway finishes only what is missing."""
    if not runtime.is_main():   # under accelerate launch, rank 0 speaks
        log = lambda line: None  # noqa: E731
    log(f"[sweep] base run {sweep.run_dir}: teachers and logits")
    Run(sweep.base, sweep.run_dir, recompute, log).execute("baseline" if sweep.baseline_from_base else "logits")
    tasks = [task_info(sweep.run_dir, t.name) for t in sweep.base.tasks]
    if runtime.is_main():   # under accelerate launch, rank 0 links; every rank then runs each point's stages
        for point in sweep.points:
            link_cached_stages(sweep.run_dir, sweep.folder / point.folder, sweep.base)
    runtime.barrier()
    donors = donor_runs(sweep.run_dir, sweep)
    if ray is not None:
        execute_on_ray(sweep, ray, recompute, log, donors)
    else:
        for i, point in enumerate(sweep.points, 1):
            log(f"[sweep {i}/{len(sweep.points)}] {point.folder}")
            Run(point.cfg, sweep.folder / point.folder, recompute, log, donors=donors).execute("evaluate")
    return tasks, [r for point in sweep.points for r in point_results(sweep, point, tasks)]


def task_info(run_dir: Path, name: str) -> TaskData:
    m = read_json(run_dir / name / "data" / "manifest.json")
    return TaskData(name, tuple(m["label_names"]), m["metric"], {})


def point_results(sweep: Sweep, point: Point, tasks: list[TaskData]) -> list[Result]:
    students = planned_students(point.cfg)
    if sweep.baseline_from_base:
        students = [Student("no_kd", "baseline"), *students]
    out = []
    for s in students:
        from_base = s.type == "baseline" and sweep.baseline_from_base
        run = Run(sweep.base, sweep.run_dir) if from_base else Run(point.cfg, sweep.folder / point.folder)
        columns, official, val, preds = {}, {}, {}, {}
        for task in tasks:   # the mean over the run's seeds (a point of a seed sweep has one)
            per_seed = [read_json(run.at_seed(seed).student_dir(task.name, s.method) / "metrics.json")
                        for seed in seeds_of(run.cfg)]
            metrics = mean_metrics([m["eval"] for m in per_seed])
            columns.update(table_values(task, metrics))
            official[task.name] = metrics[task.metric]
            preds[task.name] = np.load(run.student_dir(task.name, s.method) / "logits_eval.npy").argmax(1)
            val[task.name] = mean_metrics([m["validation"] for m in per_seed])[task.metric]
        out.append(Result(point, s.method, s.type, "base run" if from_base else "point", columns, official,
                          sum(official.values()) / len(official), val, sum(val.values()) / len(val), preds))
    base = next((r for r in out if r.type == "baseline"), None)
    for task in tasks if base else []:   # gap closed = 100 (student - no_kd) / (best teacher - no_kd), on eval
        teacher = best_teacher_metric(sweep.folder / point.folder / task.name / "eval" / "manifest.json", task.metric)
        for r in out:
            if r.type in ("single", "multi") and teacher is not None:
                r.gap[task.name] = gap_closed(r.official[task.name], base.official[task.name], teacher)
    return out


def best_teacher_metric(manifest: Path, metric: str) -> float | None:
    """The eval metric of the teacher with the highest validation metric (first on ties) of an eval manifest."""
    if not manifest.is_file():
        return None
    teachers = [m for m in read_json(manifest)["models"] if m["type"] == "teacher" and m.get("validation_metrics")]
    best = max(teachers, key=lambda m: m["validation_metrics"][metric], default=None)
    return None if best is None else best["metrics"][metric]
