"""Sweeps and multi-seed runs on top of one run: only the students are retrained.

`run_sweep(RUN, ["distill.temperature=1,2,4,8", "distill.alpha=0.5,0.7"])` trains the students at
every point of a 1-D sweep or a joint grid. Each point is an ordinary run directory
RUN/sweeps/<name>/<point>/ (e.g. `T=4_alpha=0.5`) built by `Run(config + overrides, point)
.execute("evaluate")`. Before it runs, the finished data, teachers and logits stage folders of RUN
are hard-linked into it (copied where the file system refuses links), so those stages are found
cached: their keys depend neither on T, alpha nor the student, nor on the seed once the teachers
are pinned to the seed they were trained with (done whenever `seed` is swept).

With `ray=OnRay(...)` (`mtkd sweep/seeds --ray [ADDRESS]`) the points run at once as Ray tasks, each
reserving `ray.cpus_per_task` CPUs and `ray.gpus_per_task` of a GPU, over the same linked stages.

`run_seeds(RUN, ["1", "2", "3"])` is the sweep over `seed`, summarised across seeds: per task and
method the mean, std and a 95% t-interval, and the paired difference best multi − best single.
"""
from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import runtime
from .config import RunConfig, StudentConfig, did_you_mean, load_config, safe_name, seeds_of, to_dict
from .errors import MtkdError
from .pipeline.evaluate import mean_metrics
from .pipeline.plan import Student, planned_students
from .pipeline.run import Run
from .stages import link_folder
from .io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from .analysis import figures
from .analysis.gap import gap_closed
from .tables import Table, cell
from .tasks import TaskData, table_values

SWEEP_DIR = "sweeps"
SWEEPABLE = ("distill.temperature", "distill.alpha", "distill.use_transfer", "distill.calibrate", "seed")   # and every student.* key
DISTILL_ONLY = {"distill.temperature", "distill.alpha", "distill.use_transfer", "distill.calibrate"}   # the baseline does not depend on these
SHORT = {"distill.temperature": "T"}                                    # folder and column names


# ---------------------------------------------------------------- what to run

@dataclass(frozen=True)
class Param:
    key: str                    # dotted config key, e.g. distill.temperature
    values: tuple[str, ...]     # as typed, e.g. ("1", "2", "4")

    @property
    def short(self) -> str:
        return SHORT.get(self.key, self.key.rsplit(".", 1)[-1])


@dataclass(frozen=True)
class Point:
    folder: str                 # e.g. T=4_alpha=0.5
    values: tuple[str, ...]     # one per param
    cfg: RunConfig


@dataclass
class Sweep:
    run_dir: Path
    base: RunConfig
    folder: Path                # RUN/sweeps/<name>
    params: list[Param]
    points: list[Point]
    baseline_from_base: bool    # the no-KD student is taken from the base run, not retrained per point


def parse_param(spec: str) -> Param:
    """`distill.temperature=1,2,4` -> Param("distill.temperature", ("1", "2", "4"))."""
    key, sep, raw = spec.partition("=")
    values = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))   # in order, no duplicates
    if not sep or not key.strip() or not values:
        raise MtkdError(f"--param '{spec}' must look like key=v1,v2,... (e.g. distill.temperature=1,2,4,8)")
    return Param(key.strip(), values)


def sweepable_keys() -> list[str]:
    return [*SWEEPABLE, *(f"student.{f}" for f in StudentConfig.__dataclass_fields__)]


def check_sweepable(key: str, base: dict) -> None:
    """Only student-side keys may vary: everything upstream of the students is reused from the run."""
    if key in SWEEPABLE or key.startswith("student."):
        return   # an unknown student.* key is refused by the config itself, with its own "did you mean"
    allowed = f"{', '.join(SWEEPABLE)} or student.*"
    if _is_config_key(key, base):
        raise MtkdError(f"cannot sweep '{key}': only student-side params ({allowed}) can be swept; "
                        f"teachers, logits and tasks are reused from the base run")
    raise MtkdError(f"cannot sweep '{key}': unknown parameter{did_you_mean(key, sweepable_keys())}; "
                    f"sweepable: {allowed}")


