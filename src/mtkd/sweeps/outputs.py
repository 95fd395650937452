"""What a sweep writes into RUN/sweeps/<name>/: sweep_results.csv/.md (every point x method), best.md/.csv
(the best and worst point per method, selected on validation), best_per_task.csv, the line plot or the
heatmaps, and sweep.json (written last: what the sweep was)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import runtime
from ..analysis import figures
from ..config import seeds_of
from ..io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..tables import Table, cell
from ..tasks import TaskData
from .execute import Result
from .plan import Sweep, varying


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
    return best_of_type(results, "single", task)


def best_of_type(results: list[Result], type_: str, task: str | None = None) -> str | None:
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
