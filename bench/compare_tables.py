"""Two runs' master tables side by side: each model's official metric per task in run B minus run A, and
where A has several seeds, how far B's value lies from A's mean in A's seed sd — e.g. the study in bf16
at one seed against the published float32 study at three:

    python bench/compare_tables.py docs/results/study_cpu docs/results/study_cpu_bf16

A and B: run folders or published result folders (config.yaml and results/master_results.csv). Prints a
markdown table (model x task: B - A, and z = (B - A) / sd_A where A has a sd) and, per task and over every
student (no-KD, single- and multi-teacher), the mean difference — over every student and task with a 95%
bootstrap CI (students resampled; students of one task share teachers, so read it as a description of these
students, not of every possible run) — and how many students lie within 2 sd of A's mean.
Last line: mean_diff=<mean of B - A over every student and task, in points>."""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import numpy as np
import yaml


def official_columns(header: list[str], tasks: list[str]) -> dict[str, str]:
    """task -> its official metric's column: the first `<task>_...` column (not a _sd) after the previous
    task's (the master table lists each task's official metric first, in the config's task order)."""
    out, start = {}, 0
    for task in tasks:
        for i in range(start, len(header)):
            col = header[i]
            if col.startswith(f"{task}_") and not col.endswith("_sd"):
                out[task], start = col, i + 1
                break
        else:
            raise ValueError(f"the master table has no column for task '{task}'")
    return out


def load(folder: Path) -> tuple[list[str], list[dict]]:
    """(task names, master table rows) of a run or published results folder."""
    cfg, table = folder / "config.yaml", folder / "results" / "master_results.csv"
    for f in (cfg, table):
        if not f.is_file():
            raise ValueError(f"{f} not found (give a run folder or a published results folder)")
    tasks = (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise ValueError(f"{cfg} lists no tasks")
    if not all(isinstance(t, str) or (isinstance(t, dict) and isinstance(t.get("name"), str)) for t in tasks):
        raise ValueError(f"{cfg}: every task must be a name or a mapping with a name")
    tasks = [t if isinstance(t, str) else t["name"] for t in tasks]
    with open(table, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"method", "type"} <= set(rows[0]):
        raise ValueError(f"{table} is not a master table (no rows, or no method and type columns)")
    return tasks, rows


def mean_ci(values: list[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean of `values` (seeded: the same values give the same CI)."""
    v = np.asarray(values, dtype=float)
    means = v[np.random.default_rng(seed).integers(0, len(v), (resamples, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def compare(a: Path, b: Path) -> tuple[list[str], float]:
    """(lines to print, mean B - A over every student and task)."""
    tasks_a, rows_a = load(a)
    tasks_b, rows_b = load(b)
    tasks = [t for t in tasks_a if t in tasks_b]
    if not tasks:
        raise ValueError(f"{a} and {b} share no task")
    cols_a = official_columns(list(rows_a[0]), tasks_a)
    cols_b = official_columns(list(rows_b[0]), tasks_b)
    by_b = {r["method"]: r for r in rows_b}
    lines = [f"A = {a}, B = {b}; official metric on eval, B - A (z = (B - A) / sd of A's seeds)", "",
             "| model | type | " + " | ".join(f"{t} {cols_a[t][len(t) + 1:]}" for t in tasks) + " |",
             "|---|---|" + "---|" * len(tasks)]
    diffs: dict[str, list[float]] = {t: [] for t in tasks}
    within: dict[str, list[bool]] = {t: [] for t in tasks}
    for ra in rows_a:
        rb = by_b.get(ra["method"])
        if rb is None:
            continue
        cells = []
        for t in tasks:
            va, vb, sd = ra[cols_a[t]] or "", rb[cols_b[t]] or "", ra.get(cols_a[t] + "_sd") or ""   # short row: None
            if va == "" or vb == "":
                cells.append("n/a")
                continue
            try:
                d = float(vb) - float(va)
            except ValueError:
                raise ValueError(f"{ra['method']}, {t}: not a number ({va!r} in A, {vb!r} in B)") from None
            cell = f"{d:+.2f}"
            sd = float(sd) if sd != "" else 0.0
            if sd > 0:
                cell += f" (z {d / sd:+.1f})"
            cells.append(cell)
            if ra["type"] != "teacher":
                diffs[t].append(d)
                if sd > 0:
                    within[t].append(abs(d) <= 2 * sd)
        lines.append(f"| {ra['method']} | {ra['type']} | " + " | ".join(cells) + " |")
    lines.append("")
    every = [d for t in tasks for d in diffs[t]]
    if not every:
        raise ValueError(f"{a} and {b} share no student")
    for t in tasks:
        if diffs[t]:
            w = within[t]
            lines.append(f"- {t}: students' mean B - A {statistics.mean(diffs[t]):+.2f} (min {min(diffs[t]):+.2f}, "
                         f"max {max(diffs[t]):+.2f}, n={len(diffs[t])})"
                         + (f"; within 2 sd of A's mean: {sum(w)} of {len(w)}" if w else ""))
    allw = [x for t in tasks for x in within[t]]
    lo, hi = mean_ci(every)
    lines.append(f"- every student and task: mean B - A {statistics.mean(every):+.2f} (95% bootstrap CI over "
                 f"students [{lo:+.2f}, {hi:+.2f}]), mean |B - A| "
                 f"{statistics.mean(abs(d) for d in every):.2f} (n={len(every)})"
                 + (f"; within 2 sd of A's mean: {sum(allw)} of {len(allw)}" if allw else ""))
    return lines, statistics.mean(every)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", type=Path, help="run or results folder A (the reference)")
    ap.add_argument("b", type=Path, help="run or results folder B")
    args = ap.parse_args()
    try:
        lines, mean = compare(args.a, args.b)
    except (ValueError, OSError, yaml.YAMLError, csv.Error, UnicodeDecodeError) as e:
        sys.exit(f"error: {e}")
    print("\n".join(lines))
    print(f"mean_diff={mean:.3f}")


if __name__ == "__main__":
    main()
