"""`analyze(RUN)`: every analysis of a run, written as tables, plots and one manifest under
RUN/analysis/. The manifest is written last and lists the inputs (sha256 of each eval
manifest), the tables and figures with their titles, and the sha256 of every output.

Every "best" model is selected on validation (gap.best) and reported on eval; the verdicts come
from the paired bootstrap of significance.py. Data flows one way: the analysis reads RUN/<task>/eval (in a
published folder: its evidence/, the same arrays; analysis/evidence.py) and writes RUN/analysis; the report (mtkd.report) only reads RUN/analysis and never imports this."""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np

from mtkd.analysis import (headroom, versus, agreement, calibration, confidence, diversity, failures, figures, gap, significance, slices,
                           stability)
from mtkd.analysis.load import SPLITS, TaskEval, eval_manifests, input_digest, is_evidence, load_run
from mtkd.io import atomic_write_bytes, atomic_write_text
from mtkd.tasks import compute_metrics
from mtkd.tables import Table, cell

ANALYSIS_DIR = "analysis"
# bumped when the analysis computes something differently, so an analysis written before is redone:
# 2 = significance p-values from the paired permutation test on the metric (1: McNemar per seed)
ANALYSIS_FORMAT = 3   # 3: the headroom table (and success_metrics' headroom); shared-coin p-values


