"""`analyze(RUN)`: every analysis of a run, written as tables, plots and one manifest under
RUN/analysis/. The manifest is written last and lists the inputs (sha256 of each eval
manifest), the tables and figures with their titles, and the sha256 of every output."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from mtkd.analysis import agreement, calibration, confidence, diversity, failures, gap
from mtkd.analysis.load import TaskEval, load_run
from mtkd.io import atomic_write_bytes, atomic_write_text
from mtkd.report import figures
from mtkd.report.tables import Table, cell

ANALYSIS_DIR = "analysis"


def analyze(run_dir: Path, split: str = "validation") -> Path:
    """Analyse RUN (eval split for everything, `split` for teacher confidence); return RUN/analysis."""
    run_dir = Path(run_dir)
    tasks = load_run(run_dir, split)
    out = run_dir / ANALYSIS_DIR
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tables = []
    for name, title, description, table in _tables(tasks, split):
        written += table.write(out, name)
        tables.append({"name": name, "title": title, "description": description})
    success = gap.success_metrics(tasks)
    atomic_write_text(out / "success_metrics.json", json.dumps(success, indent=2) + "\n")
    written.append(out / "success_metrics.json")
    figs = []
    for file, title, caption, png in _figures(tasks):
        atomic_write_bytes(out / file, png)
        written.append(out / file)
        figs.append({"file": file, "title": title, "caption": caption})
    manifest = {
        "stage": "analyze",
        "split": split,
        "inputs": {t.name: sha256(t.manifest_path) for t in tasks},
        "tables": tables,
        "figures": figs,
        "outputs": {p.name: sha256(p) for p in written},
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def preds(task: TaskEval) -> np.ndarray:
    """Teacher argmax predictions on eval, int [K, N]."""
    return np.stack([m.logits.argmax(axis=1) for m in task.teachers]) if task.teachers \
        else np.zeros((0, len(task.labels)), dtype=np.int64)


def accuracy(model, labels) -> float:
    return 100.0 * float((model.logits.argmax(axis=1) == labels).mean())


def ranks(task: TaskEval) -> dict[str, int]:
    """Rank of every student (baseline, single, multi) by official metric: 1 = best, ties
    share the better rank (1, 2, 2, 4); students without a metric get no rank."""
    scored = [m for m in task.students if not np.isnan(m.metric)]
    return {m.method: 1 + sum(o.metric > m.metric for o in scored) for m in scored}


# ---------------------------------------------------------------- tables

def _tables(tasks: list[TaskEval], split: str):
    adv, gapc, shares, reg_acc, fails, conf, pairs, ceil, calib = ([] for _ in range(9))
    for t in tasks:
        s = gap.task_summary(t)
        adv.append([t.name, t.metric, cell(s["best_single"]["method"]), cell(s["best_single"]["value"]),
                    cell(s["best_multi"]["method"]), cell(s["best_multi"]["value"]),
                    cell(s["advantage_pp"]), s["verdict"]])
        for m in t.of_type("single", "multi"):
            gapc.append([t.name, m.method, m.type, cell(m.metric), cell(s["baseline"]["value"]),
                         cell(s["best_teacher"]["value"]), cell(s["gap_closed_pct"][m.method], 1)])
        tp = preds(t)
        region = agreement.regions(tp) if len(tp) else np.zeros(len(t.labels), dtype=int)
        for name, n, pct in agreement.region_shares(region):
            shares.append([t.name, str(len(tp)), name, str(n), cell(pct)])
        for m in t.models:
            p = m.logits.argmax(axis=1)
            reg_acc.append([t.name, m.method, m.type] + [cell(a) for a in agreement.region_accuracy(p, t.labels, region)]
                           + [cell(accuracy(m, t.labels))])
            probs = confidence.softmax(m.logits)
            calib.append([t.name, m.method, m.type, cell(accuracy(m, t.labels)),
                          cell(calibration.ece(probs, t.labels), 4),
                          cell(calibration.nll(confidence.log_softmax(m.logits), t.labels), 4),
                          cell(calibration.brier(probs, t.labels), 4)])
        for m in t.students:
            c = failures.failure_counts(m.logits.argmax(axis=1), tp, t.labels)
            row = [t.name, m.method, m.type, str(c["errors"])]
            for name in failures.CATEGORIES:
                row += [str(c[name]), cell(100.0 * c[name] / c["errors"] if c["errors"] else float("nan"), 1)]
            fails.append(row + [str(c["fixed all-wrong"])])
        for name in t.teacher_names:
            a = confidence.confidence_stats(t.split_logits[name])
            b = confidence.confidence_stats(t.split_logits[name], t.temperature)
            conf.append([t.name, split, name, cell(t.temperature, 1)]
                        + [cell(d[k], 4 if k != "pct max>0.95" else 2) for d in (a, b) for k in d])
        for a, b, pct in diversity.pairwise_agreement(tp, t.teacher_names):
            pairs.append([t.name, a, b, cell(pct)])
        if len(tp):
            counts = diversity.vote_counts(tp, len(t.label_names))
            maj = 100.0 * float((diversity.majority_vote(tp, len(t.label_names)) == t.labels).mean())
            best_acc = max(accuracy(m, t.labels) for m in t.teachers)
            ceil.append([t.name, str(len(tp)), cell(best_acc), cell(maj),
                         cell(diversity.oracle_accuracy(tp, t.labels)), cell(diversity.fleiss_kappa(counts), 4)])
    rank_table = _ranking_table(tasks)
    acc_cols = [f"acc {r} (%)" for r in agreement.REGIONS]
    return [
        ("advantage", "Multi-teacher advantage",
         f"advantage = best multi-teacher student - best single-teacher student, in percentage points of the "
         f"official metric; 'tie' when |advantage| < {gap.TIE_PP} pp.",
         Table(["task", "metric", "best single", "single (%)", "best multi", "multi (%)", "advantage (pp)", "verdict"], adv)),
        ("gap_closed", "Gap closed",
         "gap closed = (student - baseline) / (best teacher - baseline), in %, official metric; "
         "n/a when the baseline or the teachers are missing or the denominator is 0.",
         Table(["task", "student", "type", "metric (%)", "baseline (%)", "best teacher (%)", "gap closed (%)"], gapc)),
        ("ranking", "Ranking of student methods",
         "Rank of each student per task by official metric (1 = best; ties share the better rank; '-' = not run).",
         rank_table),
        ("agreement_regions", "Agreement regions (eval)",
         "all agree: every teacher predicts the same label; full disagree: no two teachers agree; "
         "partial disagree: the rest. With 2 teachers every disagreement is full; with 1 all examples agree.",
         Table(["task", "teachers", "region", "examples", "share (%)"], shares)),
        ("agreement_accuracy", "Accuracy by agreement region (eval)",
         "Accuracy of every model on the examples of each region (n/a: empty region).",
         Table(["task", "model", "type"] + acc_cols + ["overall acc (%)"], reg_acc)),
        ("failure_categories", "Failure categories of student errors (eval)",
         "Each student error is exactly one of: all teachers wrong; transfer failure (every teacher right); "
         "error on disagreement (teachers disagree, at least one right). Shares are % of the student's errors; "
         "'fixed all-wrong' counts examples the student gets right although every teacher is wrong.",
         Table(["task", "student", "type", "errors", "all teachers wrong", "%", "transfer failure", "%",
                "error on disagreement", "%", "fixed all-wrong"], fails)),
        ("teacher_confidence", f"Teacher confidence ({split})",
         "Mean max probability, mean entropy (nats) and % of examples with max probability > 0.95, "
         "at T = 1 and at the distillation temperature T.",
         Table(["task", "split", "teacher", "T", "mean max prob", "mean entropy (nats)", "max>0.95 (%)",
                "mean max prob @T", "mean entropy @T (nats)", "max>0.95 @T (%)"], conf)),
        ("teacher_pairwise_agreement", "Pairwise teacher agreement (eval)",
         "Share of eval examples on which two teachers predict the same label.",
         Table(["task", "teacher A", "teacher B", "agreement (%)"], pairs)),
        ("teacher_ceilings", "Teacher diversity and ceilings (eval)",
         "Majority vote: most predicted label (ties: lowest class index). Oracle: at least one teacher right. "
         "Fleiss' kappa over teachers as raters (n/a with one teacher).",
         Table(["task", "teachers", "best teacher acc (%)", "majority vote acc (%)", "oracle acc (%)", "Fleiss kappa"], ceil)),
        ("calibration", "Calibration (eval)",
         f"ECE with {calibration.N_BINS} equal-width bins of the max probability; NLL in nats; "
         "Brier = mean over examples of the summed squared error to the one-hot label (0..2).",
         Table(["task", "model", "type", "accuracy (%)", "ECE", "NLL", "Brier"], calib)),
    ]


def _ranking_table(tasks: list[TaskEval]) -> Table:
    per_task = {t.name: ranks(t) for t in tasks}
    methods = list(dict.fromkeys(m.method for t in tasks for m in t.students))
    rows = []
    for m in methods:
        got = [per_task[t.name][m] for t in tasks if m in per_task[t.name]]
        rows.append([m] + [str(per_task[t.name].get(m, "-")) for t in tasks]
                    + [cell(float(np.mean(got)) if got else float("nan"))])
    return Table(["method"] + [t.name for t in tasks] + ["mean rank"], rows)


# ---------------------------------------------------------------- figures

def _figures(tasks: list[TaskEval]):
    summaries = {t.name: gap.task_summary(t) for t in tasks}
    yield ("gap_analysis.png", "Teachers, baseline and students",
           "Left: official metric of every model per task (dashed: best teacher, dotted: baseline). "
           "Right: share of the baseline-to-best-teacher gap each KD student closes.",
           figures.gap_analysis([_gap_data(t, summaries[t.name]) for t in tasks]))
    region_data = []
    for t in tasks:
        tp = preds(t)
        region = agreement.regions(tp) if len(tp) else np.zeros(len(t.labels), dtype=int)
        region_data.append({"task": t.name, "shares": [pct for _, _, pct in agreement.region_shares(region)],
                            "models": {m.method: agreement.region_accuracy(m.logits.argmax(axis=1), t.labels, region)
                                       for m in t.students}})
    yield ("agreement_breakdown.png", "Student accuracy by teacher-agreement region",
           "Accuracy of each student on the eval examples where the teachers all agree, partly disagree or "
           "fully disagree (share of examples in the axis labels).",
           figures.agreement_breakdown(region_data, list(agreement.REGIONS)))
    fail_data = [{"task": t.name, "n": len(t.labels),
                  "models": {m.method: failures.failure_counts(m.logits.argmax(axis=1), preds(t), t.labels)
                             for m in t.students}} for t in tasks]
    yield ("failure_categories.png", "Why students are wrong",
           "Student errors split by cause, as % of eval examples (bar height = error rate).",
           figures.failure_categories(fail_data, list(failures.CATEGORIES)))
    per_task = {t.name: ranks(t) for t in tasks}
    methods = list(dict.fromkeys(m.method for t in tasks for m in t.students))
    matrix = np.array([[per_task[t.name].get(m, np.nan) for t in tasks] for m in methods], dtype=float)
    yield ("ranking_heatmap.png", "Ranking of student methods",
           "Rank of each student per task by official metric (1 = best, blank = not run).",
           figures.ranking_heatmap(methods, [t.name for t in tasks], matrix.reshape(len(methods), len(tasks))))
    for t in tasks:
        curves = []
        s = summaries[t.name]
        for role, method in (("best teacher", s["best_teacher"]["method"]), ("baseline", s["baseline"]["method"]),
                             ("best student", s["best_student"]["method"])):
            m = next((m for m in t.models if m.method == method), None)
            if m is None:
                continue
            probs = confidence.softmax(m.logits)
            count, conf, acc = calibration.reliability(probs, t.labels)
            curves.append({"label": f"{role}: {m.method}", "count": count, "conf": conf, "acc": acc,
                           "ece": calibration.ece(probs, t.labels)})
        yield (f"reliability_{safe_name(t.name)}.png", f"Reliability diagram: {t.name}",
               f"Accuracy against confidence in {calibration.N_BINS} bins (eval); the diagonal is perfect calibration.",
               figures.reliability(t.name, curves))


def _gap_data(t: TaskEval, s: dict) -> dict:
    bars = [(m.method, m.type, m.metric, s["gap_closed_pct"].get(m.method)) for m in t.models]
    return {"task": t.name, "metric": t.metric, "bars": bars,
            "teacher": s["best_teacher"]["value"], "baseline": s["baseline"]["value"]}