def _is_config_key(key: str, node) -> bool:
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def varying(params: list[Param]) -> list[int]:
    """Indices of the params with several values (the axes of the plots); the others are fixed settings."""
    return [i for i, p in enumerate(params) if len(p.values) > 1]


def point_folder(params: list[Param], values) -> str:
    return "_".join(f"{p.short}={re.sub(r'[^A-Za-z0-9.+-]', '_', v)}" for p, v in zip(params, values))


def plan(run_dir, params: list[Param], name: str, strategies=None, single=True, baseline=True) -> Sweep:
    """Every point's config, validated before anything is trained or written."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise MtkdError(f"{run_dir} is not a run directory (no config.yaml)")
    base = load_config(run_dir / "config.yaml")
    keys = [p.key for p in params]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise MtkdError(f"--param '{dup}' is given twice; list its values once: {dup}=v1,v2,...")
    if not params or len(varying(params)) > 2:
        raise MtkdError(f"a sweep varies one or two --param (a 1-D sweep or a joint grid; a --param with one value "
                        f"is a fixed setting), got {len(varying(params))} with several values")
    for key in keys:
        check_sweepable(key, to_dict(base))
    if not safe_name(name):
        raise MtkdError(f"sweep name '{name}' may only use letters, digits, '-' and '_'")
    distill_only = set(keys) <= DISTILL_ONLY
    common = []
    if strategies is not None:
        common.append(f"distill.strategies=[{','.join(strategies)}]")
    if not single:
        common.append("distill.single_teacher=false")
    if not baseline or distill_only:
        common.append("distill.baseline=false")
    if "seed" in keys:   # one seed per point; every teacher kept at the seed it was trained with, so it is reused
        common.append("seeds=null")
        common += [f"teachers.{i}.seed={t.seed if t.seed is not None else base.seed}" for i, t in enumerate(base.teachers)]
    points = []
    for values in itertools.product(*(p.values for p in params)):
        cfg = load_config(run_dir / "config.yaml", [*common, *(f"{p.key}={v}" for p, v in zip(params, values))])
        points.append(Point(point_folder(params, values), values, cfg))
    folders = [p.folder for p in points]
    if len(set(folders)) != len(folders):
        raise MtkdError(f"two sweep points share the folder name '{next(f for f in folders if folders.count(f) > 1)}'; "
                        f"write the values differently")
    return Sweep(run_dir, base, run_dir / SWEEP_DIR / name, params, points,
                 baseline_from_base=distill_only and baseline and base.distill.baseline)


# ---------------------------------------------------------------- running

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


@dataclass(frozen=True)
class OnRay:
    """Run the points as Ray tasks: on a local Ray started here (address None) or an existing cluster
    ("auto", "ray://host:10001", "host:6379"; every node must see the run directory and have mtkd)."""
    address: str | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    local_cpus: int | None = None     # CPUs of a local Ray (default: all of this machine's)


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
        _execute_on_ray(sweep, ray, recompute, log, donors)
    else:
        for i, point in enumerate(sweep.points, 1):
            log(f"[sweep {i}/{len(sweep.points)}] {point.folder}")
            Run(point.cfg, sweep.folder / point.folder, recompute, log, donors=donors).execute("evaluate")
    return tasks, [r for point in sweep.points for r in point_results(sweep, point, tasks)]


def _run_point(cfg: RunConfig, out: str, recompute: bool, threads: int, driver: tuple[str, int],
               donors: list[Path]) -> list[str]:
    """One sweep point inside a Ray worker; returns what it logged (its RUN/log.txt has it too)."""
    import torch
    _die_with(driver)
    torch.set_num_threads(threads)   # the task's CPUs, not the machine's: points share the cores fairly
    lines: list[str] = []
    Run(cfg, Path(out), recompute, lines.append, donors=donors).execute("evaluate")
    return lines


def _die_with(driver: tuple[str, int]) -> None:
    """A worker on the driver's machine ends when the driver does: a killed driver takes its local Ray
    down, but a worker busy training would only notice later and might still write its point, under the
    feet of the rerun. (On a cluster, Ray ends a dead driver's tasks itself.)"""
    import socket
    import threading
    host, pid = driver
    if host != socket.gethostname():
        return

    def watch():
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
            threading.Event().wait(0.5)
    threading.Thread(target=watch, daemon=True, name="mtkd-driver-watch").start()


def _execute_on_ray(sweep: Sweep, spec: OnRay, recompute: bool, log, donors: list[Path]) -> None:
    try:
        import ray
    except ImportError:
        raise MtkdError("--ray needs Ray: pip install 'mtkd[ray]' (or pip install ray)") from None
    if runtime.world() > 1:
        raise MtkdError("--ray runs the sweep's points as Ray tasks: start the driver as one process, not under accelerate launch")
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=spec.address, num_cpus=spec.local_cpus if spec.address is None else None,
                     include_dashboard=False, configure_logging=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise MtkdError(f"cannot start or reach Ray at {spec.address or 'a local instance'}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    where = spec.address or f"a local Ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"
    log(f"[sweep] {len(sweep.points)} points as Ray tasks on {where}, {spec.cpus_per_task:g} CPU and "
        f"{spec.gpus_per_task:g} GPU each")
    task = ray.remote(num_cpus=spec.cpus_per_task, num_gpus=spec.gpus_per_task, max_retries=0)(_run_point)
    threads = max(1, int(spec.cpus_per_task))
    import socket
    driver = (socket.gethostname(), os.getpid())
    pending = {task.remote(p.cfg, str(sweep.folder / p.folder), recompute, threads, driver, donors): p
               for p in sweep.points}
    try:
        for done in range(1, len(sweep.points) + 1):
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            point = pending.pop(ref)
            try:
                lines = ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if isinstance(e.cause, Exception) else e
                raise MtkdError(f"sweep point {point.folder} failed on Ray: "
                                f"{cause if isinstance(cause, MtkdError) else type(cause).__name__ + ': ' + str(cause)}") from None
            log(f"[sweep {done}/{len(sweep.points)}] {point.folder} done")
            for line in lines:
                log(line)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


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


# ---------------------------------------------------------------- sweep outputs

def results_table(sweep: Sweep, tasks: list[TaskData], results: list[Result]) -> Table:
    metric_columns = [c for t in tasks for c in t.metric_columns]
    per_task = [t.name for t in tasks] if len(tasks) > 1 else []   # each task's validation metric (AVG's parts)
    header = ["point", *(p.short for p in sweep.params), "method", "type", *metric_columns, "AVG", "val_AVG",
              *(f"{t}_val" for t in per_task), *(f"{t.name}_gap_closed" for t in tasks), "trained_in"]
    rows = [[r.point.folder, *r.point.values, r.method, r.type, *(cell(r.columns.get(c)) for c in metric_columns),
             cell(r.avg), cell(r.val_avg), *(cell(r.val_official.get(t)) for t in per_task),
             *(cell(r.gap.get(t.name)) for t in tasks), r.trained_in] for r in results]
    return Table(header, rows)


def methods_of(results: list[Result]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((r.method, r.type) for r in results))


def best_single(results: list[Result], task: str | None = None) -> str | None:
    """The single-teacher student with the highest validation metric, mean over the points (`task`'s, or AVG)."""
    return _best_of_type(results, "single", task)


def _best_of_type(results: list[Result], type_: str, task: str | None = None) -> str | None:
    """Selected on validation (the mean over the points), ties broken by config order; None if there is none."""
    means = {}
    for method, t in methods_of(results):
        if t == type_:
            means[method] = np.mean([r.score(task, "validation") for r in results if r.method == method])
    return max(means, key=means.get) if means else None   # max keeps the first of equals: config order


def best_result(results: list[Result], task: str | None = None) -> Result | None:
    """The point x method with the highest validation score (`task`'s metric, or AVG); first on ties."""
    return max(results, key=lambda r: r.score(task, "validation")) if results else None


def line_plot(sweep: Sweep, tasks: list[TaskData], results: list[Result]) -> bytes:
    param = sweep.params[(varying(sweep.params) or [0])[0]]   # the varying one (a one-param sweep may have one value)
    panels = []
    for task in tasks:
        lines = [(m, t, [r.official[task.name] for p in sweep.points for r in results if r.point.folder == p.folder and r.method == m])
                 for m, t in methods_of(results)]
        panels.append({"task": task.name, "metric": task.metric, "lines": lines})
    return figures.sweep_lines(param.short, list(param.values), panels)


def heatmaps(sweep: Sweep, tasks: list[TaskData], results: list[Result]) -> dict[str, bytes]:
    """grid_<task>_<method>.png for every multi-teacher strategy and the best single-teacher student."""
    ix, iy = varying(sweep.params)
    px, py = sweep.params[ix], sweep.params[iy]
    out = {}
    for task in tasks:
        chosen = [(m, "") for m, t in methods_of(results) if t == "multi"]
        single = best_single(results, task.name)
        if single:
            chosen.append((single, " (best single teacher, selected on validation)"))
        for method, note in chosen:
            grid = np.full((len(py.values), len(px.values)), np.nan)
            mine = [r for r in results if r.method == method]
            for r in mine:
                x, y = r.point.values[ix], r.point.values[iy]
                grid[py.values.index(y), px.values.index(x)] = r.official[task.name]
            top = best_result(mine, task.name)
            cell_ = (py.values.index(top.point.values[iy]), px.values.index(top.point.values[ix])) if top else None
            title = f"{task.name}: {method}{note}, {task.metric} over {px.short} × {py.short}"
            out[f"grid_{task.name}_{method}.png"] = figures.sweep_heatmap(title, px.short, list(px.values), py.short,
                                                                          list(py.values), grid, task.metric, cell_)
    return out


def best_table(results: list[Result]) -> Table:
    """The best and the worst point per method: selected on validation AVG (first point on ties), with eval AVG."""
    rows = []
    for method, type_ in methods_of(results):
        mine = [r for r in results if r.method == method]
        if len({r.val_avg for r in mine}) == 1 and len({r.avg for r in mine}) == 1:
            where = "the same at every point" + (" (from the base run)" if mine[0].trained_in == "base run" else "")
            rows.append([method, type_, where, cell(mine[0].val_avg), cell(mine[0].avg), "", "", ""])
            continue
        hi = best_result(mine)
        lo = min(mine, key=lambda r: r.val_avg)
        rows.append([method, type_, hi.point.folder, cell(hi.val_avg), cell(hi.avg),
                     lo.point.folder, cell(lo.val_avg), cell(lo.avg)])
    return Table(["method", "type", "best point (selected on validation)", "val AVG", "AVG", "worst point",
                  "worst val AVG", "worst AVG"], rows)


def per_task_table(results: list[Result], metrics: dict[str, str] | None = None) -> Table | None:
    """With several tasks: per method and task, the point selected on that task's validation metric (first
    on ties; "the same at every point" when nothing varies, as in best_table) with its validation and eval
    metric; None with one task (best_table says it all). `metrics`: task -> its official metric's name."""
    tasks = list(dict.fromkeys(t for r in results for t in r.official))
    if len(tasks) < 2:
        return None
    rows = []
    for method, type_ in methods_of(results):
        mine = [r for r in results if r.method == method]
        for task in tasks:
            sel = [r for r in mine if task in r.val_official]
            if not sel:
                continue
            hi = best_result(sel, task)
            where = hi.point.folder
            if len({r.val_official[task] for r in sel}) == 1 and len({r.official[task] for r in sel}) == 1:
                where = "the same at every point" + (" (from the base run)" if sel[0].trained_in == "base run" else "")
            rows.append([method, type_, task, (metrics or {}).get(task, ""), where, cell(hi.val_official[task]),
                         cell(hi.official[task])])
    return Table(["method", "type", "task", "metric", "best point (selected on the task's validation)", "val", "eval"],
                 rows)


def best_sentences(sweep: Sweep, results: list[Result]) -> list[str]:
    """What was swept, the best point overall and best multi vs best single (selected on validation), the seeds."""
    axes = varying(sweep.params) or ([0] if len(sweep.params) == 1 else [])   # one param of one value: still 'swept'
    swept = "; ".join(f"{p.short} (`{p.key}`) ∈ {{{', '.join(p.values)}}}" for i, p in enumerate(sweep.params) if i in axes)
    fixed = "; ".join(f"{p.short} (`{p.key}`) = {p.values[0]}" for i, p in enumerate(sweep.params) if i not in axes)
    lines = [f"Swept: {swept or 'nothing (one point)'}.{f' Fixed: {fixed}.' if fixed else ''} Score: AVG, the mean over "
             "tasks of each task's official metric (%). The best point is selected on validation (val AVG, first point "
             "on ties) and reported on eval (AVG); the worst likewise."]
    top = best_result(results)
    lines.append(f"Best overall (selected on validation): **{top.method}** at **{top.point.folder}** "
                 f"(val AVG {cell(top.val_avg)}, eval AVG {cell(top.avg)}).")
    m = best_result([r for r in results if r.type == "multi"])
    s = best_result([r for r in results if r.type == "single"])
    if m and s:
        lines.append(f"Best multi-teacher student (selected on validation): {m.method} at {m.point.folder} "
                     f"(eval {cell(m.avg)}); best single-teacher student: {s.method} at {s.point.folder} "
                     f"(eval {cell(s.avg)}); difference on eval {m.avg - s.avg:+.2f} pp.")
    n = len(seeds_of(sweep.points[0].cfg))
    runs = "one training run (one seed)" if n == 1 else f"the mean of {n} training runs (seeds {seeds_of(sweep.base)})"
    lines.append(f"Every point is {runs}: differences smaller than the seed-to-seed spread (`mtkd seeds`) and "
                 "the eval sampling error (`mtkd analyze` on a run: significance.csv) are noise.")
    return lines


def best_markdown(sweep: Sweep, results: list[Result], metrics: dict[str, str] | None = None) -> str:
    """best.md: which point is best for each method (best_table) and the sentences around it."""
    first, *rest = best_sentences(sweep, results)
    per_task = per_task_table(results, metrics)
    extra = [] if per_task is None else [
        "", "Per task: the point selected on each task's own validation metric (official, %), with its eval metric.",
        "", per_task.to_markdown().rstrip()]
    return "\n".join([f"# Best point per method: sweep `{sweep.folder.name}`", "", first, "",
                      best_table(results).to_markdown().rstrip(), "", *rest[:-1], *extra, "", rest[-1]]) + "\n"


def write_outputs(sweep: Sweep, tasks, results, extra: dict[str, str | bytes] | None = None,
                  summary: list[str] | None = None) -> list[Path]:
    if not runtime.is_main():
        return []
    written = results_table(sweep, tasks, results).write(sweep.folder, "sweep_results")
    for name, content in (extra or {}).items():
        path = sweep.folder / name
        (atomic_write_bytes if isinstance(content, bytes) else atomic_write_text)(path, content)
        written.append(path)
    atomic_write_json(sweep.folder / "sweep.json", {   # written last: what this sweep was
        "base_run": str(sweep.run_dir), "params": {p.key: list(p.values) for p in sweep.params},
        "points": [{"folder": p.folder, "values": dict(zip((q.key for q in sweep.params), p.values))}
                   for p in sweep.points],
        "baseline_from_base": sweep.baseline_from_base, "outputs": [p.name for p in written],
        "summary": summary or []})
    return written


def default_name(params: list[Param]) -> str:
    return "_x_".join(re.sub(r"[^A-Za-z0-9_-]", "_", p.short) for p in params)


def run_sweep(run_dir, specs: list[str], name: str | None = None, strategies=None, single=True, baseline=True,
              recompute=False, log=print, ray: OnRay | None = None) -> Path:
    """A 1-D sweep (one spec with several values) or a joint grid (two), plus any fixed settings (specs with
    one value); returns RUN/sweeps/<name>."""
    params = [parse_param(s) for s in specs]
    sweep = plan(run_dir, params, name or default_name(params), strategies, single, baseline)
    tasks, results = execute(sweep, recompute, log, ray)
    axes = varying(params)
    if len(axes) == 1 or len(params) == 1:
        extra = {f"sweep_{default_name([params[(axes or [0])[0]]])}.png": line_plot(sweep, tasks, results)}
    else:   # a joint grid, or several fixed settings (one point: nothing to plot)
        extra = heatmaps(sweep, tasks, results) if axes else {}
    metrics = {t.name: t.metric for t in tasks}
    extra["best.md"] = best_markdown(sweep, results, metrics)
    extra["best.csv"] = best_table(results).to_csv()
    if (per_task := per_task_table(results, metrics)) is not None:
        extra["best_per_task.csv"] = per_task.to_csv()
    write_outputs(sweep, tasks, results, extra, summary=best_sentences(sweep, results))
    return sweep.folder


# ---------------------------------------------------------------- seeds and their statistics

def t_critical(df: int) -> float:
    """t(0.975, df): the two-sided 95% quantile of Student's t (scipy comes with scikit-learn)."""
    from scipy import stats
    return float(stats.t.ppf(0.975, df))


@dataclass
class Interval:
    n: int
    mean: float
    std: float          # sample std (n - 1); NaN when n < 2
    low: float          # mean ± t(0.975, n-1) · std / sqrt(n); NaN when n < 2
    high: float


def t_interval(values) -> Interval:
    x = np.asarray(values, dtype=float)
    n, mean = len(x), float(np.mean(x)) if len(x) else math.nan
    if n < 2:
        return Interval(n, mean, math.nan, math.nan, math.nan)
    std = float(np.std(x, ddof=1))
    half = t_critical(n - 1) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)


STEADINESS = ["worst", "worst_seed", "churn", "churn_ci95_low", "churn_ci95_high"]


def seed_summary(tasks: list[TaskData], results: list[Result]) -> tuple[Table, list[str]]:
    """Per task (and AVG over tasks when there are several) and method: mean, std, n, 95% t-interval of the
    official metric across seeds, the worst seed, and prediction churn between seeds (analysis.stability;
    per task only); then the paired difference best multi − best single (both selected on validation: the
    highest mean validation metric across seeds), seed by seed."""
    from .analysis.stability import stability
    header = ["task", "method", "type", "n", "mean", "std", "ci95_low", "ci95_high", *STEADINESS, "share_multi_wins", "ties"]
    rows, sentences = [], []
    scopes = [t.name for t in tasks] + (["AVG"] if len(tasks) > 1 else [])
    for scope in scopes:
        score = (lambda r: r.avg) if scope == "AVG" else (lambda r, s=scope: r.official[s])   # reported: eval
        for method, type_ in methods_of(results):
            mine = [r for r in results if r.method == method]
            iv = t_interval([score(r) for r in mine])
            seed_of = lambda r: r.point.values[0] if len(r.point.values) == 1 else r.point.folder
            st = stability({seed_of(r): score(r) for r in mine},
                           None if scope == "AVG" else {seed_of(r): r.preds[scope] for r in mine if scope in r.preds})
            rows.append([scope, method, type_, str(iv.n), *(cell(v) for v in (iv.mean, iv.std, iv.low, iv.high)),
                         cell(st.worst), str(st.worst_seed), *(cell(v) for v in (st.churn, st.churn_low, st.churn_high)),
                         "", ""])
        multi = _best_of_type(results, "multi", None if scope == "AVG" else scope)
        single = _best_of_type(results, "single", None if scope == "AVG" else scope)
        if not (multi and single):
            continue
        by_point = {}
        for r in results:
            if r.method in (multi, single):
                by_point.setdefault(r.point.folder, {})[r.method] = score(r)
        diffs = [v[multi] - v[single] for v in by_point.values() if len(v) == 2]
        iv = t_interval(diffs)
        wins, ties = sum(d > 0 for d in diffs), sum(d == 0 for d in diffs)
        rows.append([scope, f"{multi} - {single}", "paired_difference", str(iv.n),
                     *(cell(v) for v in (iv.mean, iv.std, iv.low, iv.high)), *[""] * len(STEADINESS),
                     cell(wins / len(diffs)), str(ties)])
        sentences.append(f"- **{scope}**: best multi ({multi}) − best single ({single}) = {iv.mean:+.2f} pp, "
                         f"95% CI [{cell(iv.low)}, {cell(iv.high)}] over {iv.n} seeds; multi better on {wins}/{iv.n} "
                         f"seeds, tied on {ties}.")
    return Table(header, rows), sentences


def seed_markdown(sweep: Sweep, table: Table, sentences: list[str]) -> str:
    seeds = ", ".join(p.values[0] for p in sweep.points)
    n = 8 + len(STEADINESS)
    method_rows = Table(table.columns[:n], [r[:n] for r in table.rows if r[2] != "paired_difference"])
    drop = {2, *range(8, n)}   # type and the steadiness columns
    paired = Table([c for i, c in enumerate(table.columns) if i not in drop],
                   [[c for i, c in enumerate(r) if i not in drop] for r in table.rows if r[2] == "paired_difference"])
    lines = [f"# Across seeds: `{sweep.folder.name}`", "",
             f"Seeds {seeds}; teachers and their logits are the base run's (seed "
             f"{sweep.base.seed}) at every seed, so the spread is the students' alone. Metric: each task's official "
             "metric on eval (%). std is the sample standard deviation; the interval is mean ± t(0.975, n−1)·std/√n. "
             "worst: the lowest seed (worst_seed). churn: % of eval examples whose predicted label differs between "
             "two seeds, averaged over every pair of seeds, with a 95% bootstrap interval over eval examples.",
             "", method_rows.to_markdown().rstrip(), "",
             "## Best multi-teacher − best single-teacher student, paired by seed", "",
             "Best = the method of that type with the highest mean validation metric across seeds (selected on "
             "validation, for both sides; first in config order on ties), compared on eval. A win is a strictly "
             "higher eval metric at the same seed.", ""]
    if paired.rows:
        lines += [paired.to_markdown().rstrip(), "", *sentences]
    else:
        lines.append("No comparison: the sweep has no multi-teacher or no single-teacher student.")
    return "\n".join(lines) + "\n"


def run_seeds(run_dir, seeds: list[str], name: str = "seeds", strategies=None, single=True, baseline=True,
              recompute=False, log=print, ray: OnRay | None = None) -> Path:
    """The students retrained at every seed; returns RUN/sweeps/<name> with seed_summary.csv/.md."""
    if not seeds:
        raise MtkdError("--seeds needs at least one seed, e.g. --seeds 1,2,3")
    sweep = plan(run_dir, [Param("seed", tuple(dict.fromkeys(seeds)))], name, strategies, single, baseline)
    tasks, results = execute(sweep, recompute, log, ray)
    table, sentences = seed_summary(tasks, results)
    write_outputs(sweep, tasks, results, {"seed_summary.csv": table.to_csv(),
                                          "seed_summary.md": seed_markdown(sweep, table, sentences)},
                  summary=sentences)
    return sweep.folder
