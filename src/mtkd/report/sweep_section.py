"""One report section per finished sweep of the run (RUN/sweeps/*, and those of a run folder inside RUN).

A joint grid (two swept settings) is shown as one figure per task with every selected student's grid (every
multi-teacher strategy and the task's validation-best single-teacher student, as `mtkd sweep` draws them) on one
shared colour scale, drawn from sweep_results.csv; the sweep's own per-student PNGs are linked beside it.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Callable

import numpy as np

from mtkd.report import plots
from mtkd.tables import Table, read_csv

SWEEP_TABLES = ("seed_summary.csv", "best.csv", "best_per_task.csv", "sweep_results.csv")
SHORT = {"distill.temperature": "T"}   # the column names sweep_results.csv gives the swept keys (mtkd.sweeps)


def sweep_folders(run_dir: Path) -> list[Path]:
    """RUN/sweeps/*, and the sweeps of a run folder directly inside RUN (one holding run.json, e.g. a sweep
    base with some of its tasks)."""
    def runs():
        yield run_dir
        for d in sorted(run_dir.iterdir()):
            try:
                if d.is_dir() and (d / "run.json").is_file():
                    yield d
            except OSError:   # an unreadable folder is no run
                continue
    out = []
    for base in runs():
        try:
            out += [f for f in sorted((base / "sweeps").glob("*")) if (f / "sweep.json").is_file()]
        except OSError:
            continue
    return out


def sweep_blocks(run_dir: Path, save: Callable[[str, bytes], str] | None = None) -> list[tuple]:
    """One section per finished sweep: what it varied, its best point per method (selected on validation), the
    seed statistics where it has them, every point's results and its plots. `save(name, png)` stores a figure the
    report draws and returns its path (None: no shared-scale grids). A sweep whose files cannot be read is left
    out, saying so."""
    blocks = []
    for folder in sweep_folders(run_dir):
        rel = folder.relative_to(run_dir).as_posix()
        try:
            blocks += _sweep_section(folder, rel, save)
        except (OSError, ValueError, TypeError, AttributeError, KeyError, IndexError, csv.Error) as e:
            blocks += [("h2", f"Sweep {rel}"), ("p", f"{rel} is unreadable ({type(e).__name__}: {e}): sweep left out.")]
    return blocks


def _sweep_section(folder: Path, rel: str, save) -> list[tuple]:
    info = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    params = info["params"]
    outputs = [str(o) for o in info.get("outputs", [])]
    command = "mtkd seeds" if list(params) == ["seed"] else "mtkd sweep"
    base = Path(str(info.get("base_run") or "")).resolve().name or "?"
    blocks = [("h2", f"Sweep {rel}"),
              ("p", f"`{command}` of the run {base}: "
                    + "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in params.items())
                    + f". Tables and plots from {rel}/ (rerun `mtkd report` after a sweep to refresh this section).")]
    if info.get("summary"):
        blocks.append(("ul", [str(line).removeprefix("- ").replace("**", "") for line in info["summary"]]))
    tables = [name for name in SWEEP_TABLES if name in outputs and (folder / name).is_file()]
    if "best.md" in outputs and "best.csv" not in tables and (folder / "best.md").is_file():   # an older sweep
        best = (folder / "best.md").read_text(encoding="utf-8")
        blocks.append(("md", re.sub(r"\A# [^\n]*\n+", "", best)))
    blocks += [("table", read_csv(folder / name), f"{rel}/{name}") for name in tables]
    pngs = [o for o in outputs if o.endswith(".png") and (folder / o).is_file()]
    for png in pngs:
        (folder / png).read_bytes()   # unreadable: the whole sweep is left out, not the report
    grids = [p for p in pngs if p.startswith("grid_")]
    shared = _shared_grids(folder, rel, params, save) if save and grids and "sweep_results.csv" in tables else []
    if shared:
        blocks += shared
        blocks.append(("p", "Each student's grid as the sweep drew it: "
                            + ", ".join(f"{rel}/{p}" for p in grids) + "."))
        pngs = [p for p in pngs if p not in grids]
    blocks += [("img", f"{rel}/{p}", {"title": f"{rel}: {Path(p).stem}", "caption": f"From {rel}/{p}."}) for p in pngs]
    return blocks


def _shared_grids(folder: Path, rel: str, params: dict, save) -> list[tuple]:
    """The grid's axes in the order the sweep was given (sweep_results.csv's columns between point and method;
    sweep.json's keys may be sorted): the first swept setting across, the second up, as `mtkd sweep` draws them."""
    table = read_csv(folder / "sweep_results.csv")
    rows = [dict(zip(table.columns, r)) for r in table.rows]
    values = {SHORT.get(k, k.rsplit(".", 1)[-1]): [str(v) for v in vs] for k, vs in params.items()}
    varying = [c for c in table.columns[1:table.columns.index("method")] if len(values.get(c, [])) > 1]
    if len(varying) != 2:
        return []
    (px, xs), (py, ys) = ((c, values[c]) for c in varying)
    tasks = [c.removesuffix("_gap_closed") for c in table.columns if c.endswith("_gap_closed")]
    blocks = []
    for task in tasks:
        metric_col = next(c for c in table.columns[table.columns.index("type") + 1:] if c.startswith(f"{task}_"))
        val_col = f"{task}_val" if f"{task}_val" in table.columns else "val_AVG"
        chosen = [(m, m) for m in dict.fromkeys(r["method"] for r in rows if r["type"] == "multi")]
        singles = {m: np.mean([_f(r[val_col]) for r in rows if r["method"] == m])
                   for m in dict.fromkeys(r["method"] for r in rows if r["type"] == "single")}
        if singles:   # the validation-best single-teacher student (mean over the points; first on ties)
            best = max(singles, key=singles.get)
            chosen.append((best, f"{best} (best single, val)"))
        grids = []
        for method, label in chosen:
            mine = [r for r in rows if r["method"] == method]
            values = np.full((len(ys), len(xs)), np.nan)
            for r in mine:
                values[ys.index(r[py]), xs.index(r[px])] = _f(r[metric_col])
            top = max(mine, key=lambda r: _f(r[val_col]))   # first on ties, as the sweep selects
            grids.append((label, values, (ys.index(top[py]), xs.index(top[px]))))
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"sweep_{rel}_{task}.png")
        path = save(name, plots.sweep_grids(f"{task}: {metric_col} over {px} × {py}", px, xs, py, ys, grids,
                                            metric_col))
        blocks.append(("img", path, {"title": f"{rel}: {task}, every selected student on one colour scale",
                                     "caption": f"Drawn from {rel}/sweep_results.csv: every multi-teacher strategy "
                                                f"and the validation-best single-teacher student; one colour scale "
                                                f"for all panels; box: each student's best cell, selected on "
                                                f"validation."}))
    return blocks


def _f(x: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")