def analyze(run_dir: Path, split: str = "validation", n_resamples: int = significance.stats.N_RESAMPLES) -> Path:
    """Analyse RUN (eval split for everything, `split` (and train, when the run has teacher train
    logits) for teacher confidence); return RUN/analysis."""
    run_dir = Path(run_dir)
    tasks = load_run(run_dir, split)
    out = run_dir / ANALYSIS_DIR
    out.mkdir(parents=True, exist_ok=True)
    sigs, average = significance.significance(tasks, n_resamples)
    summaries = {t.name: gap.task_summary(t, sigs[t.name]) for t in tasks}
    written: list[Path] = []
    tables = []
    rooms = {t.name: r for t in tasks if (r := headroom.from_task(t, n_resamples)) is not None}
    versus_rows = [r for t in tasks if (r := versus.task_row(t, rooms.get(t.name), n_resamples)) is not None]
    for name, title, description, table in [*_headroom_table(rooms), *_versus_table(versus_rows),
                                            *_tables(tasks, split, sigs, average, summaries, n_resamples)]:
        written += table.write(out, name)
        tables.append({"name": name, "title": title, "description": description})
    success = gap.success_metrics(tasks, sigs, average)
    success["headroom"] = {k: {"reading": r["reading"], "best_teacher": r["best_teacher"],
                               "ensemble": r["headline"]["model"], "diff_pp": gap._num(r["headline"]["diff_vs_best"]),
                               "ci_pp": [gap._num(r["headline"]["ci_low"]), gap._num(r["headline"]["ci_high"])],
                               "oracle_diff_pp": gap._num(r["oracle"]["diff_vs_best"])} for k, r in rooms.items()}
    success["student_vs_teachers"] = {r["task"]: {"student": r["best student"], "teacher": r["best teacher"],
                                                  "ensemble": r["ensemble"], "reading": r["reading"],
                                                  "vs_teacher_pp": [gap._num(r[c]) for c in versus.COLUMNS[6:9]],
                                                  "vs_ensemble_pp": [gap._num(r[c]) for c in versus.COLUMNS[11:14]]}
                                      for r in versus_rows}
    atomic_write_text(out / "success_metrics.json", json.dumps(success, indent=2) + "\n")
    written.append(out / "success_metrics.json")
    figs = []
    for file, title, caption, png in _figures(tasks, summaries, sigs):
        atomic_write_bytes(out / file, png)
        written.append(out / file)
        figs.append({"file": file, "title": title, "caption": caption})
    manifest = {
        "stage": "analyze",
        "format": ANALYSIS_FORMAT,
        "split": split,
        "selected_on": gap.SELECTED_ON,
        "n_resamples": n_resamples,
        "inputs": {t.name: input_digest(t.manifest_path) for t in tasks},
        "tables": tables,
        "figures": figs,
        "outputs": {p.name: sha256(p) for p in written},
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return out


def analysis_problem(run_dir: Path) -> str | None:
    """Why RUN/analysis cannot be used as it is (missing, unreadable, written by another analysis format,
    older than or not made from the current eval manifests, an output gone), or None when it is current."""
    run_dir = Path(run_dir)
    manifests = eval_manifests(run_dir)
    man_path = run_dir / ANALYSIS_DIR / "manifest.json"
    try:
        man = json.loads(man_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{man_path.parent} is missing or unfinished"
    if man.get("format", 1) != ANALYSIS_FORMAT:
        return f"{man_path.parent} was written by another version of the analysis (format {man.get('format', 1)}, " \
               f"now {ANALYSIS_FORMAT})"
    current = sorted(input_digest(p) for p in manifests)
    if sorted(man.get("inputs", {}).values()) != current or \
            any(p.stat().st_mtime > man_path.stat().st_mtime for p in manifests if not is_evidence(p)):
        return f"{man_path.parent} is older than the run's evaluation"
    gone = [f for f in man.get("outputs", {}) if not (man_path.parent / f).is_file()]
    return f"{man_path.parent / gone[0]} is missing" if gone else None


def ensure_analysis(run_dir: Path, log=print) -> Path:
    """Analyse RUN when its analysis is not current (saying so), keeping the split chosen before; a folder that
    kept only its analysis (published without evidence) has nothing to analyse and is left as it is."""
    if not eval_manifests(run_dir) and (Path(run_dir) / ANALYSIS_DIR / "manifest.json").is_file():
        return Path(run_dir) / ANALYSIS_DIR
    problem = analysis_problem(run_dir)
    if problem:
        log(f"[analyze] {problem}: analysing the run")
        try:
            split = json.loads((Path(run_dir) / ANALYSIS_DIR / "manifest.json").read_text(encoding="utf-8"))["split"]
        except (OSError, ValueError, KeyError, TypeError):
            split = "validation"
        analyze(run_dir, split if split in SPLITS else "validation")
    return Path(run_dir) / ANALYSIS_DIR


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

def p_cell(p) -> str:
    """A p-value: 3 significant digits (n/a when undefined)."""
    return cell(p) if p is None or math.isnan(p) else f"{p:.3g}"


def significance_table(sigs: dict[str, dict], average: dict | None) -> Table:
    rows = [r for s in sigs.values() for r in s["rows"]] + ([average] if average else [])
    fmt = {"diff_pp": cell, "ci_low": cell, "ci_high": cell, "p_value": p_cell, "p_holm": p_cell,
           "method_validation": cell, "reference_validation": cell,
           "selected": lambda v: "true" if v else "false",
           "p_per_seed": lambda d: ";".join(f"{k}:{p_cell(p)}" for k, p in d.items())}
    return Table(significance.COLUMNS, [[fmt.get(c, cell)(r[c]) for c in significance.COLUMNS] for r in rows])


def _headroom_table(rooms: dict) -> list:
    """The headroom table (analysis/headroom.py) of the tasks with two or more teachers: [] without any."""
    if not rooms:
        return []
    rows, _ = headroom.table_rows(list(rooms.values()))
    return [("headroom", "Headroom: the teachers together vs the best teacher",
             "Before any student: each teacher, the teacher ensembles (logit average, probability average, "
             "validation-weighted, majority vote) and the oracle (right wherever some teacher is), on validation and "
             "eval; diff_vs_best: minus the best teacher (selected on validation), with a paired bootstrap 95% CI. "
             "A multi-teacher student can at best learn what the ensemble knows beyond the best teacher "
             "(`mtkd headroom CONFIG` measures it before training).", Table(headroom.COLUMNS, rows))]


def _versus_table(rows: list[dict]) -> list:
    """The best student against the best teacher and the teacher ensemble (analysis/versus.py)."""
    if not rows:
        return []
    return [("student_vs_teachers", "The best student vs the best teacher and the teacher ensemble",
             "What a student replaces: the best student (every student, selected on validation), the best teacher "
             "(selected on validation) and the headroom table's teacher ensemble (the one best on validation), on "
             "eval; differences in points of the official metric with a paired bootstrap 95% CI over eval examples "
             "(the student's seeds pooled). Above / below: the CI excludes 0; level: it does not.",
             Table(versus.COLUMNS, [[cell(r[c]) if c != "reading" else r[c] for c in versus.COLUMNS] for r in rows]))]


def _tables(tasks: list[TaskEval], split: str, sigs: dict, average: dict | None, summaries: dict,
            n_resamples: int = significance.stats.N_RESAMPLES):
    adv, gapc, shares, reg_acc, fails, conf, pairs, ceil, calib = ([] for _ in range(9))
    for t in tasks:
        s = summaries[t.name]
        ci = s["advantage_ci_pp"]
        adv.append([t.name, t.metric, cell(s["best_single"]["method"]), cell(s["best_single"]["validation"]),
                    cell(s["best_single"]["value"]), cell(s["best_multi"]["method"]), cell(s["best_multi"]["validation"]),
                    cell(s["best_multi"]["value"]), cell(s["advantage_pp"]), cell(ci[0]), cell(ci[1]),
                    p_cell(s["p_holm"]), s["verdict"]])
        for m in t.of_type("single", "multi"):
            lo, hi = sigs[t.name]["gap_ci"].get(m.method, (math.nan, math.nan))
            gapc.append([t.name, m.method, m.type, cell(m.metric), cell(s["baseline"]["value"]),
                         cell(s["best_teacher"]["method"]), cell(s["best_teacher"]["value"]),
                         cell(s["gap_closed_pct"][m.method], 1), cell(lo, 1), cell(hi, 1)])
        tp = preds(t)
        region = agreement.regions(tp) if len(tp) else np.zeros(len(t.labels), dtype=int)
        for name, n, pct in agreement.region_shares(region):
            shares.append([t.name, str(len(tp)), name, str(n), cell(pct)])
        for m in t.models:   # mean over the model's seeds, as in the master table and the worst-slice tables
            per_seed = np.array([agreement.region_accuracy(p, t.labels, region) for p in m.seed_preds()])
            with np.errstate(invalid="ignore"):
                reg_acc.append([t.name, m.method, m.type] + [cell(float(a)) for a in per_seed.mean(axis=0)]
                               + [cell(100.0 * float((m.seed_preds() == t.labels).mean()))])
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
        for split_name, logits in ((split, t.split_logits), ("train", t.train_logits)):
            for name in t.teacher_names:
                if name not in logits:
                    continue
                a = confidence.confidence_stats(logits[name])
                b = confidence.confidence_stats(logits[name], t.temperature)
                provenance = next((m.train_logits for m in t.teachers if m.method == name), "n/a")
                conf.append([t.name, split_name, name, provenance, cell(t.temperature, 1)]
                            + [cell(d[k], 4 if k != "pct max>0.95" else 2) for d in (a, b) for k in d])
        for a, b, pct in diversity.pairwise_agreement(tp, t.teacher_names):
            pairs.append([t.name, a, b, cell(pct)])
        if len(tp):
            counts = diversity.vote_counts(tp, len(t.label_names))
            maj = 100.0 * float((diversity.majority_vote(tp, len(t.label_names)) == t.labels).mean())
            top = gap.best(t.teachers)
            ceil.append([t.name, str(len(tp)), cell(top.method if top else None),
                         cell(accuracy(top, t.labels) if top else math.nan), cell(maj),
                         cell(diversity.oracle_accuracy(tp, t.labels)), cell(diversity.fleiss_kappa(counts), 4)])
    if average:   # the mean of the compared tasks' bests (each task's own selection), the AVG row's CI and verdict
        heads = [summaries[t.name] for t in tasks if sigs[t.name]["headline"]]
        mean = lambda key: float(np.mean([h[key]["value"] for h in heads]))   # noqa: E731
        adv.append(["AVG", "mean of the official metrics", "best single (per task)", "", cell(mean("best_single")),
                    "best multi (per task)", "", cell(mean("best_multi")), cell(average["diff_pp"]),
                    cell(average["ci_low"]), cell(average["ci_high"]), "",
                    gap.verdict(average["ci_low"], average["ci_high"])])
    rank_table = _ranking_table(tasks)
    acc_cols = [f"acc {r} (%)" for r in agreement.REGIONS]
    steady = _steadiness_rows(tasks)
    return [
        ("significance", "Multi-teacher vs best single-teacher student, per example",
         f"Every multi-teacher student against the best single-teacher student (selected on validation). diff_pp: "
         f"difference of the official eval metric (mean over seeds); ci_low/ci_high: paired bootstrap 95% interval "
         f"over eval examples ({_resamples(sigs, average)} resamples, pooled over seeds); p_value: paired permutation "
         f"test of the same difference (random swaps of the two models' predictions per example, one coin per example "
         f"shared by every seed pair; p_per_seed: at each seed alone); p_holm: Holm over strategies × "
         f"tasks (a student that trains exactly as another present one, duplicate_of, is one method: no p_holm, "
         f"never selected). selected = the best multi-teacher student (selected on validation): the verdict's row. AVG: mean "
         f"of the selected differences, each task resampled independently.",
         significance_table(sigs, average)),
        ("advantage", "Multi-teacher advantage (best selected on validation)",
         "advantage = best multi-teacher student - best single-teacher student, both selected on the validation "
         "metric (columns 'val'), reported on eval, in percentage points of the official metric; CI: paired "
         "bootstrap 95% interval; verdict: better / worse when the CI excludes 0, else no significant difference. "
         "AVG: the mean over the tasks compared, each task resampled independently for its CI (no permutation or Holm "
         "p; its verdict is one more comparison, outside the Holm family).",
         Table(["task", "metric", "best single", "single val (%)", "single eval (%)", "best multi", "multi val (%)",
                "multi eval (%)", "advantage (pp)", "ci_low", "ci_high", "p_holm", "verdict"], adv)),
        *([("steadiness", "Steadiness over seeds (eval)",
            "Every model trained at several seeds: its official metric (mean, sample sd, worst seed) and prediction "
            "churn, the % of eval examples whose predicted label differs between two seeds, averaged over every pair "
            "of seeds, with a 95% percentile-bootstrap interval over eval examples (analysis/stability.py).",
            Table(["task", "model", "type", "seeds", "metric (%)", "sd", "worst (%)", "worst seed", "churn (%)",
                   "churn ci_low", "churn ci_high"], steady))] if steady else []),
        ("gap_closed", "Gap closed (best teacher selected on validation)",
         "gap closed = (student - baseline) / (best teacher - baseline), in %, official eval metric, the best teacher "
         "selected on validation; CI: paired bootstrap 95% interval; n/a when the baseline or the teachers are "
         "missing or the denominator is 0." + "".join(f" {line}" for t in tasks for line in t.transfer_note),
         Table(["task", "student", "type", "metric (%)", "baseline (%)", "best teacher", "best teacher (%)",
                "gap closed (%)", "ci_low", "ci_high"], gapc)),
        ("ranking", "Ranking of student methods",
         "Rank of each student per task by official eval metric (1 = highest; ties share the better rank; '-' = not run). "
         "Descriptive only: no \"best\" is selected from it (selection is on validation).",
         rank_table),
        ("agreement_regions", "Agreement regions (eval)",
         "all agree: every teacher predicts the same label; full disagree: no two teachers agree; "
         "partial disagree: the rest. With 2 teachers every disagreement is full; with 1 all examples agree.",
         Table(["task", "teachers", "region", "examples", "share (%)"], shares)),
        ("agreement_accuracy", "Accuracy by agreement region (eval)",
         "Accuracy of every model on the examples of each region, mean over its seeds (n/a: empty region).",
         Table(["task", "model", "type"] + acc_cols + ["overall acc (%)"], reg_acc)),
        ("worst_slices", "Worst slices of every model (selected on validation, reported on eval)",
         "Per model, its weakest class (lowest recall) and weakest teacher-agreement region, each selected on "
         "validation (val) and reported on eval (mean over seeds)"
         + ("; its weakest extra eval set (no validation: selected on the sets themselves, run seed)"
            if any(t.extra_labels for t in tasks) else "") + ". Accuracy in %; acc: the model's overall eval accuracy.",
         slices.worst_slices_table(tasks)),
        ("students_at_teacher_worst", "Students at each teacher's worst slice",
         "Beat the teachers at their worst: for each teacher, its worst class, agreement region and extra eval set "
         "(selected_on: validation, or the extra set itself, which has no validation; teacher's worst = yes on the "
         "lowest of them), its accuracy there on eval, and every student's, with the difference in pp and its paired "
         "bootstrap 95% interval over the slice's examples (pooled over seeds).",
         slices.teacher_worst_table(tasks, n_resamples)),
        ("failure_categories", "Failure categories of student errors (eval)",
         "Each student error is exactly one of: all teachers wrong; transfer failure (every teacher right); "
         "error on disagreement (teachers disagree, at least one right). Shares are % of the student's errors; "
         "'fixed all-wrong' counts examples the student gets right although every teacher is wrong.",
         Table(["task", "student", "type", "errors", "all teachers wrong", "%", "transfer failure", "%",
                "error on disagreement", "%", "fixed all-wrong"], fails)),
        ("teacher_confidence", f"Teacher confidence ({split}, and train when the run has train logits)",
         "Mean max probability, mean entropy (nats) and % of examples with max probability > 0.95, "
         "at T = 1 and at the distillation temperature T. Train logits are what the students were distilled "
         "from (out of fold with crossfit); a teacher far more confident on train than on validation has "
         "memorised its training data. train logits: whose rows the teacher's train logits were computed on — "
         "in-sample (fitted on the rows it labels: over-confident soft labels), out-of-fold (crossfit), unknown "
         "(a checkpoint or score files made elsewhere), n/a (a run from before it was recorded).",
         Table(["task", "split", "teacher", "train logits", "T", "mean max prob", "mean entropy (nats)", "max>0.95 (%)",
                "mean max prob @T", "mean entropy @T (nats)", "max>0.95 @T (%)"], conf)),
        ("teacher_pairwise_agreement", "Pairwise teacher agreement (eval)",
         "Share of eval examples on which two teachers predict the same label.",
         Table(["task", "teacher A", "teacher B", "agreement (%)"], pairs)),
        ("teacher_ceilings", "Teacher diversity and ceilings (eval)",
         "Best teacher: selected on validation, its eval accuracy. Majority vote: most predicted label (ties: "
         "lowest class index). Oracle: at least one teacher right. Fleiss' kappa over teachers as raters "
         "(n/a with one teacher).",
         Table(["task", "teachers", "best teacher", "best teacher acc (%)", "majority vote acc (%)", "oracle acc (%)",
                "Fleiss kappa"], ceil)),
        ("calibration", "Calibration (eval)",
         f"ECE with {calibration.N_BINS} equal-width bins of the max probability; NLL in nats; "
         "Brier = mean over examples of the summed squared error to the one-hot label (0..2).",
         Table(["task", "model", "type", "accuracy (%)", "ECE", "NLL", "Brier"], calib)),
        *_gate_table(tasks),
    ]


def _gate_table(tasks: list[TaskEval]):
    """Mean gate weight per teacher of every gated student (`eval/<method>.gate.json`, the run seed's):
    over training, per epoch, and on eval overall and per agreement region of the teachers."""
    rows, teachers = [], None
    for t in tasks:
        for m in t.students:
            g = t.gates.get(m.method)
            if g is None:
                continue
            teachers = teachers or g["teachers"]
            scopes = [("train", "", g["train"])] + [(f"train epoch {i + 1}", "", w) for i, w in enumerate(g["per_epoch"])]
            scopes += [("eval", str(sum(r["n"] for r in g["eval_regions"].values())), g["eval"])]
            scopes += [(f"eval {r.replace('_', ' ')}", str(v["n"]), v) for r, v in g["eval_regions"].items()]
            rows += [[t.name, m.method, scope, n] + [cell(w.get(k, math.nan), 3) for k in teachers]
                     for scope, n, w in scopes]
    if not rows:
        return []
    return [("gate_weights", "Learned gate: mean weight per teacher",
             "Mean gate weight of each teacher (rows sum to 1) over training, per epoch, and on eval: overall and per "
             "agreement region of the teachers' eval predictions (n/a: empty region); the run seed's student.", Table(["task", "student", "scope", "examples", *teachers], rows))]


def _resamples(sigs: dict, average) -> str:
    n = next((r["n_resamples"] for s in sigs.values() for r in s["rows"]), None)
    return f"{n:,}" if n else "10,000"


def _steadiness_rows(tasks: list[TaskEval]) -> list[list[str]]:
    """One row per model with several seeds (analysis.stability)."""
    rows = []
    for t in tasks:
        for m in t.models:
            if len(m.seed_logits) < 2:
                continue
            preds = {s: lg.argmax(axis=1) for s, lg in m.seed_logits.items()}
            score = {s: compute_metrics(t.labels, p, len(t.label_names), t.pos_label)[t.metric]
                     for s, p in preds.items()}
            st = stability.stability(score, preds)
            rows.append([t.name, m.method, m.type, str(st.n_seeds), cell(st.mean), cell(st.std), cell(st.worst),
                         str(st.worst_seed), cell(st.churn), cell(st.churn_low), cell(st.churn_high)])
    return rows


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

def _figures(tasks: list[TaskEval], summaries: dict, sigs: dict):
    yield ("gap_analysis.png", "Teachers, baseline and students",
           "Top: official metric of every model per task with its paired-bootstrap 95% interval over eval examples "
           "(dashed: best teacher, selected on validation; dotted: baseline). Bottom: share of the baseline-to-best-"
           "teacher gap each KD student closes, with its 95% interval.",
           figures.gap_analysis([_gap_data(t, summaries[t.name], sigs[t.name]) for t in tasks]))
    region_data = []
    for t in tasks:
        tp = preds(t)
        region = agreement.regions(tp) if len(tp) else np.zeros(len(t.labels), dtype=int)
        region_data.append({"task": t.name, "shares": [pct for _, _, pct in agreement.region_shares(region)],
                            "models": {m.method: list(np.mean([agreement.region_accuracy(p, t.labels, region)
                                                               for p in m.seed_preds()], axis=0))
                                       for m in t.students},
                            "highlight": {"baseline": summaries[t.name]["baseline"]["method"],
                                          "best single": summaries[t.name]["best_single"]["method"],
                                          "best multi": summaries[t.name]["best_multi"]["method"]}})
    yield ("agreement_breakdown.png", "Student accuracy by teacher-agreement region",
           "Accuracy of each student on the eval examples where the teachers all agree, partly disagree or "
           "fully disagree (share of examples in the axis labels; empty regions left out): the baseline and the "
           "validation-selected best single- and multi-teacher students in colour, every other student grey.",
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
        for role, method in (("best teacher (val)", s["best_teacher"]["method"]), ("baseline", s["baseline"]["method"]),
                             ("best student (val)", s["best_student"]["method"])):
            m = next((m for m in t.models if m.method == method), None)
            if m is None:
                continue
            probs = confidence.softmax(m.logits)
            count, conf, acc = calibration.reliability(probs, t.labels)
            curves.append({"label": f"{role}: {m.method}", "count": count, "conf": conf, "acc": acc,
                           "ece": calibration.ece(probs, t.labels), "seed": m.seeds[0] if m.seeds else None})
        yield (f"reliability_{safe_name(t.name)}.png", f"Reliability diagram: {t.name}",
               f"Accuracy against confidence in {calibration.N_BINS} bins (eval, the run seed's logits; ECE in %); "
               f"the diagonal is perfect calibration.",
               figures.reliability(t.name, curves))


def _gap_data(t: TaskEval, s: dict, sig: dict) -> dict:
    bars = [(m.method, m.type, m.metric, s["gap_closed_pct"].get(m.method)) for m in t.models]
    return {"task": t.name, "metric": t.metric, "bars": bars, "ci": sig["metric_ci"], "gap_ci": sig["gap_ci"],
            "teacher": s["best_teacher"]["value"], "baseline": s["baseline"]["value"]}
