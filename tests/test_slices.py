"""Issue 11.4 "at their worst": the ECE column of the master table, worst slices per model and every student at
each teacher's worst slice, checked against hand computations on tiny arrays and synthetic eval folders."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from _fake_run import build_fake_run
from mtkd.analysis import analyze, slices
from mtkd.analysis.load import Model, TaskEval, load_run
from mtkd.errors import MtkdError
from mtkd.experiments import write_master_table
from mtkd.report import build_report


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- ECE in the master table

# probabilities of tests/test_analysis.py::test_calibration_hand_computed: ECE = .2925 (hand-computed there)
P_A = np.array([[0.9, 0.1], [0.65, 0.35], [0.3, 0.7], [0.72, 0.28]])
# every example at confidence .75 on class 0, one of four right: ECE = |.25 - .75| = .5
P_B = np.full((4, 2), [0.75, 0.25])
Y4 = np.array([0, 1, 1, 1])


def _master_run(root: Path) -> Path:
    """Two tasks on the same four eval examples: `a` (accuracy) and `b` (F1), a teacher at one seed (P_A) and a
    student at seeds 1 (P_A) and 2 (P_B). Predictions: P_A -> 0 0 1 0 (acc 50, F1 of class 1 = 2/(2+0+2) = 50),
    P_B -> 0 0 0 0 (acc 25, F1 0)."""
    for task, metric, cols in (("a", "accuracy", ["a_acc"]), ("b", "f1", ["b_f1", "b_acc"])):
        folder = root / task / "eval"
        folder.mkdir(parents=True)
        np.save(folder / "labels_eval.npy", Y4)
        np.save(folder / "t.eval.npy", np.log(P_A).astype(np.float32))
        np.save(folder / "s.eval.npy", np.log(P_A).astype(np.float32))
        np.save(folder / "s@seed2.eval.npy", np.log(P_B).astype(np.float32))
        m_a, m_b = {"accuracy": 50.0, "f1": 50.0}, {"accuracy": 25.0, "f1": 0.0}
        models = [{"method": "t", "type": "teacher", "file": "t.eval.npy", "metrics": m_a, "seed_files": {"1": "t.eval.npy"},
                   "seed_metrics": {"1": {"eval": m_a}}},
                  {"method": "s", "type": "multi", "file": "s.eval.npy", "metrics": {k: (m_a[k] + m_b[k]) / 2 for k in m_a},
                   "seed_files": {"1": "s.eval.npy", "2": "s@seed2.eval.npy"},
                   "seed_metrics": {"1": {"eval": m_a}, "2": {"eval": m_b}}}]
        (folder / "manifest.json").write_text(json.dumps({
            "task": task, "label_names": ["n", "p"], "metric": metric, "metric_columns": cols,
            "labels_eval": "labels_eval.npy", "models": models}))
    return root


def test_master_table_ece_column(tmp_path):
    run = _master_run(tmp_path)
    write_master_table(run, ["a", "b"], [1, 2])
    lines = (run / "results" / "master_results.csv").read_text().splitlines()
    # the official metric stays each task's first column; ECE follows the task's metrics
    assert lines[0] == ("method,type,a_acc,a_acc_sd,a_ece,a_ece_sd,b_f1,b_f1_sd,b_acc,b_acc_sd,b_ece,b_ece_sd,AVG,AVG_sd")
    r = {row["method"]: row for row in _rows(run / "results" / "master_results.csv")}
    assert r["t"]["a_ece"] == "29.25" and r["t"]["a_ece_sd"] == ""            # one seed: no spread
    # student: mean of 29.25 and 50 = 39.625; sample sd = 20.75 / sqrt(2) = 14.672
    assert float(r["s"]["a_ece"]) == pytest.approx(39.625, abs=0.006)
    assert float(r["s"]["b_ece_sd"]) == pytest.approx(20.75 / 2 ** 0.5, abs=0.006)
    # AVG is the mean of the official metrics only: (a_acc 37.5 + b_f1 25) / 2; ECE never enters it
    assert float(r["s"]["AVG"]) == 31.25 and float(r["t"]["AVG"]) == 50.0
    # AVG's sd is that of each seed's AVG: seed 1 (50 + 50) / 2 = 50, seed 2 (25 + 0) / 2 = 12.5 -> 37.5 / sqrt(2)
    assert float(r["s"]["AVG_sd"]) == pytest.approx(37.5 / 2 ** 0.5, abs=0.006) and r["t"]["AVG_sd"] == ""
    md = (run / "results" / "master_results.md").read_text()
    assert "| s | multi | 37.50 ± 17.68 | 39.62 ± 14.67 |" in md and "| 31.25 ± 26.52 |" in md
    assert "lower is better" in md and "AVG: the mean of the official metrics" in md


def test_master_table_avg_unchanged_by_ece(tmp_path):
    """With one seed the table is the old one plus `<task>_ece` columns: dropping them gives back exactly
    the old columns and AVG."""
    run = _master_run(tmp_path)
    write_master_table(run, ["a", "b"], [1])
    rows = _rows(run / "results" / "master_results.csv")
    assert list(rows[0]) == ["method", "type", "a_acc", "a_ece", "b_f1", "b_acc", "b_ece", "AVG"]
    assert [{k: v for k, v in r.items() if not k.endswith("_ece")} for r in rows] == [
        {"method": "t", "type": "teacher", "a_acc": "50.00", "b_f1": "50.00", "b_acc": "50.00", "AVG": "50.00"},
        {"method": "s", "type": "multi", "a_acc": "37.50", "b_f1": "25.00", "b_acc": "37.50", "AVG": "31.25"}]


# ---------------------------------------------------------------- worst slices, by hand

#                     ex: 0  1  2  3  4  5  6  7
YV = np.array([0, 0, 0, 0, 1, 1, 1, 1])          # validation labels
AV = np.array([0, 0, 0, 1, 1, 1, 0, 0])          # teacher A: neg 3/4 = 75, pos 2/4 = 50 -> worst class pos
BV = np.array([0, 0, 1, 1, 1, 1, 1, 1])          # teacher B: neg 2/4 = 50, pos 4/4
CV = YV                                          # teacher C: perfect
# validation regions (A, B, C): all agree {0, 1, 4, 5}, partial {2, 3, 6, 7} (full impossible: 3 teachers, 2 classes)
# A: all 4/4 = 100, partial: ex 2 right, 3 6 7 wrong = 25 -> worst region partial (25 < class pos 50: A's worst)
YE = np.array([0, 0, 0, 0, 1, 1, 1, 1])          # eval labels
AE = np.array([0, 0, 1, 1, 1, 1, 1, 1])          # on eval A's weakest class is neg (50), not the selected pos (100)
BE = CE = YE
# eval regions: all {0, 1, 4, 5, 6, 7}, partial {2, 3}; A on partial: 0/2
SE = {1: YE, 2: np.array([0, 0, 1, 0, 1, 1, 0, 1])}   # student S at two seeds; validation: perfect
EXTRA = {"adv": np.array([0, 1, 1, 0]), "ood": np.array([1, 1, 1])}
A_EXTRA = {"adv": np.array([0, 0, 0, 0]), "ood": np.array([1, 1, 0])}   # 50 and 66.67 -> worst extra set adv
S_EXTRA = {"adv": np.array([0, 1, 1, 1]), "ood": np.array([1, 1, 1])}   # 75 and 100


def _lg(pred):
    return 2.0 * np.eye(2)[np.asarray(pred)]


def _model(method, type_, eval_preds: dict, val_pred, extra=None):
    seed_logits = {s: _lg(p) for s, p in eval_preds.items()}
    return Model(method, type_, next(iter(seed_logits.values())), float("nan"), seeds=list(seed_logits),
                 seed_logits=seed_logits, val_logits=_lg(val_pred),
                 extra_logits={k: _lg(v) for k, v in (extra or {}).items()})


def _task(eval_labels=YE) -> TaskEval:
    models = [_model("A", "teacher", {0: AE}, AV, A_EXTRA), _model("B", "teacher", {0: BE}, BV),
              _model("C", "teacher", {0: CE}, CV), _model("S", "multi", SE, YV, S_EXTRA)]
    return TaskEval("hand", ["neg", "pos"], "accuracy", 2.0, np.asarray(eval_labels), models, ["A", "B", "C"], "eval",
                    np.asarray(eval_labels), {}, Path("m"), val_labels=YV, extra_labels=EXTRA)


def _picks(task):
    return {(m.method, k): (s.name, s.selected_on, s.score) if s else None
            for m in task.models for k in slices.KINDS for s in [slices.worst(task, m, k)]}


def test_worst_class_region_and_extra_set():
    t = _task()
    a = {k: slices.worst(t, t.models[0], k) for k in slices.KINDS}
    assert (a["class"].name, a["class"].selected_on, a["class"].score) == ("pos", "validation", 50.0)
    assert a["class"].accuracy(t.models[0]) == 100.0                     # reported on eval: A right on 4..7
    assert (a["agreement region"].name, a["agreement region"].score) == ("partial disagree", 25.0)
    assert a["agreement region"].where.nonzero()[0].tolist() == [2, 3]   # the eval examples of the region
    assert a["agreement region"].accuracy(t.models[0]) == 0.0
    assert (a["extra set"].name, a["extra set"].selected_on, a["extra set"].score) == ("adv", slices.NO_VALIDATION, 50.0)
    found, lowest = slices.worst_of_teacher(t, t.models[0])
    assert [s.kind for s in found] == list(slices.KINDS) and lowest.kind == "agreement region"
    # ties go to the first class / region: B's classes are 50 / 100 -> neg; S perfect everywhere -> neg, all agree
    p = _picks(t)
    assert p[("B", "class")] == ("neg", "validation", 50.0)
    assert p[("S", "class")] == ("neg", "validation", 100.0) and p[("S", "agreement region")][0] == "all agree"
    assert p[("B", "extra set")] is None                                # no logits on the extra sets


def test_students_at_teacher_worst_hand_computed():
    t = _task()
    table = slices.teacher_worst_table([t], n_resamples=4000)
    rows = [dict(zip(table.columns, r)) for r in table.rows if r[1] == "A"]
    got = {r["kind"]: (r["slice"], r["selected_on"], r["teacher's worst"], r["examples"], r["teacher acc (%)"],
                       r["student acc (%)"], r["diff (pp)"]) for r in rows}
    # class pos on eval (ex 4..7): A 100; S seed 1 4/4, seed 2 3/4 -> 87.5
    # region partial (ex 2, 3): A 0/2; S seed 1 2/2, seed 2 1/2 -> 75
    # extra set adv: A 2/4 = 50, S 3/4 = 75
    assert got == {"class": ("pos", "validation", "no", "4", "100.00", "87.50", "-12.50"),
                   "agreement region": ("partial disagree", "validation", "yes", "2", "0.00", "75.00", "75.00"),
                   "extra set": ("adv", "extra set (no validation)", "no", "4", "50.00", "75.00", "25.00")}
    # class pos: the difference is -k/8 x 100 for k draws of ex 6 among 4 ~ Bin(4, 1/4):
    # P(k >= 3) = .051 > .025 > P(k = 4) = .004 -> 2.5th percentile -37.5; P(k = 0) = .32 -> 97.5th 0
    cls = next(r for r in rows if r["kind"] == "class")
    assert (cls["ci_low"], cls["ci_high"]) == ("-37.50", "0.00")


def test_slice_is_selected_on_validation_not_eval():
    """Flipping every eval label leaves every selected slice (and its selection score) unchanged, while the eval
    numbers move and an eval-based pick would differ (so the test can fail)."""
    clean, flipped = _task(), _task(1 - YE)
    assert _picks(clean) == _picks(flipped)
    a = flipped.models[0]
    cls = slices.worst(flipped, a, "class")
    per_class_eval = {n: slices.Slice("class", n, "", 0, flipped.labels[w], w).accuracy(a)
                      for n, w in slices.groups(flipped, "class", "eval")}
    assert cls.name == "pos" and min(per_class_eval, key=per_class_eval.get) != "pos"   # eval would pick neg
    reg = slices.worst(flipped, a, "agreement region")
    per_region_eval = {n: slices.Slice("r", n, "", 0, flipped.labels[w], w).accuracy(a)
                       for n, w in slices.groups(flipped, "agreement region", "eval") if w.any()}
    assert reg.name == "partial disagree" and min(per_region_eval, key=per_region_eval.get) == "all agree"
    assert cls.accuracy(a) != slices.worst(clean, clean.models[0], "class").accuracy(clean.models[0])


def test_one_teacher_has_no_region_and_no_validation_no_pick():
    t = _task()
    one = TaskEval("one", t.label_names, "accuracy", 2.0, t.labels, [t.models[0], t.models[3]], ["A"], "eval",
                   t.labels, {}, Path("m"), val_labels=YV)
    assert slices.worst(one, one.models[0], "agreement region") is None    # one teacher: every example agrees
    assert slices.worst(one, one.models[0], "extra set") is None           # no extra sets in this task
    blind = Model("x", "single", _lg(YE), 50.0)                              # no validation logits
    assert slices.worst(t, blind, "class") is None


# ---------------------------------------------------------------- through the eval folder, analyze and the report

def _add_extra_sets(run: Path, task: str = "bin"):
    """The shared convention (COORD.md): eval/manifest.json "extra_eval" {set: {labels, size}}, per model
    "extra_files" {set: "<method>.<set>.npy"} and "extra_metrics". Set `hard`: every model right on a third."""
    folder = run / task / "eval"
    man = json.loads((folder / "manifest.json").read_text())
    rng = np.random.default_rng(1)
    sizes = {"hard": 90, "easy": 60}
    man["extra_eval"] = {s: {"labels": f"labels_{s}.npy", "size": n} for s, n in sizes.items()}
    for s, n in sizes.items():
        y = rng.integers(0, 2, n)
        np.save(folder / f"labels_{s}.npy", y)
        for m in man["models"]:
            right = np.arange(n) < (n // 3 if s == "hard" else n)
            np.save(folder / f"{m['method']}.{s}.npy", _lg(np.where(right, y, 1 - y)).astype(np.float32))
            m.setdefault("extra_files", {})[s] = f"{m['method']}.{s}.npy"
            m.setdefault("extra_metrics", {})[s] = {"accuracy": 100.0 * right.mean()}
    (folder / "manifest.json").write_text(json.dumps(man))
    return man


def test_analyze_and_report_show_both_tables_with_extra_sets(tmp_path):
    run = build_fake_run(tmp_path)
    _add_extra_sets(run)
    tasks = {t.name: t for t in load_run(run)}
    assert set(tasks["bin"].extra_labels) == {"hard", "easy"} and tasks["tri"].extra_labels == {}
    assert tasks["bin"].models[0].extra_logits["hard"].shape == (90, 2)
    out = analyze(run, n_resamples=500)
    worst = _rows(out / "worst_slices.csv")
    assert {r["worst extra set"] for r in worst if r["task"] == "bin"} == {"hard"}
    assert {r["extra set acc (%)"] for r in worst if r["task"] == "bin"} == {"33.33"}
    assert {r["worst extra set"] for r in worst if r["task"] == "tri"} == {"n/a"}
    at = _rows(out / "students_at_teacher_worst.csv")
    extra = [r for r in at if r["kind"] == "extra set"]
    assert {(r["task"], r["slice"], r["selected_on"], r["examples"]) for r in extra} == \
        {("bin", "hard", "extra set (no validation)", "90")}
    assert len(extra) == 3 * 6                                        # 3 teachers x (baseline + 5 students)
    assert {r["selected_on"] for r in at if r["kind"] != "extra set"} == {"validation"}
    # the teacher's eval accuracy at its slice is the one worst_slices reports for it
    for r in at:
        if r["kind"] == "class":
            mine = next(w for w in worst if w["task"] == r["task"] and w["model"] == r["teacher"])
            assert (r["slice"], r["teacher acc (%)"]) == (mine["worst class"], mine["class eval (%)"])
    assert all(r["teacher's worst"] in ("yes", "no") for r in at)
    assert sum(r["teacher's worst"] == "yes" for r in at) == 6 * 6  # one slice per teacher of each task, 6 students
    md, page = (p.read_text() for p in build_report(run))
    for title in ("Worst slices of every model (selected on validation, reported on eval)",
                  "Students at each teacher's worst slice"):
        assert f"## {title}" in md and title.replace("'", "&#x27;") in page
    assert "[analysis/students_at_teacher_worst.csv](analysis/students_at_teacher_worst.csv)" in md   # long: linked
    assert "<td>extra set (no validation)</td>" in page


def test_extra_files_of_an_unlisted_set_are_refused(tmp_path):
    run = build_fake_run(tmp_path)
    man = _add_extra_sets(run)
    del man["extra_eval"]["easy"]
    (run / "bin" / "eval" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(MtkdError, match="extra eval set 'easy', which \"extra_eval\" does not list"):
        load_run(run)
