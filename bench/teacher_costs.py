"""What each teacher of a run cost and scored: per task and teacher, the minutes its teacher stage took
(fine-tuning; a cross-fitted teacher's k extra fits included), the minutes its logits stage took (scoring every
split, the transfer set included), the number of texts scored, and its official metric on validation and eval —
read from the run's stage manifests and cached logits, nothing recomputed.

    python bench/teacher_costs.py runs/voices_cpu_teachers                 # prints the markdown table
    python bench/teacher_costs.py runs/voices_cpu_teachers --out docs/results/voices_cpu/teachers.md

The minutes are the stages' own wall time on the machine that built them (manifest `seconds`): on a shared
machine they are upper bounds, not benchmarks.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def labels(data: Path, split: str) -> np.ndarray:
    with open(data / f"{split}.jsonl", encoding="utf-8") as f:
        return np.array([json.loads(line)["label"] for line in f if line.strip()])


def teacher_rows(run: Path) -> list[dict]:
    """One dict per (task, teacher): task, teacher, metric, fit_min, score_min, n_scored, validation, eval."""
    from mtkd.config import load_config
    from mtkd.tasks import compute_metrics
    cfg = load_config(run / "config.yaml")
    rows = []
    for task in cfg.tasks:
        data = run / task.name / "data"
        if not (data / "manifest.json").is_file():
            continue
        man = json.loads((data / "manifest.json").read_text())
        n_labels, metric, pos = len(man["label_names"]), man["metric"], man["pos_label"]
        y = {s: labels(data, s) for s in ("validation", "eval")}
        for t in cfg.teachers:
            fit, scored = run / task.name / "teachers" / t.name, run / task.name / "logits" / t.name
            if not (fit / "manifest.json").is_file() or not (scored / "manifest.json").is_file():
                continue
            score = {s: compute_metrics(y[s], np.load(scored / f"{s}.npy").argmax(1), n_labels, pos)[metric]
                     for s in y}
            n = sum(np.load(p, mmap_mode="r").shape[0] for p in scored.glob("*.npy"))
            rows.append({"task": task.name, "teacher": t.name, "metric": metric,
                         "fit_min": json.loads((fit / "manifest.json").read_text())["seconds"] / 60,
                         "score_min": json.loads((scored / "manifest.json").read_text())["seconds"] / 60,
                         "n_scored": n, **score})
    return rows


def markdown(rows: list[dict], run: Path) -> str:
    from _common import machine_info
    lines = [f"# What each teacher cost and scored ({run.name})", "", machine_info(), "",
             "Minutes are each stage's own wall time (manifest `seconds`) on the machine that built it, shared "
             "with other work: upper bounds, not benchmarks. *fit*: fine-tuning (a cross-fitted teacher's k fold "
             "copies included); *score*: its logits on every split and the transfer set. Metric: the task's "
             "official one (accuracy or F1 of the positive class), in %.", "",
             f"Command: `python bench/teacher_costs.py {run}`", "",
             "| task | teacher | fit min | score min | texts scored | validation | eval |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['teacher']} | {r['fit_min']:.1f} | {r['score_min']:.1f} | {r['n_scored']:,} | "
                     f"{r['validation']:.2f} | {r['eval']:.2f} ({r['metric']}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a run directory whose teachers were fitted (e.g. runs/voices_cpu_teachers)")
    ap.add_argument("--out", help="write the markdown table here too")
    args = ap.parse_args()
    run = Path(args.run)
    if not (run / "config.yaml").is_file():
        sys.exit(f"error: {run} is not a run directory (no config.yaml)")
    text = markdown(teacher_rows(run), run)
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
