"""The run's table, `RUN/results/master_results.csv` and `.md`: one row per model, read from every task's
eval stage (pipeline/evaluate.py) only -- rewritten by every run that reaches the evaluate stage."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..analysis.calibration import ece
from ..analysis.confidence import softmax
from ..analysis.load import transfer_lines
from ..io import atomic_write_text, load_npy, read_json
from ..tables import Table
from ..tasks import METRIC_SHORT, TaskData, table_values


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
    return 100.0 * ece(softmax(logits), np.asarray(labels))
